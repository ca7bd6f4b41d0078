"""Slower test: the shipped Fashion-MNIST model quantized at 2 bits with a short budget."""
import os
import subprocess
import sys
import tempfile
import unittest

from helpers import BINARY, REPO, read_json
from vimlib import fashion_mnist

SHIPPED = os.path.join(REPO, "tests", "data", "vim_fmnist.pt")
HAVE_DATA = os.path.exists(os.path.join(fashion_mnist.DEFAULT_DIR, "t10k-labels-idx1-ubyte.gz"))
# Measured with exactly these settings on 2026-11-27: 88.1 % quantized (88.8 % full precision) on the
# first 1,000 test images. The run is deterministic on one machine; the floor leaves 1.1 points for
# another CPU's floating-point paths (the scan kernel is built with -march=native).
FLOOR_TOP1 = 87.0


@unittest.skipUnless(os.path.exists(BINARY) and os.path.exists(SHIPPED) and HAVE_DATA,
                     "binary, shipped model or dataset-fashion-mnist missing")
class ShippedModelAtTwoBits(unittest.TestCase):
    def test_short_budget_keeps_accuracy(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_fashion_mnist.py"), "--out", tmp,
                                "--calib-size", "64", "--test-limit", "1000"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            report = os.path.join(tmp, "r.json")
            r = subprocess.run([BINARY, "quantize", SHIPPED, os.path.join(tmp, "calib"), "-o", os.path.join(tmp, "q.vqpk"),
                                "--bits", "2", "--iters", "40", "--batch-size", "32", "--set", "kmeans_iterations=30",
                                "--eval-data", os.path.join(tmp, "test"), "--report", report],
                               capture_output=True, text=True, timeout=1200)
            self.assertEqual(r.returncode, 0, r.stderr)
            acc = read_json(report)["accuracy"]
            self.assertGreaterEqual(acc["quantized"]["top1"], FLOOR_TOP1)
            self.assertGreater(acc["top1_agreement"], 0)


if __name__ == "__main__":
    unittest.main()
