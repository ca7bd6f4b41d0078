"""Nothing lost, nothing clobbered (docs/RELIABILITY.md): outputs that are inputs or each other,
special files, all-or-nothing commits, file-size limits, interrupted runs and --resume, bad model
metadata, model paths, image bombs and truncated JPEGs, thread counts."""
import json
import os
import random
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from helpers import BINARY, IMAGES, MICRO, REPO, make_photo_folder

sys.path.insert(0, os.path.join(REPO, "scripts"))
from vimlib.configs import get_config  # noqa: E402
from vimlib.export import make_model, save_torchscript  # noqa: E402

QUICK = ["--threads", "2", "--calib-size", "8", "--iters", "6", "--batch-size", "4", "--set", "hull_update_every=2"]


def run(*args, **kw):
    return subprocess.run([BINARY] + [str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def wait_for(condition, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def micro_with_metadata(path, edit):
    model = make_model(get_config("vim_micro"), seed=1)
    meta = json.loads(model.metadata_json)
    edit(meta)
    model.metadata_json = json.dumps(meta, sort_keys=True)
    save_torchscript(model, path)


class ReliabilityCase(unittest.TestCase):
    """A folder of photographs and a copy of the micro model per test (shared by test_reliability_round2)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.data = os.path.join(self.dir, "data")
        make_photo_folder(self.data)
        self.model = os.path.join(self.dir, "m.pt")
        shutil.copy(MICRO, self.model)

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def assert_error(self, result, *needles):
        self.assertNotEqual(result.returncode, 0, result.stdout)
        line = result.stderr.strip().splitlines()[-1]
        self.assertTrue(line.startswith("vimvq: error:"), result.stderr)
        for needle in needles:
            self.assertIn(needle, line)

    def leftovers(self):
        return [p for p in os.listdir(self.dir) if any(s in p for s in (".tmp", ".old", ".lock"))]

    def assert_no_leftovers(self):
        self.assertEqual(self.leftovers(), [], "temporary files left behind")

    def quantize(self, *args, model=None):
        return run("quantize", model or self.model, self.data, *QUICK, *args)


@unittest.skipUnless(os.path.exists(BINARY), "vimvq binary not built")
class Reliability(ReliabilityCase):
    # --- outputs that are inputs, or each other
    def test_outputs_never_clobber_inputs_or_each_other(self):
        original = read_bytes(self.model)
        same_model = os.path.join(self.dir, ".", "m.pt")
        self.assert_error(self.quantize("-o", same_model), "same file as the model")
        self.assert_error(self.quantize("-o", self.path("q.vqpk"), "--report", self.model), "same file as the model")
        os.link(self.model, self.path("hard_link.pt"))
        self.assert_error(self.quantize("-o", self.path("hard_link.pt")), "same file as the model")
        self.assert_error(run("eval", self.model, "--data", self.data, "--report", self.model), "same file as the model")
        self.assert_error(self.quantize("-o", self.path("x.json"), "--report", self.path("sub/../x.json")),
                          "same file as the packed output")
        os.makedirs(self.path("sub"))
        self.assert_error(self.quantize("-o", self.path("r.md"), "--report", self.path("r.json")),
                          "same file as the packed output")
        self.assertEqual(read_bytes(self.model), original)
        self.assertFalse(os.path.exists(self.path("x.json")) or os.path.exists(self.path("r.json")))
        self.assert_no_leftovers()

    # --- special files are written through, never replaced; their write errors are errors
    def test_special_files(self):
        null = run("eval", self.model, "--data", self.data, "--predictions", "/dev/null", "--report", "/dev/null")
        self.assertIn("same file", null.stderr)  # two outputs naming one device
        ok = run("eval", self.model, "--data", self.data, "--predictions", "/dev/null")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))
        if os.path.exists("/dev/full"):
            full = run("eval", self.model, "--data", self.data, "--report", "/dev/full")
            self.assert_error(full, "/dev/full", "write failed")
            self.assertTrue(stat.S_ISCHR(os.stat("/dev/full").st_mode))
            self.assert_error(self.quantize("-o", "/dev/full"), "/dev/full", "write failed")

    # --- every output of a run, or none
    def test_all_or_nothing(self):
        report = self.path("r.json")
        r = run("eval", self.model, "--data", self.data, "--report", report, "--predictions",
                self.path("missing/p.csv"))
        self.assert_error(r, "missing")
        self.assertFalse(os.path.exists(report))
        # (a rename failing at commit time puts back what was there: tests/cpp/test_output_set.cpp)

    def test_file_size_limit_is_an_error_not_a_silent_death(self):
        limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # noqa: E731
        out = self.path("q.vqpk")
        r = run("quantize", self.model, self.data, *QUICK, "-o", out, preexec_fn=limit)
        self.assert_error(r, "q.vqpk", "write failed")
        self.assertFalse(os.path.exists(out))
        self.assert_no_leftovers()

    # --- interrupted runs and --resume
    def test_sigint_says_what_stopped(self):
        # SIGUSR1 is the warning a scheduler sends before it ends a job (Slurm's --signal).
        for sig, said in ((signal.SIGINT, "interrupted (SIGINT)"), (signal.SIGUSR1, "stopped (SIGUSR1)")):
            out = self.path("q.vqpk")
            proc = subprocess.Popen([BINARY, "quantize", self.model, self.data, "-o", out, "--threads", "2",
                                     "--calib-size", "8", "--iters", "4000", "--batch-size", "4"],
                                    stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
            time.sleep(3)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 128 + sig)
            self.assertIn(f"vimvq: {said}: quantize of", err)
            self.assertFalse(os.path.exists(out))
            self.assert_no_leftovers()

    def test_resume_after_kill_gives_the_same_bytes(self):
        args = ["--threads", "2", "--calib-size", "8", "--iters", "60", "--batch-size", "4"]
        whole = self.path("whole.vqpk")
        r = run("quantize", self.model, self.data, "-o", whole, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        rng = random.Random(7)
        resumed_from_state = 0
        for attempt in range(4):
            out = self.path(f"k{attempt}.vqpk")
            proc = subprocess.Popen([BINARY, "quantize", self.model, self.data, "-o", out] + args,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if attempt % 2:  # at a random moment within the first finished block's successor
                wait_for(lambda: os.path.exists(out + ".resume") or proc.poll() is not None)
                time.sleep(rng.uniform(0.0, 0.5))
            else:  # at a random moment early on, most likely before any block is done
                time.sleep(rng.uniform(0.1, 1.0))
            proc.kill()  # SIGKILL: no handler runs
            proc.wait()
            resumed_from_state += os.path.exists(out + ".resume")
            r = run("quantize", self.model, self.data, "-o", out, "--resume", *args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(read_bytes(out), read_bytes(whole), f"attempt {attempt}")
            self.assertFalse(os.path.exists(out + ".resume"))
        self.assertGreater(resumed_from_state, 0, "no kill landed after a block: the test proved nothing")

    def test_resume_refuses_a_state_of_other_inputs(self):
        out = self.path("q.vqpk")
        proc = subprocess.Popen([BINARY, "quantize", self.model, self.data, "-o", out, "--threads", "2",
                                 "--calib-size", "8", "--iters", "400", "--batch-size", "4"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(out + ".resume"))
        proc.kill()
        proc.wait()
        self.assertTrue(os.path.exists(out + ".resume"))
        r = run("quantize", self.model, self.data, "-o", out, "--resume", "--threads", "2", "--calib-size", "8",
                "--iters", "401", "--batch-size", "4")
        self.assert_error(r, "q.vqpk.resume", "other inputs or parameters")

    # --- models and their metadata
    def test_model_metadata_is_checked_against_the_module(self):
        bad_std = self.path("std0.pt")
        micro_with_metadata(bad_std, lambda m: m["input"].update(std=[0.0, 0.2, 0.2]))
        self.assert_error(run("eval", bad_std, "--data", self.data), "std0.pt", "input.std[0]")
        wide = self.path("classes.pt")
        micro_with_metadata(wide, lambda m: m.update(num_classes=9, class_names=[f"c{i}" for i in range(9)]))
        self.assert_error(run("eval", wide, "--data", self.data, "--predictions", self.path("p.csv")),
                          "classes.pt", "num_classes is 9", "7 class scores")

    def test_model_path_errors(self):
        self.assert_error(run("inspect", self.path("nope.pt")), "nope.pt: no such file")
        self.assert_error(run("inspect", self.data), "is a folder")
        import torch
        ckpt = self.path("ckpt.pth")
        torch.save({"model": {"w": torch.zeros(2)}}, ckpt)
        self.assert_error(run("inspect", ckpt), "ckpt.pth", "PyTorch checkpoint", "scripts/export.py")

    def test_threads_out_of_range(self):
        self.assert_error(run("eval", self.model, "--data", self.data, "--threads", "1000"), "--threads 1000")

    # --- images
    def test_jpeg_bomb_and_truncated_jpeg(self):
        with open(os.path.join(IMAGES, "rocket_baseline.jpg"), "rb") as f:
            jpeg = bytearray(f.read())
        sof = next(i for i in range(len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] in (0xC0, 0xC2))
        bomb = bytearray(jpeg)
        struct.pack_into(">HH", bomb, sof + 5, 65000, 65000)
        folder = os.path.join(self.data, "class0")
        with open(os.path.join(folder, "bomb.jpg"), "wb") as f:
            f.write(bomb)
        self.assert_error(run("eval", self.model, "--data", self.data), "bomb.jpg", "dimensions out of range")
        os.remove(os.path.join(folder, "bomb.jpg"))
        with open(os.path.join(folder, "cut.jpg"), "wb") as f:
            f.write(jpeg[:len(jpeg) // 3])
        self.assert_error(run("eval", self.model, "--data", self.data), "cut.jpg", "corrupt JPEG")
        skipped = run("eval", self.model, "--data", self.data, "--on-bad-image", "skip")
        self.assertEqual(skipped.returncode, 0, skipped.stderr)
        self.assertIn("1 skipped", skipped.stdout)


if __name__ == "__main__":
    unittest.main()
