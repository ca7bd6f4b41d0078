"""Runs the vimvq binary (path from VIMVQ_BINARY, set by CTest) on good and bad inputs."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch

from helpers import BINARY, IMAGES, MICRO, PHOTOS, REPO, make_photo_folder, read_csv, read_json, read_text
from vimlib import packed  # noqa: E402 (helpers puts scripts/ on the path)
from vimlib.model import CONTRACT_VERSION  # noqa: E402

@unittest.skipUnless(os.path.exists(BINARY), "vimvq binary not built")
class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.data = os.path.join(self.dir, "data")
        make_photo_folder(self.data)

    def tearDown(self):
        self.tmp.cleanup()

    def run_vimvq(self, *args):
        return subprocess.run([BINARY] + list(args), capture_output=True, text=True, timeout=300)

    def assert_error(self, result, *needles, outputs=()):
        self.assertNotEqual(result.returncode, 0, result.stdout)
        line = result.stderr.strip().splitlines()[-1]
        self.assertTrue(line.startswith("vimvq: error:"), result.stderr)
        for needle in needles:
            self.assertIn(needle, line)
        for path in outputs:
            self.assertFalse(os.path.exists(path), f"{path} must not exist after a failed run")

    def test_eval_report_and_predictions(self):
        report, preds = os.path.join(self.dir, "r.json"), os.path.join(self.dir, "p.csv")
        r = self.run_vimvq("eval", MICRO, "--data", self.data, "--batch-size", "4", "--report", report,
                           "--predictions", preds, "--reference", MICRO)
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = read_json(report)
        for key in ("top1", "top5", "per_class", "images_per_second", "wall_seconds", "skipped", "reference"):
            self.assertIn(key, rep)
        self.assertEqual(rep["images"], 14)
        self.assertEqual(rep["reference"]["top1_agreement"], 100.0)
        low, high = rep["reference"]["top1_agreement_interval95"]
        self.assertAlmostEqual(low, 78.47, places=2)  # Wilson, 14 of 14
        self.assertEqual(high, 100.0)
        low, high = rep["top1_interval95"]
        self.assertTrue(0 <= low <= rep["top1"] <= high <= 100, rep)
        self.assertIn("95 % interval", r.stdout)
        self.assertAlmostEqual(rep["reference"]["mean_kl"], 0.0, places=12)
        rows = read_csv(preds)
        self.assertEqual(len(rows), 14)
        self.assertIn("top-1", r.stdout)
        # Cross-check top-1 against the model run from Python on the same preprocessing is done in the
        # C++ preprocessing tests; here the report must agree with its own predictions file.
        correct = sum(row["label"] == row["pred1"] for row in rows)
        self.assertAlmostEqual(rep["top1"], 100.0 * correct / 14, places=6)

    def test_thread_count_does_not_change_results(self):
        outs = []
        for threads in ("1", "2"):
            p = os.path.join(self.dir, f"p{threads}.csv")
            r = self.run_vimvq("eval", MICRO, "--data", self.data, "--threads", threads, "--batch-size", "3",
                               "--predictions", p)
            self.assertEqual(r.returncode, 0, r.stderr)
            outs.append(read_text(p))
        self.assertEqual(outs[0], outs[1])

    def test_native_scan_models_run(self):
        native = os.path.join(self.dir, "native.pt")
        r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "export.py"), "--config", "vim_micro",
                            "--seed", "1", "-o", native], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        outs = []
        for model in (native, MICRO):  # MICRO: the same weights (seed 1) with the portable scan
            p = os.path.join(self.dir, os.path.basename(model) + ".csv")
            r = self.run_vimvq("eval", model, "--data", self.data, "--predictions", p)
            self.assertEqual(r.returncode, 0, r.stderr)
            outs.append([row["pred1"] for row in read_csv(p)])
        self.assertEqual(outs[0], outs[1])

    def test_bad_image_fail_and_skip(self):
        shutil.copy(os.path.join(IMAGES, "truncated.png"), os.path.join(self.data, "class3", "broken.png"))
        report = os.path.join(self.dir, "r.json")
        self.assert_error(self.run_vimvq("eval", MICRO, "--data", self.data, "--report", report), "broken.png",
                          outputs=[report])
        r = self.run_vimvq("eval", MICRO, "--data", self.data, "--on-bad-image", "skip", "--report", report)
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = read_json(report)
        self.assertEqual(rep["skipped"], 1)
        self.assertEqual(rep["images"], 14)

    def test_errors(self):
        report = os.path.join(self.dir, "r.json")
        empty = os.path.join(self.dir, "empty")
        os.makedirs(empty)
        self.assert_error(self.run_vimvq("eval", MICRO, "--data", os.path.join(self.dir, "nope"), "--report", report),
                          "nope: no such folder", outputs=[report])
        self.assert_error(self.run_vimvq("eval", MICRO, "--data", empty), "empty")
        os.makedirs(os.path.join(self.data, "class7"))
        shutil.copy(os.path.join(IMAGES, PHOTOS[0]), os.path.join(self.data, "class7", "x.jpg"))
        self.assert_error(self.run_vimvq("eval", MICRO, "--data", self.data), "8 class folders", "7 classes")
        self.assert_error(self.run_vimvq("eval", MICRO, "--data", self.data, "--device", "tpu"), "unknown device")
        if not torch.cuda.is_available():
            self.assert_error(self.run_vimvq("eval", MICRO, "--data", self.data, "--device", "cuda"), "CUDA")
        self.assert_error(self.run_vimvq("eval", os.path.join(IMAGES, "not_an_image.jpg"), "--data", self.data),
                          "not_an_image.jpg", "not a TorchScript model")

    def test_model_breaking_the_contract(self):
        class Plain(torch.nn.Module):
            def forward(self, x):
                return x * 2
        path = os.path.join(self.dir, "plain.pt")
        torch.jit.save(torch.jit.script(Plain()), path)
        self.assert_error(self.run_vimvq("inspect", path), "plain.pt", "breaks the vimvq model contract",
                          "forward_embed")

    def test_version(self):
        r = self.run_vimvq("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(REPO, "CMakeLists.txt")) as f:
            project_version = re.search(r"project\(vimvq VERSION ([0-9.]+)", f.read()).group(1)
        lines = r.stdout.strip().splitlines()
        self.assertEqual(lines[0], f"vimvq {project_version}")
        # The tests run under the venv's PyTorch, whose LibTorch the binary is built against.
        self.assertTrue(lines[1].startswith(f"LibTorch {torch.__version__.split('+')[0]} (built against)"), lines)
        self.assertEqual(lines[2], f"packed checkpoint format {packed.MAJOR}.0 (reads {packed.OLDEST_MAJOR}.x to {packed.MAJOR}.x), "
                                   f"model contract {CONTRACT_VERSION}")

    def test_inspect_json(self):
        r = self.run_vimvq("inspect", MICRO, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual(len(info["layers"]), 18)
        model = torch.jit.load(MICRO)
        params = dict(model.named_parameters())
        w = params["layers.0.mixer.in_proj.weight"].double().flatten()
        sd = (w - w.mean()).pow(2).mean().sqrt()
        self.assertAlmostEqual(info["layers"][0]["max_abs_over_std"], (w.abs().max() / sd).item(), places=6)
        for p in info["packed"]:
            # On this tiny model codebooks dominate (2 bits can exceed 3 bits); the report must say so.
            self.assertLess(p["model_bytes"], info["fp32_bytes"])
            self.assertAlmostEqual(p["effective_bits_per_weight"],
                                   p["index_bits_per_weight"] + p["codebook_bits_per_weight"], places=9)
            self.assertGreater(p["codebook_bits_per_weight"], 0)


if __name__ == "__main__":
    unittest.main()
