"""The README's commands work with this build, and the documentation's relative links resolve.

The quick start's and the Commands section's shell blocks run as written in a sandbox, with only
their inputs swapped for fixtures: the official checkpoint becomes a vim_micro state dict (and
`--config vim_tiny` vim_micro), the ImageNet folders become photo folders, the Fashion-MNIST
folders a small prepared copy, `--device cuda` the CPU where there is no GPU, and full
calibrations get a few steps. Every option the Commands section names must be in the `--help` of
its command.
"""
import os
import re
import subprocess
import tempfile
import unittest

import torch

from helpers import BINARY, REPO, make_photo_folder
from vimlib.configs import get_config
from vimlib.export import make_model
from vimlib.fashion_mnist import DEFAULT_DIR as FASHION_MNIST_DIR

README = os.path.join(REPO, "README.md")
DOCS = [README, os.path.join(REPO, "CHANGELOG.md")] + sorted(
    os.path.join(REPO, "docs", f) for f in os.listdir(os.path.join(REPO, "docs")) if f.endswith(".md"))
FAST_CALIBRATION = " --iters 2 --calib-size 8 --batch-size 4 --agreement-images 4"


def readme_sections():
    """{heading text: body} of the README's level-2 sections."""
    sections, name = {}, None
    for line in open(README).read().splitlines():
        if line.startswith("## "):
            name = line[3:]
            sections[name] = []
        elif name is not None:
            sections[name].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


def section(title_start):
    matches = [body for name, body in readme_sections().items() if name.startswith(title_start)]
    if len(matches) != 1:
        raise AssertionError(f"README.md: expected one section starting '{title_start}', found {len(matches)}")
    return matches[0]


def shell_blocks(text):
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def options_in(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


def run(cmd, cwd=None, timeout=600):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


class RelativeLinks(unittest.TestCase):
    def test_every_relative_link_resolves(self):
        checked = 0
        for doc in DOCS:
            text = re.sub(r"```.*?```", "", open(doc).read(), flags=re.S)
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue
                path = os.path.normpath(os.path.join(os.path.dirname(doc), target.split("#")[0]))
                self.assertTrue(os.path.exists(path), f"{os.path.relpath(doc, REPO)}: broken link {target}")
                checked += 1
        self.assertGreater(checked, 10)

    def test_readme_is_a_front_page(self):
        lines = open(README).read().splitlines()
        self.assertLessEqual(len(lines), 300)
        first_100 = "\n".join(lines[:100])
        for needed in ("export.py --config vim_tiny --checkpoint", "vimvq quantize --bits 2", "vimvq eval"):
            self.assertIn(needed, first_100)


@unittest.skipUnless(os.path.exists(BINARY), "vimvq binary not built")
class ReadmeCommands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.sandbox = cls.tmp.name
        for name in ("build", "scripts", "configs", ".venv"):
            os.symlink(os.path.join(REPO, name), os.path.join(cls.sandbox, name))
        os.makedirs(os.path.join(cls.sandbox, "tests", "data"))
        os.symlink(os.path.join(REPO, "tests", "data", "vim_fmnist.pt"),
                   os.path.join(cls.sandbox, "tests", "data", "vim_fmnist.pt"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def help_text(self, *command):
        r = run(list(command) + ["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def run_block(self, block, substitutions):
        for old, new in substitutions:
            block = block.replace(old, new)
        if not torch.cuda.is_available():
            block = block.replace("--device cuda", "--device cpu")
        lines = block.replace("\\\n", " ").splitlines()
        lines = [ln + FAST_CALIBRATION if " quantize " in ln and "--dry-run" not in ln and not ln.startswith("#")
                 else ln for ln in lines]
        script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
        r = run(["bash", "-c", script], cwd=self.sandbox)
        self.assertEqual(r.returncode, 0, f"{script}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        return r

    def test_quick_start_runs(self):
        blocks = shell_blocks(section("Quick start"))
        self.assertEqual(len(blocks), 1, "the quick start is one copy-paste block")
        torch.save({"model": make_model(get_config("vim_micro"), seed=3).state_dict()},
                   os.path.join(self.sandbox, "vim_t_midclstok_76p1acc.pth"))
        imagenet = os.path.join(self.sandbox, "imagenet")
        make_photo_folder(os.path.join(imagenet, "train"), per_class=2)
        for folder, _, files in os.walk(os.path.join(imagenet, "train")):
            for name in files:  # ImageNet's names (class_number.JPEG); vimvq decodes by content
                unique = f"{os.path.basename(folder)}_{name.replace('.', '_')}.JPEG"
                os.rename(os.path.join(folder, name), os.path.join(folder, unique))
        make_photo_folder(os.path.join(imagenet, "val"), per_class=1)  # vim_micro has 7 classes
        self.run_block(blocks[0], [("--config vim_tiny", "--config vim_micro"), ("/data/imagenet", imagenet)])
        for output in ("vim_t.pt", "vim_t.w2.vqpk", "vim_t.w2.json", "vim_t.w2.md", "val.w2.json", "val.w2.csv"):
            self.assertTrue(os.path.isfile(os.path.join(self.sandbox, output)), output)
        self.assertEqual(len(os.listdir(os.path.join(self.sandbox, "calib"))), 14)

    @unittest.skipUnless(os.path.isdir(FASHION_MNIST_DIR), "Fashion-MNIST (dataset-fashion-mnist) not installed")
    def test_commands_section_examples_run(self):
        blocks = shell_blocks(section("Commands"))
        self.assertGreaterEqual(len(blocks), 1)
        prepared = os.path.join(self.sandbox, "data", "fashion-mnist")
        r = run(["scripts/py", "scripts/prepare_fashion_mnist.py", "--out", prepared, "--calib-size", "16",
                 "--test-limit", "20"], cwd=self.sandbox)
        self.assertEqual(r.returncode, 0, r.stderr)
        for block in blocks:
            self.run_block(block, [])
        self.assertTrue(os.path.isfile(os.path.join(self.sandbox, "fmnist.w2.vqpk")))

    def test_help_fits_an_80_column_terminal(self):
        for command in ([BINARY], [BINARY, "quantize"], [BINARY, "eval"], [BINARY, "inspect"]):
            for line in self.help_text(*command).splitlines():
                self.assertLessEqual(len(line), 80, f"{' '.join(command[1:])} --help: {line}")

    def test_every_option_named_is_one_the_command_has(self):
        text = section("Commands")
        quantize = text[text.index("**`vimvq quantize"):text.index("**`vimvq eval")]
        evaluate = text[text.index("**`vimvq eval"):text.index("**`vimvq inspect")]
        for words, command in ((quantize, [BINARY, "quantize"]), (evaluate, [BINARY, "eval"])):
            help_text = self.help_text(*command)
            for option in options_in(words):
                self.assertIn(option, help_text, f"README names {option} for {' '.join(command[1:])}")
        for row in re.findall(r"^\| `scripts/(\w+\.py)([^|]*(?:\\\|[^|]*)*)\|", text, re.M):
            script, usage = row
            help_text = self.help_text(os.path.join(REPO, "scripts", "py"), os.path.join(REPO, "scripts", script))
            for option in options_in(usage):
                self.assertIn(option, help_text, f"README names {option} for scripts/{script}")


if __name__ == "__main__":
    unittest.main()
