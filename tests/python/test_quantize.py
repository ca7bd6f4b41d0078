"""End-to-end `vimvq quantize` on the tiny committed model, and its error cases."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch

from helpers import BINARY, MICRO, REPO, make_photo_folder, read_json
from vimlib.packed import read_packed

def bf16_products_honoured():
    """Whether oneDNN runs fp32 products in bf16 on this CPU when asked: the binary's own probe
    (calib::cpu_runs_bf16_matmuls), from Python. 1 + 2^-10 rounds to 1 in bf16."""
    previous = torch.backends.mkldnn.matmul.fp32_precision
    try:
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
        product = torch.full((1024, 256), 1 + 2 ** -10) @ torch.ones(256, 128)
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = previous
    return product.max().item() < 256.125


@unittest.skipUnless(os.path.exists(BINARY), "vimvq binary not built")
class Quantize(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        # 7 classes x 3 images: labelled for --eval-data, and (nested) calibration images.
        cls.data = os.path.join(cls.dir, "data")
        make_photo_folder(cls.data, per_class=3)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def quantize(self, *args, output=None, model=MICRO):
        output = output or os.path.join(self.dir, "out.vqpk")
        cmd = [BINARY, "quantize", model, self.data, "-o", output, "--threads", "2", "--calib-size", "16",
               "--iters", "24", "--batch-size", "8", "--set", "hull_update_every=4"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600), output

    def test_vimvq_end_to_end(self):
        report = os.path.join(self.dir, "report.json")
        r, out = self.quantize("--bits", "2", "--eval-data", self.data, "--report", report)
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = read_json(report)
        for key in ("model", "params", "layers", "blocks", "size", "accuracy", "timing", "peak_memory_mb",
                    "calibration"):
            self.assertIn(key, rep)
        for key in ("full_precision", "quantized", "top1_agreement", "mean_kl"):
            self.assertIn(key, rep["accuracy"])
        acc = rep["accuracy"]
        for value, (low, high) in ((acc["quantized"]["top1"], acc["quantized"]["top1_interval95"]),
                                   (acc["top1_agreement"], acc["top1_agreement_interval95"])):
            self.assertTrue(0 <= low <= value <= high <= 100 and high - low > 10, acc)  # 21 images: wide
        self.assertEqual(len(rep["layers"]), 18)
        for block in rep["blocks"]:
            self.assertEqual(block["confirmed_fraction"], 1.0)
            self.assertLessEqual(block["loss_final"], block["loss_init"])
            self.assertGreaterEqual(len(block["confirmations"]), 4)  # one per stage
        self.assertTrue(os.path.exists(report[:-5] + ".md"))
        self.assertIn("[block  3/3]", r.stderr + r.stdout)
        # The packed file evaluates directly and its size is what the report says.
        self.assertEqual(os.path.getsize(out), rep["size"]["packed_bytes"])
        ev = subprocess.run([BINARY, "eval", out, "--data", self.data, "--reference", MICRO], capture_output=True,
                            text=True, timeout=300)
        self.assertEqual(ev.returncode, 0, ev.stderr)
        self.assertIn("agreement", ev.stdout)
        state, provenance, _ = read_packed(out)
        self.assertEqual(provenance["method"], "vimvq")
        self.assertEqual(provenance["params"]["bits"], 2)
        self.assertNotIn("agreement", rep)  # --eval-data's accuracy block has it, on held-out images

    def test_agreement_with_the_original_without_eval_data(self):
        # 21 images in the folder: 16 calibrate (self.quantize's --calib-size), the other 5 are
        # held out for the agreement check.
        def agreement(name, *args, calib_size=16):
            report, out = os.path.join(self.dir, name + ".json"), os.path.join(self.dir, name + ".vqpk")
            cmd = [BINARY, "quantize", MICRO, self.data, "-o", out, "--report", report, "--threads", "2",
                   "--calib-size", str(calib_size), "--iters", "8", "--batch-size", "8"] + list(args)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            return read_json(report).get("agreement"), out, r.stdout

        held, _, md = agreement("held")
        self.assertEqual((held["held_out"], held["images"], held["skipped"]), (True, 5, 0))
        self.assertTrue(0 <= held["top1_agreement"] <= 100 and held["mean_kl"] >= 0, held)
        self.assertAlmostEqual(held["top1_agreement"], 100 * held["top1_agreeing"] / 5)
        low, high = held["top1_agreement_interval95"]
        self.assertTrue(low < held["top1_agreement"] <= high <= 100, held)  # 5 images: a wide interval
        self.assertIn("on 5 images of " + self.data + " that the calibration left out", md)
        self.assertEqual(agreement("fewer", "--agreement-images", "3")[0]["images"], 3)
        self.assertIsNone(agreement("none", "--agreement-images", "0")[0])
        # No image left out: the calibration images themselves, said to be in-sample; the figures
        # are what `vimvq eval --reference` gives on the same 21 images.
        inside, out, md = agreement("inside", calib_size=64)
        self.assertEqual((inside["held_out"], inside["images"]), (False, 21))
        self.assertIn("in-sample", md)
        ev_report = os.path.join(self.dir, "inside_eval.json")
        ev = subprocess.run([BINARY, "eval", out, "--data", self.data, "--reference", MICRO, "--report", ev_report],
                            capture_output=True, text=True, timeout=300)
        self.assertEqual(ev.returncode, 0, ev.stderr)
        reference = read_json(ev_report)["reference"]
        self.assertAlmostEqual(inside["top1_agreement"], reference["top1_agreement"], places=9)
        self.assertAlmostEqual(inside["mean_kl"], reference["mean_kl"], delta=1e-6 * max(1e-9, reference["mean_kl"]))

    def test_agreement_skips_unreadable_spare_images(self):
        # A flat folder of good photographs and one that cannot be decoded. Seeds where the
        # calibration draws it fail, naming it; where it is a spare, the check skips it.
        from helpers import IMAGES, PHOTOS
        for good, expect_images in ((6, 2), (4, 0)):
            folder = os.path.join(self.dir, f"spares{good}")
            os.makedirs(folder)
            for j in range(good):
                shutil.copy(os.path.join(IMAGES, PHOTOS[j]), os.path.join(folder, f"{j}_{PHOTOS[j]}"))
            shutil.copy(os.path.join(IMAGES, "truncated.png"), os.path.join(folder, "broken.png"))
            spare_runs = 0
            for seed in range(1, 13):
                report = os.path.join(folder + f".{seed}.json")
                cmd = [BINARY, "quantize", MICRO, folder, "-o", folder + f".{seed}.vqpk", "--report", report,
                       "--calib-size", "4", "--iters", "2", "--batch-size", "2", "--seed", str(seed),
                       "--threads", "2"]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                if r.returncode != 0:
                    self.assertIn("broken.png", r.stdout + r.stderr)  # drawn for the calibration
                    continue
                spare_runs += 1
                agreement = read_json(report).get("agreement")
                if expect_images:  # the good spare images count, the broken one is skipped
                    self.assertEqual((agreement["images"], agreement["skipped"]), (expect_images, 1))
                elif agreement is None:  # the only spare is the broken one: no figure, a warning
                    self.assertIn("no agreement check: none of the 1 images it would use could be read", r.stdout + r.stderr)
                else:
                    self.fail(f"seed {seed}: {agreement}")
            self.assertGreater(spare_runs, 0)

    def test_eval_data_needs_a_regular_output_file(self):
        r, _ = self.quantize("--eval-data", self.data, output="/dev/null")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/dev/null: --eval-data evaluates the packed file as written", r.stderr)
        self.assertNotIn("[block", r.stdout + r.stderr)  # refused before any work

    def test_without_output_the_file_goes_beside_the_model(self):
        folder = os.path.join(self.dir, "models")
        os.makedirs(folder)
        model = os.path.join(folder, "vim_x.pt")
        shutil.copy(MICRO, model)
        cmd = [BINARY, "quantize", model, self.data, "--threads", "2", "--calib-size", "8", "--method", "kmeans",
               "--bits", "3"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # cwd: this test's folder
        self.assertEqual(r.returncode, 0, r.stderr)
        expected = os.path.join(folder, "vim_x.kmeans-w3.vqpk")
        self.assertEqual(sorted(os.listdir(folder)), ["vim_x.kmeans-w3.vqpk", "vim_x.pt"])
        self.assertIn("output (no -o given): " + expected, r.stderr + r.stdout)
        _, provenance, _ = read_packed(expected)
        self.assertEqual((provenance["method"], provenance["params"]["bits"]), ("kmeans", 3))

    def test_same_seed_same_bytes(self):
        a = self.quantize("--seed", "7", output=os.path.join(self.dir, "a.vqpk"))
        b = self.quantize("--seed", "7", output=os.path.join(self.dir, "b.vqpk"))
        c = self.quantize("--seed", "8", output=os.path.join(self.dir, "c.vqpk"))
        for r, _ in (a, b, c):
            self.assertEqual(r.returncode, 0, r.stderr)
        with open(a[1], "rb") as fa, open(b[1], "rb") as fb, open(c[1], "rb") as fc:
            da, db, dc = fa.read(), fb.read(), fc.read()
        self.assertEqual(da, db)
        self.assertNotEqual(da, dc)

    def test_bf16_steps(self):
        # Any export takes bf16 steps (the committed micro model too): they are LibTorch's setting,
        # not the model's.
        runs = {}
        for precision in ("fp32", "bf16"):
            report = os.path.join(self.dir, f"steps_{precision}.json")
            r, out = self.quantize("--bits", "2", "--report", report, "--set", f"step_matmuls={precision}",
                                   output=os.path.join(self.dir, f"steps_{precision}.vqpk"))
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out, "rb") as f:
                runs[precision] = (read_json(report), f.read(), r.stdout + r.stderr)
        fp32, bf16 = runs["fp32"], runs["bf16"]
        self.assertEqual(bf16[0]["params"]["step_matmuls"], "bf16")
        kept_fp32 = "keeps this CPU's products in fp32"
        if bf16_products_honoured():
            self.assertNotEqual(fp32[1], bf16[1])
            self.assertNotIn(kept_fp32, bf16[2])
        else:  # an AMD EPYC with AVX-512 BF16 but no AMX: the user is told the option changes nothing
            self.assertIn(kept_fp32, bf16[2])
        self.assertNotIn(kept_fp32, fp32[2])
        # The passes stay fp32: block 0 (the same input in both runs) starts from the same loss to the bit.
        self.assertEqual(fp32[0]["blocks"][0]["loss_init"], bf16[0]["blocks"][0]["loss_init"])
        for block in bf16[0]["blocks"]:
            self.assertLessEqual(block["loss_final"], block["loss_init"])

    def test_baselines_and_ablations_run(self):
        for args in (["--method", "rtn", "--bits", "3"], ["--method", "kmeans", "--bits", "1"],
                     ["--method", "vq4dit"], ["--no-hull-update", "--no-incremental"]):
            report = os.path.join(self.dir, "r.json")
            r, out = self.quantize(*args, "--report", report)
            self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
            rep = read_json(report)
            self.assertEqual(rep["params"]["method"], args[1] if args[0] == "--method" else "vimvq")
            state, _, _ = read_packed(out)
            self.assertIn("layers.2.mixer.out_proj.weight", state)

    def test_include_exclude_and_dry_run(self):
        report = os.path.join(self.dir, "inc.json")
        r, out = self.quantize("--include", "*in_proj*", "--exclude", "layers.0.*", "--method", "kmeans", "--report",
                               report)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([l["name"] for l in read_json(report)["layers"]],
                         ["layers.1.mixer.in_proj.weight", "layers.2.mixer.in_proj.weight"])
        dry_out = os.path.join(self.dir, "dry.vqpk")
        r, _ = self.quantize("--dry-run", output=dry_out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("bpw", r.stdout)
        self.assertFalse(os.path.exists(dry_out))

    def test_dry_run_rows_equal_the_real_runs_rows(self):
        """For every method and width, --dry-run prints the rows a real run logs, minus the errors."""
        for method in ("rtn", "kmeans", "vq4dit", "vimvq"):
            for bits in ("1", "2", "3"):
                args = ["--method", method, "--bits", bits, "--include", "layers.1.*", "--set", "iterations=2"]
                dry, _ = self.quantize("--dry-run", *args)
                real, _ = self.quantize(*args)
                self.assertEqual(dry.returncode, 0, dry.stderr)
                self.assertEqual(real.returncode, 0, real.stderr)
                dry_rows = [l for l in dry.stdout.splitlines() if l.startswith("[block")]
                real_rows = [l.split("] ", 1)[1] for l in (real.stdout + real.stderr).splitlines() if "] [block" in l]
                real_rows = [l.split("  w.err")[0] for l in real_rows if "block loss" not in l]
                self.assertEqual(len(dry_rows), 6, dry.stdout)
                self.assertEqual(dry_rows, real_rows, f"{method} {bits}")
                self.assertIn("bits per weight", dry.stdout.splitlines()[-1])

    def test_help_params_lists_every_key(self):
        r = subprocess.run([BINARY, "quantize", "--help-params"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        state, provenance, _ = read_packed(self.quantize("--set", "iterations=2")[1])
        for key in provenance["params"]:
            self.assertIn(f"  {key} = ", r.stdout)

    def test_every_config_parses(self):
        configs = os.path.join(REPO, "configs")
        for name in sorted(os.listdir(configs)):
            r, _ = self.quantize("--dry-run", "--config", os.path.join(configs, name))
            self.assertEqual(r.returncode, 0, f"{name}: {r.stderr}")

    def test_sweep_gate(self):
        out = os.path.join(self.dir, "sweep")
        cmd = [sys.executable, os.path.join(REPO, "scripts", "sweep.py"), MICRO, self.data, self.data, "--bits", "3",
               "--methods", "kmeans", "vimvq", "--out", out, "--vimvq", BINARY, "--max-drop", "-1", "--",
               "--calib-size", "8", "--iters", "8", "--threads", "2"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # a negative allowed drop always fails
        self.assertIn("--max-drop", r.stderr)
        with open(os.path.join(out, "sweep.csv")) as f:
            self.assertEqual(len(f.read().strip().splitlines()), 3)
        self.assertTrue(os.path.exists(os.path.join(out, "sweep.md")))
        # A dry run lists the points without a result and runs nothing.
        dry = os.path.join(self.dir, "sweep_dry")
        r = subprocess.run(cmd[:cmd.index("--out") + 1] + [dry] + cmd[cmd.index("--out") + 2:cmd.index("--")] +
                           ["--dry-run"] + cmd[cmd.index("--"):], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("# 2 points, 2 without a result", r.stdout)
        self.assertIn(" quantize ", r.stdout)
        self.assertFalse(os.path.exists(dry))

    def assert_refused(self, needle, *args, calib=None, output=None):
        output = output or os.path.join(self.dir, "refused.vqpk")
        cmd = [BINARY, "quantize", MICRO, calib or self.data, "-o", output, "--iters", "2"] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(needle, r.stderr)
        self.assertFalse(os.path.exists(output))

    def test_errors(self):
        empty = os.path.join(self.dir, "empty")
        os.makedirs(empty, exist_ok=True)
        self.assert_refused("empty", calib=empty)
        self.assert_refused("no such folder", calib=os.path.join(self.dir, "missing"))
        self.assert_refused("--bits 5", "--bits", "5")
        self.assert_refused("--method 'gptq'", "--method", "gptq")
        self.assert_refused("matches", "--include", "nothing_like_this")
        self.assert_refused("does not exist", output=os.path.join(self.dir, "no", "such", "dir", "x.vqpk"))
        self.assert_refused("unknown parameter", "--set", "learning_rate=3")
        self.assert_refused("iterations must be an integer", "--set", "iterations=4294967298")
        self.assert_refused("seed must be an integer", "--set", "seed=-1")
        self.assert_refused("stage_fractions must be", "--set", "stage_fractions=[-0.5,1.0]")
        self.assert_refused("lr_logits is a number out of range", "--set", "lr_logits=1e999")
        self.assert_refused("--agreement-images must be 0 (no check) or more", "--agreement-images", "-1")


if __name__ == "__main__":
    unittest.main()
