"""The end-to-end stage (`--set e2e_steps=N`): after the block-wise pass, every codebook is tuned
against the full-precision logits with the codes fixed. It lowers the KL it optimises, keeps the
codes, back-propagates block by block to what one graph gives, gives the same bytes for the same
inputs, and a run killed during it resumes to the same bytes as an uninterrupted one."""
import os
import random
import subprocess
import sys
import tempfile
import time
import unittest

from helpers import BINARY, MICRO, REPO, make_photo_folder, read_json
from vimlib import fashion_mnist
from vimlib.packed import read_packed

# The shipped model on a few Fashion-MNIST images: a random export's blocks barely move its
# logits, so its KL to full precision is at rounding level and cannot show the stage work.
SHIPPED = os.path.join(REPO, "tests", "data", "vim_fmnist.pt")
HAVE_DATA = os.path.exists(os.path.join(fashion_mnist.DEFAULT_DIR, "t10k-labels-idx1-ubyte.gz"))
ARGS = ["--threads", "2", "--calib-size", "16", "--batch-size", "8", "--agreement-images", "0", "--bits", "1",
        "--iters", "8", "--set", "kmeans_iterations=20"]


def quantize(model, data, out, *extra):
    return subprocess.run([BINARY, "quantize", model, data, "-o", out, *ARGS, *extra], capture_output=True,
                          text=True, timeout=600)


@unittest.skipUnless(os.path.exists(BINARY) and HAVE_DATA, "vimvq binary or dataset-fashion-mnist missing")
class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_fashion_mnist.py"), "--out",
                            cls.tmp.name, "--calib-size", "16", "--test-limit", "10"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cls.data = os.path.join(cls.tmp.name, "calib")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_lowers_the_kl_and_keeps_the_codes(self):
        plain, tuned = self.path("plain.vqpk"), self.path("tuned.vqpk")
        self.assertEqual(quantize(SHIPPED, self.data, plain).returncode, 0)
        r = quantize(SHIPPED, self.data, tuned, "--set", "e2e_steps=40", "--set", "e2e_lr=0.001", "--report",
                     tuned + ".json")
        self.assertEqual(r.returncode, 0, r.stderr)
        stage = read_json(tuned + ".json")["end_to_end"]
        self.assertEqual(stage["steps"], 40)
        self.assertLess(stage["kl_after"], stage["kl_before"])
        self.assertIn("end-to-end stage: mean KL against full precision", r.stdout)  # the log
        # The block-wise pass is the same, so are the codes; only codebooks moved.
        _, _, a = read_packed(plain)
        _, _, b = read_packed(tuned)
        a_state, b_state = a.state_dict(), b.state_dict()
        moved = [k for k in a_state if not a_state[k].equal(b_state[k])]
        self.assertTrue(moved and all(".mixer." in k and k.endswith("weight") for k in moved), moved)
        self.assertFalse([k for k in moved if a_state[k].dim() == 1], moved)

    def test_rest_tunes_the_blocks_norms_and_biases_too(self):
        plain, rest = self.path("codebooks.vqpk"), self.path("rest.vqpk")
        stage = {}
        for out, flag in ((plain, "false"), (rest, "true")):
            r = quantize(SHIPPED, self.data, out, "--set", "e2e_steps=40", "--set", "e2e_lr=0.001", "--set",
                         f"e2e_rest={flag}", "--report", out + ".json")
            self.assertEqual(r.returncode, 0, r.stderr)
            stage[flag] = read_json(out + ".json")["end_to_end"]
        self.assertEqual(stage["false"]["rest_values"], 0)
        self.assertIn("norms, biases and D against the full-precision logits", r.stdout)
        _, _, a = read_packed(plain)
        _, _, b = read_packed(rest)
        a_state, b_state = a.state_dict(), b.state_dict()
        moved = [k for k in a_state if a_state[k].dim() == 1 and not a_state[k].equal(b_state[k])]
        self.assertTrue(any(k.endswith("norm.weight") for k in moved), moved)
        self.assertTrue(any(k.endswith("dt_proj.bias") for k in moved), moved)
        self.assertTrue(all(k.startswith("layers.") for k in moved), moved)
        self.assertEqual(stage["true"]["rest_values"], sum(b_state[k].numel() for k in b_state
                                                           if k.startswith("layers.") and b_state[k].dim() == 1))

    def test_one_graph_gives_what_block_by_block_gives(self):
        # e2e_by_blocks (the default) runs each block's forward again to back-propagate it alone;
        # the gradients are the whole graph's, so the tuned model is the same up to rounding.
        stage = {}
        for by_blocks in ("true", "false"):
            out = self.path(f"by_blocks_{by_blocks}.vqpk")
            r = quantize(SHIPPED, self.data, out, "--set", "e2e_steps=40", "--set", "e2e_lr=0.001", "--set",
                         f"e2e_by_blocks={by_blocks}", "--report", out + ".json")
            self.assertEqual(r.returncode, 0, r.stderr)
            stage[by_blocks] = read_json(out + ".json")["end_to_end"]
        self.assertEqual(stage["true"]["kl_before"], stage["false"]["kl_before"])
        self.assertLess(stage["true"]["kl_after"], 0.9 * stage["true"]["kl_before"])
        self.assertAlmostEqual(stage["true"]["kl_after"] / stage["false"]["kl_after"], 1.0, delta=0.01)

    def test_same_bytes_and_a_kill_during_the_stage_resumes_to_them(self):
        # With e2e_rest: the stage then also changes the model's own parameters, which a resumed run
        # must start again from the file's.
        extra = ["--set", "e2e_steps=120", "--set", "e2e_lr=0.001", "--set", "e2e_rest=true"]
        whole = self.path("whole.vqpk")
        self.assertEqual(quantize(SHIPPED, self.data, whole, *extra).returncode, 0)
        again = self.path("again.vqpk")
        self.assertEqual(quantize(SHIPPED, self.data, again, *extra).returncode, 0)
        with open(whole, "rb") as f, open(again, "rb") as g:
            self.assertEqual(f.read(), g.read())
        out = self.path("killed.vqpk")
        log = self.path("killed.log")
        with open(log, "w") as err:
            proc = subprocess.Popen([BINARY, "quantize", SHIPPED, self.data, "-o", out, *ARGS, *extra],
                                    stdout=err, stderr=subprocess.STDOUT)
            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None:
                with open(log) as f:
                    if "end-to-end stage: 120 steps" in f.read():
                        break
                time.sleep(0.05)
            time.sleep(random.Random(5).uniform(0.1, 0.5))
            in_stage = proc.poll() is None
            proc.kill()
            proc.wait()
        self.assertTrue(in_stage, "the run ended before the kill: the test proved nothing")
        self.assertFalse(os.path.exists(out))
        r = quantize(SHIPPED, self.data, out, "--resume", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(whole, "rb") as f, open(out, "rb") as g:
            self.assertEqual(f.read(), g.read())
        self.assertFalse(os.path.exists(out + ".resume"))


@unittest.skipUnless(os.path.exists(BINARY), "vimvq binary not built")
class ExtraImages(unittest.TestCase):
    """`e2e_extra_images`: the stage also trains on the seeded shuffle's next images of the folder,
    and the agreement check leaves them out."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.tmp.name, "photos")
        make_photo_folder(cls.data, per_class=3)  # 21 images

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def quantize(self, name, *extra):
        out = os.path.join(self.tmp.name, name + ".vqpk")
        r = subprocess.run([BINARY, "quantize", MICRO, self.data, "-o", out, "--report", out + ".json", "--threads",
                            "2", "--calib-size", "8", "--method", "kmeans", "--bits", "2", "--set", "e2e_steps=3",
                            *extra], capture_output=True, text=True, timeout=300)
        return r, out

    def test_the_stage_trains_on_them_and_the_agreement_check_leaves_them_out(self):
        r, out = self.quantize("extra", "--set", "e2e_extra_images=5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("and 5 more for the end-to-end stage", r.stdout)
        report = read_json(out + ".json")
        self.assertEqual(report["end_to_end"]["images"], 13)
        self.assertEqual(report["agreement"]["images"], 21 - 8 - 5)
        self.assertTrue(report["agreement"]["held_out"])
        self.assertEqual(report["params"]["e2e_extra_images"], 5)
        r, plain = self.quantize("plain")
        self.assertEqual(r.returncode, 0, r.stderr)
        without = read_json(plain + ".json")
        self.assertEqual(without["agreement"]["images"], 21 - 8)
        # The provenance's list hash names the stage's images too.
        self.assertNotEqual(report["calibration"]["list_hash_fnv1a64"], without["calibration"]["list_hash_fnv1a64"])

    def test_refusals(self):
        r, out = self.quantize("toomany", "--set", "e2e_extra_images=14")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(self.data, r.stderr)
        self.assertIn("e2e_extra_images 14 needs that many images besides the 8 calibration images", r.stderr)
        self.assertFalse(os.path.exists(out))
        r, out = self.quantize("nostage", "--set", "e2e_extra_images=2", "--set", "e2e_steps=0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("e2e_extra_images: the images are the end-to-end stage's; set e2e_steps too", r.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
