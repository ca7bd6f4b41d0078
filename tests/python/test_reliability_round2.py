"""Nothing lost, round two (docs/RELIABILITY.md): no output inside an input folder, a commit that
no signal splits, one run per output, no file deleted that the run did not create, stale
temporaries cleaned up, every flag through the parameter ranges, image files sniffed before they
are read, names up to the file system's limit, resume states checked as strictly as packed files,
deep metadata, and the smaller bad inputs."""
import json
import os
import shutil
import signal
import subprocess
import unittest

from helpers import BINARY, make_photo_folder
from test_damaged_packed import edit_meta
from test_reliability import QUICK, ReliabilityCase, read_bytes, run, wait_for

STRACE = shutil.which("strace")


@unittest.skipUnless(os.path.exists(BINARY), "vimvq binary not built")
class RoundTwo(ReliabilityCase):
    # --- 1. outputs inside input folders
    def test_an_output_inside_an_input_folder_is_refused(self):
        image = self.path("data", "class0", "0_rocket_baseline.jpg")
        before = read_bytes(image)
        os.symlink(self.path("data", "class2"), self.path("link_into_data"))
        cases = [
            ("quantize", "--report", image),
            ("quantize", "-o", image),
            ("quantize", "-o", self.path("data", "class1", "new.vqpk")),
            ("quantize", "-o", self.path("link_into_data", "new.vqpk")),
            ("quantize", "-o", self.path("data", "class1", "..", "class3", "new.vqpk")),
        ]
        for command, flag, target in cases:
            r = self.quantize(flag, target)
            self.assert_error(r, "inside the calibration folder", self.data)
        eval_data = self.path("eval")
        make_photo_folder(eval_data, per_class=1)
        for flag in ("--predictions", "--report"):
            r = run("eval", self.model, "--data", eval_data, flag, os.path.join(eval_data, "class1", "x.png"))
            self.assert_error(r, "inside the data folder")
        r = self.quantize("-o", self.path("q.vqpk"), "--eval-data", eval_data, "--report",
                          os.path.join(eval_data, "class3", "x.png"))
        self.assert_error(r, "inside the --eval-data folder")
        self.assertEqual(read_bytes(image), before)
        for folder in (self.data, eval_data):
            found = [f for _, _, files in os.walk(folder) for f in files]
            self.assertFalse([f for f in found if not f.endswith((".jpg", ".png"))], found)

    @staticmethod
    def run_of(outputs):
        """Which run each output comes from: the packed file's seed (its bytes are the seed's), the
        JSON report's and the Markdown report's (reports carry timings, so their bytes differ)."""
        packed, report, markdown = outputs
        with open(packed, "rb") as f:
            head = f.read(1 << 16)
        seed = head[head.index(b'"seed":') + 7:].split(b",")[0].split(b"}")[0]
        with open(report) as f:
            report_seed = json.load(f)["params"]["seed"]
        with open(markdown) as f:
            markdown_seed = f.read().split("seed ")[1].split()[0]
        return [int(seed), report_seed, int(markdown_seed)]

    # --- 2. the final commit, interrupted at each rename and link
    @unittest.skipUnless(STRACE, "strace not installed")
    def test_a_signal_during_the_commit_leaves_all_old_or_all_new(self):
        out, report = self.path("o.vqpk"), self.path("r.json")
        outputs = [out, report, self.path("r.md")]
        base = ["quantize", self.model, self.data, *QUICK, "-o", out, "--report", report, "--agreement-images", "0"]
        r = run(*base)
        self.assertEqual(r.returncode, 0, r.stderr)
        old = [read_bytes(p) for p in outputs]
        old_run = self.run_of(outputs)
        r = run(*base, "--seed", "99")  # other bytes: the state a full commit leaves
        self.assertEqual(r.returncode, 0, r.stderr)
        new_run = self.run_of(outputs)
        self.assertNotEqual(old_run, new_run)
        checked = 0
        for syscall in ("rename", "link"):
            for when in range(1, 9):  # the resume states' commits, then the final one
                for p, content in zip(outputs, old):
                    with open(p, "wb") as f:
                        f.write(content)
                traced = subprocess.run(
                    [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
                     "-e", f"inject={syscall}:signal=SIGINT:when={when}", BINARY, *base, "--seed", "99"],
                    capture_output=True, text=True, timeout=300)
                now = self.run_of(outputs)
                self.assertIn(now, (old_run, new_run), f"{syscall} #{when}: a mix of old and new outputs")
                self.assertEqual(self.leftovers(), [], f"{syscall} #{when}")
                if traced.returncode == 128 + signal.SIGINT:
                    message = traced.stderr.strip().splitlines()[-1]
                    said = ("wrote",) if now == new_run else ("nothing was written", "--resume to continue")
                    self.assertTrue(any(s in message for s in said), message)
                    checked += 1
        self.assertGreater(checked, 0, "no injected signal landed: the test proved nothing")

    # --- 3. one run per output
    def test_a_second_run_on_the_same_output_is_refused_naming_the_first(self):
        out = self.path("q.vqpk")
        first = subprocess.Popen([BINARY, "quantize", self.model, self.data, "-o", out, "--threads", "1",
                                  "--calib-size", "8", "--iters", "4000", "--batch-size", "4"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: os.path.exists(out + ".lock") or first.poll() is not None)
            second = self.quantize("-o", out)
            self.assert_error(second, "q.vqpk", f"PID {first.pid}")
        finally:
            first.send_signal(signal.SIGINT)
            first.communicate(timeout=60)
        self.assertEqual(self.leftovers(), [])

    # --- 4. files the run did not create
    def test_a_device_output_keeps_no_resume_state_and_deletes_nothing(self):
        os.symlink("/dev/null", self.path("null"))
        config = self.path("null.resume")
        with open(config, "w") as f:
            json.dump({"iterations": 4}, f)
        r = self.quantize("-o", self.path("null"), "--config", config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no resume state is kept", r.stdout + r.stderr)
        self.assertTrue(os.path.isfile(config))
        user_file = self.path("null2.resume")
        with open(user_file, "w") as f:
            f.write("mine")
        os.symlink("/dev/null", self.path("null2"))
        self.assertEqual(self.quantize("-o", self.path("null2")).returncode, 0)
        self.assertEqual(read_bytes(user_file), b"mine")

    def test_stale_temporaries_of_a_killed_run_are_removed(self):
        dead = subprocess.Popen(["true"])
        dead.wait()
        out = self.path("q.vqpk")
        stale = [f"{out}.tmp{dead.pid}", f"{out}.old{dead.pid}", f"{out}.resume.tmp{dead.pid}"]
        for p in stale:
            with open(p, "w") as f:
                f.write("left by kill -9")
        keep = self.path("q.vqpk.tmpnotapid")
        with open(keep, "w") as f:
            f.write("a user's file")
        r = self.quantize("-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([p for p in stale if os.path.exists(p)], [])
        self.assertTrue(os.path.exists(keep))

    # --- 6. flags through the parameter table
    def test_numeric_flags_obey_the_parameter_ranges(self):
        for flag, value in (("--seed", "-1"), ("--seed", "18446744073709551616"), ("--iters", "4294967298"),
                            ("--bits", "9"), ("--batch-size", "0")):
            r = run("quantize", self.model, self.data, "--dry-run", flag, value)
            self.assert_error(r, f"{flag} {value}")

    # --- 7. image files: the header first, then a cap
    def test_a_huge_file_is_refused_from_its_header_or_its_size(self):
        sparse = self.path("data", "class0", "zz.png")
        with open(sparse, "wb") as f:
            f.truncate(3 << 30)  # 3 GB of zeros, sparse: no image header
        proc = subprocess.Popen([BINARY, "eval", self.model, "--data", self.data], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=120)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("zz.png: not an image", err)
        with open(sparse, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
            f.truncate(300 << 20)  # an image header on 300 MB
        r = run("eval", self.model, "--data", self.data)
        self.assert_error(r, "zz.png", "256 MiB")

    def test_the_header_check_reads_no_more_than_the_header(self):
        sparse = self.path("data", "class0", "zz.png")
        with open(sparse, "wb") as f:
            f.truncate(3 << 30)
        proc = subprocess.Popen([BINARY, "eval", self.model, "--data", self.data], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = status  # reaped here, for its resource usage
        self.assertNotEqual(status, 0)
        self.assertLess(usage.ru_maxrss, 1500 * 1024, "peak resident memory (kB): the file was read whole")

    # --- 8. long names
    def test_any_name_the_file_system_takes_works(self):
        limit = os.pathconf(self.dir, "PC_NAME_MAX")
        out = self.path("o" * (limit - 5) + ".vqpk")  # no room left for '.resume' or '.tmp<pid>'
        report = self.path("r" * (limit - 5) + ".json")
        r = self.quantize("-o", out, "--report", report, "--agreement-images", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isfile(out) and os.path.isfile(report))
        self.assertIn("no room", r.stdout + r.stderr)
        eval_report = self.path("e" * limit)
        r = run("eval", self.model, "--data", self.data, "--report", eval_report)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isfile(eval_report))
        too_long = self.path("x" * (limit + 1))
        self.assert_error(run("eval", self.model, "--data", self.data, "--report", too_long), "file name longer")
        self.assertEqual(self.leftovers(), [])

    # --- 9. a resume state edited with its checksums recomputed
    def test_an_edited_resume_state_is_refused(self):
        out = self.path("q.vqpk")
        args = ["--threads", "2", "--calib-size", "8", "--iters", "400", "--batch-size", "4"]
        proc = subprocess.Popen([BINARY, "quantize", self.model, self.data, "-o", out, *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(out + ".resume"))
        proc.kill()
        proc.wait()
        state = read_bytes(out + ".resume")

        def provenance(edit):
            return lambda meta: edit(meta["provenance"]["resume"])

        edits = {
            "head.weight": lambda m: m["layers"][0].__setitem__("name", "head.weight"),
            "next block 99": provenance(lambda r: r.__setitem__("next_block", 99)),
            "next block 0": provenance(lambda r: r.__setitem__("next_block", 0)),
            "layer of block 1": provenance(lambda r: r["layer_records"][0].__setitem__("block", 1)),
        }
        for what, edit in edits.items():
            with open(out + ".resume", "wb") as f:
                f.write(edit_meta(state, edit))
            r = run("quantize", self.model, self.data, "-o", out, "--resume", *args)
            self.assert_error(r, "q.vqpk.resume")
            self.assertFalse(os.path.exists(out), what)

    # --- 11. the smaller ones
    def test_smaller_bad_inputs(self):
        self.assert_error(run("eval", self.model, "--data", self.data, "--limit", "-5"), "--limit -5")
        self.assert_error(self.quantize("--eval-data", self.data, "--eval-limit", "-5", "-o", self.path("q.vqpk")),
                          "--eval-limit -5")
        self.assert_error(run("eval", self.model, "--data", self.data, "--label-base", "1"), "--label-base")
        flat = self.path("flat")
        os.makedirs(flat)
        for name in ("a.jpg", "b.jpg"):
            shutil.copy(self.path("data", "class0", "0_rocket_baseline.jpg"), os.path.join(flat, name))
        labels = self.path("labels.txt")
        with open(labels, "w") as f:
            f.write("a.jpg 1\nb.jpg 2\na.jpg 3\n")
        self.assert_error(run("eval", self.model, "--data", flat, "--labels", labels), "row 3", "a.jpg",
                          "row 1")
        with open(labels, "w") as f:
            f.write("5\n11\n")  # one-column: 1-based; vim_micro has 7 classes
        self.assert_error(run("eval", self.model, "--data", flat, "--labels", labels), "row 2", "label 11")
        broken = self.path("broken")
        os.makedirs(os.path.join(broken, "class0"))
        with open(os.path.join(broken, "class0", "x.png"), "wb") as f:
            f.write(b"not an image")
        for c in range(1, 7):
            os.makedirs(os.path.join(broken, f"class{c}"))
            shutil.copy(os.path.join(broken, "class0", "x.png"), os.path.join(broken, f"class{c}", "x.png"))
        self.assert_error(run("eval", self.model, "--data", broken, "--on-bad-image", "skip"), "no image could be read")
        packed = self.path("q.vqpk")
        self.assertEqual(self.quantize("-o", packed, "--agreement-images", "0").returncode, 0)
        self.assert_error(run("quantize", packed, self.data, *QUICK, "-o", self.path("again.vqpk")),
                          "is a packed checkpoint")
        os.makedirs(self.path("cfg"))
        self.assert_error(self.quantize("--config", self.path("cfg"), "--dry-run"), "is a folder")
        os.symlink(self.path("loop"), self.path("loop"))
        self.assert_error(run("eval", self.path("loop"), "--data", self.data), "loop", "symbolic links")


if __name__ == "__main__":
    unittest.main()
