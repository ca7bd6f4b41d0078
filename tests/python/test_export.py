import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch

from helpers import HAVE_NATIVE, REPO
from vimlib.configs import get_config
from vimlib.export import make_model

EXPORT = [sys.executable, os.path.join(REPO, "scripts", "export.py")]


class ExportCommand(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.state = make_model(get_config("vim_micro"), seed=11).state_dict()

    def tearDown(self):
        self.tmp.cleanup()

    def export(self, *args):
        return subprocess.run(EXPORT + list(args), capture_output=True, text=True)

    def save_checkpoint(self, state):
        path = os.path.join(self.dir, "ckpt.pth")
        torch.save({"model": state, "args": {"note": "official files also carry their training args"}}, path)
        return path

    def test_checkpoint_round_trip(self):
        ckpt = self.save_checkpoint(self.state)
        out = os.path.join(self.dir, "m.pt")
        r = self.export("--config", "vim_micro", "--checkpoint", ckpt, "-o", out, "--scan", "torch")
        self.assertEqual(r.returncode, 0, r.stderr)
        loaded = torch.jit.load(out)
        for k, v in loaded.state_dict().items():
            self.assertTrue(torch.equal(v, self.state[k]), k)
        meta = json.loads(loaded.metadata())
        self.assertEqual(meta["source"]["kind"], "checkpoint")
        self.assertEqual(meta["scan"], "torch")

    @unittest.skipUnless(HAVE_NATIVE, "libvimvq_ops.so not built")
    def test_native_scan_is_the_default(self):
        native, portable = os.path.join(self.dir, "n.pt"), os.path.join(self.dir, "p.pt")
        self.assertEqual(self.export("--config", "vim_micro", "--seed", "2", "-o", native).returncode, 0)
        self.assertEqual(self.export("--config", "vim_micro", "--seed", "2", "--scan", "torch", "-o", portable)
                         .returncode, 0)
        n, p = torch.jit.load(native), torch.jit.load(portable)
        self.assertEqual(json.loads(n.metadata())["scan"], "native")
        # The native file needs the operator library: a fresh interpreter without it cannot load it.
        probe = "import sys, torch; torch.jit.load(sys.argv[1])"
        self.assertNotEqual(subprocess.run([sys.executable, "-c", probe, native], capture_output=True).returncode, 0)
        self.assertEqual(subprocess.run([sys.executable, "-c", probe, portable], capture_output=True).returncode, 0)
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        self.assertLessEqual((n(x) - p(x)).abs().max().item(), 1e-5)

    @unittest.skipUnless(HAVE_NATIVE, "libvimvq_ops.so not built")
    def test_from_model_keeps_weights_and_metadata(self):
        portable, native = os.path.join(self.dir, "p.pt"), os.path.join(self.dir, "n.pt")
        ckpt = self.save_checkpoint(self.state)
        self.assertEqual(self.export("--config", "vim_micro", "--checkpoint", ckpt, "--scan", "torch", "-o", portable)
                         .returncode, 0)
        r = self.export("--from-model", portable, "-o", native)
        self.assertEqual(r.returncode, 0, r.stderr)
        p, n = torch.jit.load(portable), torch.jit.load(native)
        for k, v in n.state_dict().items():
            self.assertTrue(torch.equal(v, self.state[k]), k)
        meta_p, meta_n = json.loads(p.metadata()), json.loads(n.metadata())
        self.assertEqual(meta_n.pop("scan"), "native")
        self.assertEqual(meta_p.pop("scan"), "torch")
        self.assertEqual(meta_n, meta_p)
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        self.assertLessEqual((n(x) - p(x)).abs().max().item(), 1e-5)

    def test_from_model_refuses_what_is_not_a_model(self):
        ckpt = self.save_checkpoint(self.state)
        out = os.path.join(self.dir, "m.pt")
        r = self.export("--from-model", ckpt, "--scan", "torch", "-o", out)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a vimvq TorchScript model", r.stderr)
        self.assertFalse(os.path.exists(out))

    def test_random_init_is_seeded(self):
        a, b = os.path.join(self.dir, "a.pt"), os.path.join(self.dir, "b.pt")
        for path in (a, b):
            self.assertEqual(self.export("--config", "vim_micro", "--seed", "4", "-o", path).returncode, 0)
        sa, sb = torch.jit.load(a).state_dict(), torch.jit.load(b).state_dict()
        self.assertTrue(all(torch.equal(sa[k], sb[k]) for k in sa))

    def assert_refused(self, state, *needles):
        out = os.path.join(self.dir, "bad.pt")
        r = self.export("--config", "vim_micro", "--checkpoint", self.save_checkpoint(state), "-o", out)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("ckpt.pth", r.stderr)
        for needle in needles:
            self.assertIn(needle, r.stderr)
        self.assertFalse(os.path.exists(out), "a refused export must not leave an output file")

    def test_missing_key(self):
        state = dict(self.state)
        del state["layers.1.mixer.D_b"]
        self.assert_refused(state, "missing", "layers.1.mixer.D_b")

    def test_unexpected_key(self):
        state = dict(self.state, **{"layers.0.mixer.bogus": torch.zeros(3)})
        self.assert_refused(state, "unexpected", "layers.0.mixer.bogus")

    def test_wrong_shape(self):
        state = dict(self.state, **{"head.weight": torch.zeros(5, 32)})
        self.assert_refused(state, "wrong shape", "head.weight")

    def test_not_a_checkpoint(self):
        path = os.path.join(self.dir, "ckpt.pth")
        with open(path, "w") as f:
            f.write("not a checkpoint")
        r = self.export("--config", "vim_micro", "--checkpoint", path, "-o", os.path.join(self.dir, "x.pt"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("ckpt.pth", r.stderr)


if __name__ == "__main__":
    unittest.main()
