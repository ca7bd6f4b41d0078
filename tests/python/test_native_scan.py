"""torch.ops.vimvq.selective_scan against the pure-PyTorch scan: values, gradients, edge shapes."""
import unittest

import torch

from helpers import HAVE_NATIVE, forward_backward, forward_backward_per_thread_count, random_scan_inputs
from vimlib.configs import get_config
from vimlib.export import make_model
from vimlib.scan import selective_scan_torch

NAMES = "u delta A B C D z delta_bias".split()


def native(*args):
    return torch.ops.vimvq.selective_scan(*args)


@unittest.skipUnless(HAVE_NATIVE, "libvimvq_ops.so not built")
class NativeScan(unittest.TestCase):
    def assert_close_relative(self, got, want, what, rtol=1e-5):
        scale = want.abs().max().item() or 1.0
        self.assertLessEqual((got - want).abs().max().item() / scale, rtol, what)

    def compare(self, shape, seed=0):
        args = random_scan_inputs(*shape, seed=seed)
        weight = torch.randn(shape[0], shape[1], shape[2], generator=torch.Generator().manual_seed(seed + 1))
        got = forward_backward(native, args, weight)
        want = forward_backward(selective_scan_torch, args, weight)
        for name, g, w in zip(["out"] + NAMES, got, want):
            self.assertEqual(g.shape, w.shape)
            self.assert_close_relative(g, w, f"{name} {shape}")

    def test_matches_torch_scan(self):
        # (2, 44, 9, 16, 2): 22 channels per group, one full block of 16 lanes and a partial one
        for shape in [(2, 64, 50, 16, 2), (3, 24, 197, 16, 2), (2, 32, 33, 16, 1), (2, 44, 9, 16, 2)]:
            self.compare(shape)

    def test_edge_shapes(self):
        for shape in [(1, 8, 1, 16, 2), (1, 4, 7, 16, 1), (2, 6, 5, 3, 2), (1, 40, 2, 64, 4)]:
            self.compare(shape, seed=len(shape))

    def test_non_contiguous_inputs(self):
        args = random_scan_inputs(2, 16, 12, 16, 2, seed=3)
        # Same values, strided storage: transposed copies viewed back, and a sliced batch.
        strided = [a.transpose(-1, -2).contiguous().transpose(-1, -2) if a.dim() >= 2 else a for a in args]
        self.assertFalse(strided[0].is_contiguous())
        self.assertTrue(torch.equal(native(*strided), native(*args)))
        big = random_scan_inputs(4, 16, 12, 16, 2, seed=3)
        sliced = [a[::2] if a.dim() >= 3 else a for a in big]
        dense = [a.contiguous() for a in sliced]
        self.assertTrue(torch.equal(native(*sliced), native(*dense)))

    def test_gradcheck_float64(self):
        # N = 16 takes the kernels' fixed-N path, N = 4 the general one.
        for n_state in (4, 16):
            args = [a.requires_grad_()
                    for a in random_scan_inputs(2, 4, 6, n_state, 2, dtype=torch.float64, seed=9)]
            self.assertTrue(torch.autograd.gradcheck(native, args, eps=1e-6, atol=1e-6), f"N = {n_state}")

    def test_same_bits_for_any_thread_count(self):
        args = random_scan_inputs(3, 48, 29, 16, 2, seed=5)
        weight = torch.randn(3, 48, 29, generator=torch.Generator().manual_seed(2))
        results = forward_backward_per_thread_count(native, args, weight)
        for other in results[1:]:
            for name, a, b in zip(["out"] + NAMES, results[0], other):
                self.assertTrue(torch.equal(a, b), name)

    def test_bad_shapes_are_refused(self):
        args = random_scan_inputs(2, 8, 5, 16, 2)
        bad = list(args)
        bad[3] = bad[3][:, :, :8]
        with self.assertRaisesRegex(RuntimeError, "B must be"):
            native(*bad)
        bad = list(args)
        bad[2] = bad[2].double()
        with self.assertRaisesRegex(RuntimeError, "dtype"):
            native(*bad)

    def test_scripted_module_backpropagates(self):
        eager = make_model(get_config("vim_micro_gray"), seed=2, use_native_scan=True)
        portable = make_model(get_config("vim_micro_gray"), seed=2)
        scripted = torch.jit.script(eager)
        x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        self.assertLessEqual((scripted(x) - portable(x)).abs().max().item(), 1e-5)
        scripted(x).square().sum().backward()
        portable(x).square().sum().backward()
        g_native = dict(scripted.named_parameters())["layers.1.mixer.A_b_log"].grad
        g_torch = dict(portable.named_parameters())["layers.1.mixer.A_b_log"].grad
        self.assert_close_relative(g_native, g_torch, "A_b_log grad through the scripted model", rtol=1e-4)


CUDA = HAVE_NATIVE and torch.cuda.is_available()


@unittest.skipUnless(CUDA, "no CUDA device or the operator library was built without CUDA")
class NativeScanCuda(unittest.TestCase):
    def test_matches_cpu(self):
        for shape in [(2, 64, 50, 16, 2), (3, 768, 197, 16, 2), (1, 8, 1, 16, 1), (2, 6, 33, 3, 2)]:
            args = random_scan_inputs(*shape, seed=4)
            weight = torch.randn(shape[0], shape[1], shape[2], generator=torch.Generator().manual_seed(5))
            cpu = forward_backward(native, args, weight)
            gpu = forward_backward(native, [a.cuda() for a in args], weight.cuda())
            for name, c, g in zip(["out"] + NAMES, cpu, gpu):
                scale = c.abs().max().item() or 1.0
                self.assertLessEqual((g.cpu() - c).abs().max().item() / scale, 1e-5, f"{name} {shape}")

    def test_gradcheck_float64(self):
        args = [a.cuda().requires_grad_() for a in random_scan_inputs(2, 4, 6, 4, 2, dtype=torch.float64, seed=9)]
        self.assertTrue(torch.autograd.gradcheck(native, args, eps=1e-6, atol=1e-6))

    def test_same_bits_on_every_run(self):
        # The shared gradients (B, C, A, D, delta_bias) are reduced without atomics.
        args = [a.cuda() for a in random_scan_inputs(4, 96, 41, 16, 2, seed=6)]
        weight = torch.randn(4, 96, 41, generator=torch.Generator().manual_seed(7)).cuda()
        first, second = forward_backward(native, args, weight), forward_backward(native, args, weight)
        for name, a, b in zip(["out"] + NAMES, first, second):
            self.assertTrue(torch.equal(a, b), name)

    def test_scripted_model_matches_cpu(self):
        scripted = torch.jit.script(make_model(get_config("vim_micro_gray"), seed=2, use_native_scan=True))
        x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        on_cpu = scripted(x)
        on_gpu = scripted.cuda()(x.cuda()).cpu()
        self.assertLessEqual((on_gpu - on_cpu).abs().max().item(), 1e-4)


if __name__ == "__main__":
    unittest.main()
