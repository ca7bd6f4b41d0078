"""scripts/compare_predictions.py: paired counts and the exact McNemar p-value."""
import os
import subprocess
import sys
import tempfile
import unittest

from helpers import REPO

SCRIPT = os.path.join(REPO, "scripts", "compare_predictions.py")
HEADER = "path,label,pred1,prob1\n"


def write(folder, name, rows):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(HEADER + "".join(f"{p},{label},{pred},0.9\n" for p, label, pred in rows))
    return path


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


class ComparePredictions(unittest.TestCase):
    def test_counts_and_exact_p_value(self):
        with tempfile.TemporaryDirectory() as tmp:
            # 10 images: both right on 3, only B right on 6, both wrong on 1.
            a = [(f"img{i}.png", "1", "1" if i < 3 else "0") for i in range(10)]
            b = [(f"img{i}.png", "1", "1" if i < 9 else "0") for i in range(10)]
            r = run(write(tmp, "a.csv", a), write(tmp, "b.csv", b[::-1]))  # row order must not matter
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("top-1  A          30.00 %", r.stdout)
            self.assertIn("top-1  B          90.00 %", r.stdout)
            self.assertIn("only A right      0", r.stdout)
            self.assertIn("only B right      6", r.stdout)
            self.assertIn("exact McNemar p   0.0312", r.stdout)  # 2 * (1/2)^6
            same = run(write(tmp, "c.csv", a), write(tmp, "d.csv", a))
            self.assertIn("exact McNemar p   1 ", same.stdout)

    def test_different_images_are_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            a = write(tmp, "a.csv", [("x.png", "1", "1"), ("y.png", "0", "0")])
            b = write(tmp, "b.csv", [("x.png", "1", "1"), ("z.png", "0", "0")])
            r = run(a, b)
            self.assertEqual(r.returncode, 2)
            self.assertIn("cover different images", r.stderr)
            bad = os.path.join(tmp, "bad.csv")
            with open(bad, "w") as f:
                f.write("a,b\n1,2\n")
            r = run(a, bad)
            self.assertEqual(r.returncode, 2)
            self.assertIn("bad.csv: not a vimvq predictions file", r.stderr)


if __name__ == "__main__":
    unittest.main()
