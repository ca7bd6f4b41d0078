import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

from helpers import REPO
from vimlib import fashion_mnist

SHIPPED = os.path.join(REPO, "tests", "data", "vim_fmnist.pt")
HAVE_DATA = os.path.exists(os.path.join(fashion_mnist.DEFAULT_DIR, "t10k-labels-idx1-ubyte.gz"))


def prepare(out, *args):
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_fashion_mnist.py"), "--out", out,
                           *args], capture_output=True, text=True)


def check_folder(test, root, images, labels, prefix):
    """Each image in the ImageFolder `root` is the data set's image of its file name's index, in its label's
    folder; returns the indices."""
    from torchvision.datasets import ImageFolder
    folder = ImageFolder(root)
    test.assertEqual(folder.classes, fashion_mnist.FOLDER_NAMES)
    indices = []
    for path, label in folder.samples:
        index = int(os.path.basename(path)[len(prefix) + 1:-len(".png")])
        test.assertEqual(label, labels[index])
        test.assertTrue(np.array_equal(np.asarray(folder.loader(path).convert("L")), images[index]))
        indices.append(index)
    return indices


@unittest.skipUnless(HAVE_DATA, "dataset-fashion-mnist not installed")
class PreparedFolders(unittest.TestCase):
    def test_image_folder_layout(self):
        with tempfile.TemporaryDirectory() as out:
            r = prepare(out, "--calib-size", "30", "--test-limit", "40", "--seed", "2")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(check_folder(self, os.path.join(out, "test"), *fashion_mnist.load_split("test"),
                                              "test")), 40)
            train_x, train_y = fashion_mnist.load_split("train")
            calib = check_folder(self, os.path.join(out, "calib"), train_x, train_y, "train")
            counts = np.bincount(train_y[calib], minlength=10)
            self.assertEqual(counts.sum(), 30)
            self.assertLessEqual(counts.max() - counts.min(), 1, "calibration set must be balanced")
            self.assertFalse(os.path.exists(os.path.join(out, "val")), "val/ is written only when asked for")

    def test_val_split_holds_no_calibration_image(self):
        train = fashion_mnist.load_split("train")
        with tempfile.TemporaryDirectory() as out:
            r = prepare(out, "--calib-size", "20", "--test-limit", "1", "--val-size", "50")
            self.assertEqual(r.returncode, 0, r.stderr)
            calib = set(check_folder(self, os.path.join(out, "calib"), *train, "train"))
            val = set(check_folder(self, os.path.join(out, "val"), *train, "train"))
            self.assertEqual((len(calib), len(val)), (20, 50))
            self.assertFalse(calib & val)
            r = prepare(out, "--calib-size", "20", "--val-size", str(len(train[1])))
            self.assertEqual(r.returncode, 2)
            self.assertIn("too few training images are left for a balanced --val-size", r.stderr)


@unittest.skipUnless(HAVE_DATA and os.path.exists(SHIPPED), "shipped model or data set missing")
class ShippedModel(unittest.TestCase):
    def test_recorded_accuracy_on_test_split(self):
        model = torch.jit.load(SHIPPED)
        meta = json.loads(model.metadata())
        self.assertEqual(meta["class_names"], fashion_mnist.CLASS_NAMES)
        self.assertEqual(sorted(meta["class_folders"]), meta["class_folders"])
        self.assertGreaterEqual(meta["config"]["depth"], 8)
        self.assertGreaterEqual(meta["config"]["embed_dim"], 96)
        images, labels = fashion_mnist.load_split("test")
        x = (torch.from_numpy(images.copy()).float().div(255).unsqueeze(1) - meta["input"]["mean"][0]) \
            / meta["input"]["std"][0]
        correct = 0
        with torch.no_grad():
            for i in range(0, len(x), 500):
                correct += (model(x[i:i + 500]).argmax(1) == torch.from_numpy(labels[i:i + 500])).sum().item()
        top1 = 100.0 * correct / len(x)
        self.assertAlmostEqual(top1, meta["accuracy"]["top1"], delta=0.006)
        self.assertGreaterEqual(top1, 88.0)


if __name__ == "__main__":
    unittest.main()
