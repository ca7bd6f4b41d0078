"""Compressed inference (docs/MODEL_CONTRACT.md, "Compressed linears"): a packed model of a native
export runs on its codes and codebooks through vimvq::vq_linear, in `vimvq eval` and in Python
(vimlib.packed.load), and gives the dequantized dense model's outputs."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch

from helpers import BINARY, HAVE_NATIVE, REPO, make_photo_folder, read_csv, read_json
from vimlib.configs import get_config
from vimlib.export import make_model, save_torchscript
from vimlib.packed import load, read_packed

EXPORT = [sys.executable, os.path.join(REPO, "scripts", "export.py")]


@unittest.skipUnless(os.path.exists(BINARY) and HAVE_NATIVE, "vimvq binary or ops library not built")
class Compressed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.data = os.path.join(cls.dir, "data")
        make_photo_folder(cls.data, per_class=2)
        cls.model = os.path.join(cls.dir, "native.pt")
        r = subprocess.run(EXPORT + ["--config", "vim_micro", "--seed", "5", "-o", cls.model], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        cls.packed = {}
        for method, bits in (("vimvq", 2), ("vimvq", 1), ("rtn", 3)):
            out = os.path.join(cls.dir, f"{method}{bits}.vqpk")
            r = subprocess.run([BINARY, "quantize", cls.model, cls.data, "-o", out, "--bits", str(bits), "--method",
                                method, "--iters", "6", "--calib-size", "8", "--batch-size", "4",
                                "--agreement-images", "0", "--threads", "2", "--report", out + ".json"],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            cls.packed[(method, bits)] = out

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def eval(self, packed, *args):
        report = os.path.join(self.dir, "r.json")
        predictions = os.path.join(self.dir, "p.csv")
        r = subprocess.run([BINARY, "eval", packed, "--data", self.data, "--report", report, "--predictions",
                            predictions, "--threads", "2", *args], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return read_json(report), read_csv(predictions)

    def test_eval_runs_compressed_and_agrees_with_dense(self):
        for (method, bits), packed in self.packed.items():
            compressed, rows = self.eval(packed)
            dense, dense_rows = self.eval(packed, "--dense")
            self.assertEqual(compressed["compressed_layers"], 18, (method, bits))  # 3 blocks x 6 layers
            self.assertEqual(dense["compressed_layers"], 0)
            held, full = compressed["resident_bytes"], dense["resident_bytes"]
            self.assertGreater(held["codes"], 0)
            self.assertEqual(full["codes"] + full["codebooks"], 0)
            self.assertLess(held["rest"], full["rest"])  # the quantized weights are not held
            self.assertEqual(held["total"], held["codes"] + held["codebooks"] + held["rest"])
            # inspect and the quantize report count what eval's loaded model holds.
            r = subprocess.run([BINARY, "inspect", packed, "--json"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["resident_bytes"], held, (method, bits))
            self.assertEqual(read_json(packed + ".json")["size"]["resident_bytes"], held, (method, bits))
            for a, b in zip(rows, dense_rows):
                self.assertEqual(a["pred1"], b["pred1"], (method, bits, a["path"]))
                self.assertAlmostEqual(float(a["prob1"]), float(b["prob1"]), places=5)

    def test_python_load_gives_the_dense_logits(self):
        torch.manual_seed(0)
        images = torch.randn(3, 3, 32, 32)
        for key, packed in self.packed.items():
            _, _, dense = read_packed(packed)
            model = load(packed)
            compressed_layers = [m for name, m in model.named_modules() if name.endswith("in_proj")]
            self.assertTrue(all(m.vq_d > 0 and m.weight.numel() == 0 for m in compressed_layers), key)
            with torch.no_grad():
                want, got = dense(images), model(images)
            error = ((got - want).abs().max() / want.abs().max()).item()
            self.assertLess(error, 1e-5, key)

    def test_portable_exports_stay_dense(self):
        portable = os.path.join(self.dir, "portable.pt")
        save_torchscript(make_model(get_config("vim_micro"), seed=5, use_native_scan=False), portable)
        out = os.path.join(self.dir, "portable.vqpk")
        r = subprocess.run([BINARY, "quantize", portable, self.data, "-o", out, "--iters", "2", "--calib-size", "8",
                            "--batch-size", "4", "--agreement-images", "0"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        report, _ = self.eval(out)
        self.assertEqual(report["compressed_layers"], 0)


if __name__ == "__main__":
    unittest.main()
