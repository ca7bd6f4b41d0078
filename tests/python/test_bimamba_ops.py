"""torch.ops.vimvq.bimamba_scan and bimamba_conv (token-major, both directions) against their
channel-major definitions: selective_scan on flipped and transposed activations, and F.conv1d."""
import unittest

import torch
import torch.nn.functional as F

from helpers import HAVE_NATIVE, forward_backward, forward_backward_per_thread_count

SCAN_NAMES = "out u delta A B C D z delta_bias".split()
CONV_NAMES = "out x weight bias".split()


def scan_inputs(batch, length, width, n_state, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.5):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)
    return [r(batch, length, 2 * width), r(batch, length, 2 * width),
            -torch.rand(2 * width, n_state, generator=g).mul(3).add(0.1).to(dtype),
            r(batch, 2, length, n_state), r(batch, 2, length, n_state), r(2 * width), r(batch, length, width, scale=1.0),
            r(2 * width, scale=0.3)]


def scan_by_definition(u, delta, A, B, C, D, z, delta_bias):
    """The mixer's channel-major formulation: the backward direction flipped, then flipped back."""
    e = z.shape[2]

    def channel_major(t):
        return torch.cat([t[..., :e].transpose(1, 2), t[..., e:].transpose(1, 2).flip(-1)], dim=1)

    def groups(t):
        return torch.stack([t[:, 0], t[:, 1].flip(1)], dim=1).transpose(2, 3)
    gate = torch.cat([z.transpose(1, 2), z.transpose(1, 2).flip(-1)], dim=1)
    y = torch.ops.vimvq.selective_scan(channel_major(u), channel_major(delta), A, groups(B), groups(C), D, gate,
                                       delta_bias)
    return ((y[:, :e] + y[:, e:].flip(-1)) / 2).transpose(1, 2)


def conv_by_definition(x, weight, bias):
    e, taps, length = x.shape[2], weight.shape[1], x.shape[1]
    xc = x.transpose(1, 2)
    forward = F.conv1d(xc, weight[:e].unsqueeze(1), bias[:e], padding=taps - 1, groups=e)[..., :length]
    backward = F.conv1d(xc.flip(-1), weight[e:].unsqueeze(1), bias[e:], padding=taps - 1, groups=e)[..., :length]
    return F.silu(torch.cat([forward, backward.flip(-1)], dim=1)).transpose(1, 2)


def assert_identical(test, results, names):
    for other in results[1:]:
        for name, a, b in zip(names, results[0], other):
            test.assertTrue(torch.equal(a, b), name)


@unittest.skipUnless(HAVE_NATIVE, "libvimvq_ops.so not built")
class BimambaScan(unittest.TestCase):
    def compare(self, shape, seed=0):
        args = scan_inputs(*shape, seed=seed)
        weight = torch.randn(*shape[:3], generator=torch.Generator().manual_seed(seed + 1))
        got = forward_backward(torch.ops.vimvq.bimamba_scan, args, weight)
        want = forward_backward(scan_by_definition, args, weight)
        for name, g, w in zip(SCAN_NAMES, got, want):
            self.assertEqual(g.shape, w.shape, name)
            scale = w.abs().max().item() or 1.0
            self.assertLessEqual((g - w).abs().max().item() / scale, 1e-6, f"{name} {shape}")

    def test_matches_the_channel_major_scan(self):
        # width 20: one full block of 16 lanes and a partial one; N = 4 takes the general-N path
        for shape in [(2, 9, 20, 16), (3, 197, 48, 16), (1, 5, 7, 4), (2, 1, 16, 16)]:
            self.compare(shape)

    def test_gradcheck_float64(self):
        for n_state in (4, 16):
            args = [a.requires_grad_() for a in scan_inputs(2, 6, 5, n_state, dtype=torch.float64, seed=9)]
            self.assertTrue(torch.autograd.gradcheck(torch.ops.vimvq.bimamba_scan, args, eps=1e-6, atol=1e-6),
                            f"N = {n_state}")

    def test_gate_may_be_a_view_of_the_input_projection(self):
        args = scan_inputs(2, 11, 24, 16, seed=3)
        wide = torch.randn(2, 11, 48)
        wide[..., 24:] = args[6]
        strided = list(args)
        strided[6] = wide[..., 24:]
        self.assertFalse(strided[6].is_contiguous())
        self.assertTrue(torch.equal(torch.ops.vimvq.bimamba_scan(*strided), torch.ops.vimvq.bimamba_scan(*args)))

    def test_same_bits_for_any_thread_count(self):
        args = scan_inputs(3, 29, 40, 16, seed=5)
        weight = torch.randn(3, 29, 40, generator=torch.Generator().manual_seed(2))
        results = forward_backward_per_thread_count(torch.ops.vimvq.bimamba_scan, args, weight)
        assert_identical(self, results, SCAN_NAMES)

    def test_bad_shapes_are_refused(self):
        args = scan_inputs(2, 5, 8, 16)
        bad = list(args)
        bad[0] = bad[0][..., :8]
        with self.assertRaisesRegex(RuntimeError, "u must be"):
            torch.ops.vimvq.bimamba_scan(*bad)
        bad = list(args)
        bad[3] = bad[3][:, :1]
        with self.assertRaisesRegex(RuntimeError, "B must be"):
            torch.ops.vimvq.bimamba_scan(*bad)


@unittest.skipUnless(HAVE_NATIVE, "libvimvq_ops.so not built")
class BimambaConv(unittest.TestCase):
    def inputs(self, batch, length, width, taps, seed=0):
        g = torch.Generator().manual_seed(seed)
        # x as the mixer passes it: a (batch, L, E) view of the input projection's (batch, L, 2E)
        x = torch.randn(batch, length, 2 * width, generator=g)[..., :width]
        return [x, torch.randn(2 * width, taps, generator=g), torch.randn(2 * width, generator=g)]

    def test_matches_conv1d(self):
        for shape in [(2, 9, 20, 4), (3, 197, 64, 4), (1, 2, 5, 4), (2, 7, 16, 3), (1, 1, 3, 4)]:
            args = self.inputs(*shape, seed=shape[1])
            weight = torch.randn(shape[0], shape[1], 2 * shape[2], generator=torch.Generator().manual_seed(1))
            got = forward_backward(torch.ops.vimvq.bimamba_conv, args, weight)
            want = forward_backward(conv_by_definition, args, weight)
            for name, g, w in zip(CONV_NAMES, got, want):
                self.assertEqual(g.shape, w.shape, name)
                self.assertLessEqual((g - w).abs().max().item() / w.abs().max().item(), 2e-6, f"{name} {shape}")

    def test_gradcheck_float64(self):
        args = [a.double().requires_grad_() for a in self.inputs(2, 6, 5, 4, seed=4)]
        self.assertTrue(torch.autograd.gradcheck(torch.ops.vimvq.bimamba_conv, args))

    def test_same_bits_for_any_thread_count(self):
        args = self.inputs(5, 23, 24, 4, seed=6)
        weight = torch.randn(5, 23, 48, generator=torch.Generator().manual_seed(2))
        results = forward_backward_per_thread_count(torch.ops.vimvq.bimamba_conv, args, weight)
        assert_identical(self, results, CONV_NAMES)

    def test_bad_shapes_are_refused(self):
        x, weight, bias = self.inputs(1, 4, 6, 4)
        with self.assertRaisesRegex(RuntimeError, "weight must be"):
            torch.ops.vimvq.bimamba_conv(x, weight[:6], bias)


CUDA = HAVE_NATIVE and torch.cuda.is_available()


@unittest.skipUnless(CUDA, "no CUDA device or the operator library was built without CUDA")
class BimambaOpsCuda(unittest.TestCase):
    """CUDA runs the composites (selective_scan's kernels on transposed activations)."""

    def compare(self, op, args, weight, names, rtol):
        cpu = forward_backward(op, args, weight)
        gpu = forward_backward(op, [a.cuda() for a in args], weight.cuda())
        for name, c, g in zip(names, cpu, gpu):
            scale = c.abs().max().item() or 1.0
            self.assertLessEqual((g.cpu() - c).abs().max().item() / scale, rtol, name)

    def test_scan_matches_cpu(self):
        for shape in [(2, 197, 192, 16), (1, 9, 20, 4)]:
            weight = torch.randn(*shape[:3], generator=torch.Generator().manual_seed(5))
            self.compare(torch.ops.vimvq.bimamba_scan, scan_inputs(*shape, seed=4), weight, SCAN_NAMES, 1e-5)

    def test_conv_matches_cpu(self):
        x = torch.randn(3, 197, 384, generator=torch.Generator().manual_seed(6))[..., :192]
        args = [x, torch.randn(384, 4), torch.randn(384)]
        self.compare(torch.ops.vimvq.bimamba_conv, args, torch.randn(3, 197, 384), CONV_NAMES, 1e-5)


if __name__ == "__main__":
    unittest.main()
