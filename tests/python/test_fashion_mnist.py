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


@unittest.skipUnless(HAVE_DATA, "dataset-fashion-mnist not installed")
class PreparedFolders(unittest.TestCase):
    def test_image_folder_layout(self):
        from torchvision.datasets import ImageFolder
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_fashion_mnist.py"), "--out", out,
                                "--calib-size", "30", "--test-limit", "40", "--seed", "2"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            test_x, test_y = fashion_mnist.load_split("test")
            folder = ImageFolder(os.path.join(out, "test"))
            self.assertEqual(folder.classes, fashion_mnist.FOLDER_NAMES)
            self.assertEqual(len(folder), 40)
            for path, label in folder.samples:
                index = int(os.path.basename(path)[len("test_"):-len(".png")])
                self.assertEqual(label, test_y[index])
                self.assertTrue(np.array_equal(np.asarray(folder.loader(path).convert("L")), test_x[index]))
            calib = ImageFolder(os.path.join(out, "calib"))
            counts = np.bincount([label for _, label in calib.samples], minlength=10)
            self.assertEqual(counts.sum(), 30)
            self.assertLessEqual(counts.max() - counts.min(), 1, "calibration set must be balanced")


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
