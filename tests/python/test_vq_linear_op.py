"""torch.ops.vimvq.vq_linear from Python, on every device there is: against a dense product of the
weight decoded here (codebook[group * k + code], flattened, cut to rows x cols), on odd shapes,
several panels and per-row codebooks. The CUDA case runs where a GPU is (scripts/gpu_check.sh)."""
import unittest

import torch

from helpers import HAVE_NATIVE

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CASES = [  # rows, cols, k, d, groups
    (600, 1024, 256, 4, 1), (13, 11, 64, 2, 1), (7, 12, 32, 8, 1), (24, 8, 4, 1, 24), (9, 20, 200, 1, 1),
]


def decoded(codes, codebook, rows, cols, d, groups):
    n_sub = codes.numel()
    k = codebook.shape[0] // groups
    index = torch.arange(n_sub) // (n_sub // groups) * k + codes.long()
    return codebook[index].reshape(-1)[:rows * cols].reshape(rows, cols)


@unittest.skipUnless(HAVE_NATIVE, "ops library not built")
class VqLinearOp(unittest.TestCase):
    def test_equals_the_dense_product_on_every_device(self):
        gen = torch.Generator().manual_seed(3)
        for rows, cols, k, d, groups in CASES:
            n_sub = -(-rows * cols // d)
            codes = torch.randint(0, k, (n_sub,), generator=gen).to(torch.uint8)
            codebook = torch.randn(groups * k, d, generator=gen)
            bias = torch.randn(rows, generator=gen)
            x = torch.randn(2, 5, cols, generator=gen)
            want = torch.nn.functional.linear(x, decoded(codes, codebook, rows, cols, d, groups), bias)
            for device in DEVICES:
                got = torch.ops.vimvq.vq_linear(x.to(device), codes.to(device), codebook.to(device), rows, cols, d,
                                                groups, bias.to(device)).cpu()
                error = ((got - want).abs().max() / want.abs().max()).item()
                self.assertLess(error, 1e-5, (device, rows, cols, k, d, groups))

    def test_operands_that_do_not_fit_are_refused(self):
        codes = torch.zeros(16, dtype=torch.uint8)
        with self.assertRaises(RuntimeError):
            torch.ops.vimvq.vq_linear(torch.randn(2, 8), codes.long(), torch.randn(4, 4), 8, 8, 4, 1, None)
        with self.assertRaises(RuntimeError):
            torch.ops.vimvq.vq_linear(torch.randn(2, 8), codes[:5], torch.randn(4, 4), 8, 8, 4, 1, None)


if __name__ == "__main__":
    unittest.main()
