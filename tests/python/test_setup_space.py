"""setup.sh's and sanitize.sh's free-space checks (scripts/free_space.sh): on a disk too full for
the venv or a first build they stop before pip or CMake starts, with one line naming the folder,
and leave no half-made venv or build folder behind."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPO, "scripts")
MORE_THAN_ANY_DISK_MB = 10**9  # a petabyte


def bash(script, cwd, env=None):
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


class FreeSpace(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.realpath(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_enough_space_lets_the_script_go_on(self):
        r = bash(f'set -e; source "{SCRIPTS}/free_space.sh"; require_free_mb . 1 "a small thing"; echo went on',
                 self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "went on\n")
        self.assertEqual(r.stderr, "")

    def test_too_little_space_stops_the_script_with_one_line(self):
        r = bash(f'source "{SCRIPTS}/free_space.sh"; require_free_mb . {MORE_THAN_ANY_DISK_MB} "a huge thing"; '
                 'echo went on', self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        m = re.fullmatch(r"error: (.+): a huge thing needs about (\d+) MB free on its file system, which has (\d+) MB",
                         lines[0])
        self.assertIsNotNone(m, lines[0])
        self.assertEqual(m.group(1), self.dir)
        self.assertEqual(int(m.group(2)), MORE_THAN_ANY_DISK_MB)
        free_mb = shutil.disk_usage(self.dir).free // 2**20
        self.assertLess(abs(int(m.group(3)) - free_mb), 1024)  # df's figure, give or take other writers

    def test_setup_stops_before_making_the_venv(self):
        # A checkout without a venv: setup.sh, its helper and the requirements, as in a fresh clone.
        os.makedirs(os.path.join(self.dir, "scripts"))
        for name in ("setup.sh", "free_space.sh", "requirements.txt"):
            shutil.copy2(os.path.join(SCRIPTS, name), os.path.join(self.dir, "scripts", name))
        r = bash("./scripts/setup.sh", self.dir, {"VIMVQ_VENV_SPACE_MB": str(MORE_THAN_ANY_DISK_MB)})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"error: {self.dir}: the venv's PyTorch (pip install) needs about {MORE_THAN_ANY_DISK_MB} MB free",
                      r.stderr)
        self.assertEqual(sorted(os.listdir(self.dir)), ["scripts"])  # no .venv, no build

    def checkout_with_venv(self, *scripts):
        """A checkout with these scripts and the repository's venv (a link), as after a first setup."""
        os.makedirs(os.path.join(self.dir, "scripts"))
        for name in (*scripts, "free_space.sh", "requirements.txt"):
            shutil.copy2(os.path.join(SCRIPTS, name), os.path.join(self.dir, "scripts", name))
        os.symlink(os.path.join(REPO, ".venv"), os.path.join(self.dir, ".venv"))

    def assert_stops_before_a_first_build(self, script, what):
        self.checkout_with_venv(script)
        r = bash(f"./scripts/{script}", self.dir, {"VIMVQ_BUILD_SPACE_MB": str(MORE_THAN_ANY_DISK_MB)})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"error: {self.dir}: {what} needs about {MORE_THAN_ANY_DISK_MB} MB free", r.stderr)
        self.assertEqual(sorted(os.listdir(self.dir)), [".venv", "scripts"])  # no build folder

    def test_setup_stops_before_a_first_build(self):
        self.assert_stops_before_a_first_build("setup.sh", "the build (build/)")

    def test_sanitize_stops_before_its_first_build(self):
        self.assert_stops_before_a_first_build("sanitize.sh", "the sanitizer build (build-asan/)")

if __name__ == "__main__":
    unittest.main()
