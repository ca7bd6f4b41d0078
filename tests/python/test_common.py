"""vimlib.common.set_threads: torch's thread count, and a pthreads OpenBLAS pool kept at one thread."""
import ctypes
import unittest

import torch

import helpers  # noqa: F401 (import path)
from vimlib.common import set_threads


class SetThreads(unittest.TestCase):
    def test_torch_threads_and_openblas_pool(self):
        before = torch.get_num_threads()
        try:
            self.assertEqual(set_threads(2), 2)
            self.assertEqual(torch.get_num_threads(), 2)
            try:
                lib = ctypes.CDLL("libopenblas.so.0")
            except OSError:
                self.skipTest("torch does not use OpenBLAS here")
            if lib.openblas_get_parallel() == 1:  # pthreads build: its own pool, now one thread
                self.assertEqual(lib.openblas_get_num_threads(), 1)
        finally:
            torch.set_num_threads(before)


if __name__ == "__main__":
    unittest.main()
