import unittest

import torch

from helpers import HAVE_NATIVE, random_scan_inputs, reference_scan
from vimlib.scan import selective_scan_torch

SHAPES = [(2, 8, 1, 16, 2), (2, 8, 7, 16, 2), (1, 6, 33, 8, 2), (3, 4, 50, 16, 1)]


def grads(fn, args, weight):
    args = [a.detach().clone().requires_grad_() for a in args]
    out = fn(*args)
    return out.detach(), torch.autograd.grad((out * weight).sum(), args)


class ScanAgainstRecurrence(unittest.TestCase):
    """fp32 scans against the float64 transcription: forward and every gradient, max abs <= 1e-5."""

    def check(self, fn, tol=1e-5):
        for shape in SHAPES:
            args = random_scan_inputs(*shape, seed=sum(shape))
            weight = torch.randn(shape[0], shape[1], shape[2], generator=torch.Generator().manual_seed(1))
            out, g = grads(fn, args, weight)
            ref_out, ref_g = grads(reference_scan, [a.double() for a in args], weight.double())
            self.assertLessEqual((out.double() - ref_out).abs().max().item(), tol, f"forward {shape}")
            for name, a, b in zip("u delta A B C D z delta_bias".split(), g, ref_g):
                self.assertEqual(a.shape, b.shape)
                self.assertLessEqual((a.double() - b).abs().max().item(), tol, f"d{name} {shape}")

    def test_torch_scan(self):
        self.check(selective_scan_torch)

    @unittest.skipUnless(HAVE_NATIVE, "libvimvq_ops.so not built")
    def test_native_scan(self):
        self.check(lambda *a: torch.ops.vimvq.selective_scan(*a))

    def test_both_directions_stacked(self):
        """Two groups stacked along channels = the forward scan and the scan of the flipped input."""
        batch, e, length, n = 2, 4, 9, 16
        fwd = random_scan_inputs(batch, e, length, n, 1, seed=3)
        bwd = random_scan_inputs(batch, e, length, n, 1, seed=4)
        flip = lambda t: t.flip(-1)  # noqa: E731
        bwd_flipped = [flip(bwd[0]), flip(bwd[1]), bwd[2], flip(bwd[3]), flip(bwd[4]), bwd[5], flip(bwd[6]), bwd[7]]
        stacked = [torch.cat([fwd[0], bwd_flipped[0]], 1), torch.cat([fwd[1], bwd_flipped[1]], 1),
                   torch.cat([fwd[2], bwd[2]], 0), torch.cat([fwd[3], bwd_flipped[3]], 1),
                   torch.cat([fwd[4], bwd_flipped[4]], 1), torch.cat([fwd[5], bwd[5]], 0),
                   torch.cat([fwd[6], bwd_flipped[6]], 1), torch.cat([fwd[7], bwd[7]], 0)]
        out = selective_scan_torch(*stacked)
        ref_f = reference_scan(*[a.double() for a in fwd])
        ref_b = reference_scan(*[a.double() for a in bwd_flipped]).flip(-1)
        self.assertLessEqual((out[:, :e].double() - ref_f).abs().max().item(), 1e-5)
        self.assertLessEqual((out[:, e:].flip(-1).double() - ref_b).abs().max().item(), 1e-5)

    def test_scan_is_scriptable(self):
        scripted = torch.jit.script(selective_scan_torch)
        args = random_scan_inputs(2, 4, 5, 16, 2)
        self.assertTrue(torch.equal(scripted(*args), selective_scan_torch(*args)))


if __name__ == "__main__":
    unittest.main()
