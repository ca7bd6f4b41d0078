import json
import math
import unittest

import torch
import torch.nn.functional as F

import helpers  # noqa: F401  (import path)
from vimlib.configs import get_config
from vimlib.export import make_model

# Parameter counts from the official checkpoints (docs/VIM.md).
OFFICIAL_COUNTS = {"vim_tiny": 7_148_008, "vim_tiny_stride8": 7_250_344, "vim_small": 25_796_584,
                   "vim_small_stride8": 26_001_256, "vim_base": 97_598_440}


def official_shapes(dim: int, patches: int, depth: int = 24, classes: int = 1000):
    """The official state dict (docs/VIM.md, "State dict"), written out independently of the model code."""
    e, n, r = 2 * dim, 16, math.ceil(dim / 16)
    shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, patches + 1, dim),
              "patch_embed.proj.weight": (dim, 3, 16, 16), "patch_embed.proj.bias": (dim,),
              "head.weight": (classes, dim), "head.bias": (classes,), "norm_f.weight": (dim,)}
    for i in range(depth):
        p = f"layers.{i}."
        shapes.update({p + "mixer.A_log": (e, n), p + "mixer.D": (e,), p + "mixer.A_b_log": (e, n),
                       p + "mixer.D_b": (e,), p + "mixer.in_proj.weight": (2 * e, dim),
                       p + "mixer.out_proj.weight": (dim, e), p + "norm.weight": (dim,)})
        for s in ("", "_b"):
            shapes.update({p + f"mixer.conv1d{s}.weight": (e, 1, 4), p + f"mixer.conv1d{s}.bias": (e,),
                           p + f"mixer.x_proj{s}.weight": (r + 2 * n, e), p + f"mixer.dt_proj{s}.weight": (e, r),
                           p + f"mixer.dt_proj{s}.bias": (e,)})
    return shapes


class OfficialLayout(unittest.TestCase):
    def test_key_sets_shapes_and_counts(self):
        for name, dim in [("vim_tiny", 192), ("vim_small", 384), ("vim_base", 768), ("vim_tiny_stride8", 192),
                          ("vim_small_stride8", 384), ("vim_base_stride8", 768)]:
            with self.subTest(name):
                patches = 729 if name.endswith("stride8") else 196
                model = make_model(get_config(name))
                got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
                want = official_shapes(dim, patches)
                self.assertEqual(len(got), 415)
                self.assertEqual(got, want)
                count = sum(v.numel() for v in model.state_dict().values())
                self.assertEqual(count, sum(math.prod(s) for s in want.values()))
                if name in OFFICIAL_COUNTS:
                    self.assertEqual(count, OFFICIAL_COUNTS[name])
                self.assertEqual(model.token_position, patches // 2)


class Contract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.models = {}
        for name in ("vim_micro", "vim_micro_gray"):
            eager = make_model(get_config(name), seed=5)
            cls.models[name] = (eager, torch.jit.script(eager))

    def images(self, name, batch=3):
        cfg = get_config(name)
        return torch.randn(batch, cfg["in_chans"], cfg["img_size"], cfg["img_size"],
                           generator=torch.Generator().manual_seed(7))

    def test_scripted_equals_eager(self):
        for name, (eager, scripted) in self.models.items():
            x = self.images(name)
            with torch.no_grad():
                self.assertLessEqual((scripted(x) - eager(x)).abs().max().item(), 1e-5, name)

    def test_embed_blocks_head_equals_forward(self):
        for name, (_, scripted) in self.models.items():
            x = self.images(name)
            with torch.no_grad():
                hidden, residual = scripted.forward_embed(x)
                for block in scripted.layers:
                    hidden, residual = block(hidden, residual)
                self.assertTrue(torch.equal(scripted.forward_head(hidden, residual), scripted(x)), name)

    def test_layer_inputs_feed_each_layer(self):
        _, scripted = self.models["vim_micro"]
        x = self.images("vim_micro")
        with torch.no_grad():
            hidden, residual = scripted.forward_embed(x)
            block = scripted.layers[0]
            inputs = block.layer_inputs(hidden, residual)
            self.assertEqual(sorted(inputs), sorted(block.quantizable_layers()))
            params = dict(block.named_parameters())
            for name, inp in inputs.items():
                self.assertEqual(inp.shape[-1], params[name].shape[1], name)
            out_hidden, out_residual = block(hidden, residual)
            self.assertTrue(torch.equal(out_residual, residual + hidden))
            # out_proj's input, through out_proj, is the block's hidden output.
            mixed = F.linear(inputs["mixer.out_proj.weight"], params["mixer.out_proj.weight"])
            self.assertLessEqual((mixed - out_hidden).abs().max().item(), 1e-6)
            # in_proj's input is the normalised residual stream.
            normed = block.norm(residual + hidden)
            self.assertTrue(torch.equal(inputs["mixer.in_proj.weight"], normed))
            # dt_proj's input is the first dt_rank outputs of x_proj.
            r = params["mixer.dt_proj.weight"].shape[1]
            for s in ("", "_b"):
                x_dbl = F.linear(inputs[f"mixer.x_proj{s}.weight"], params[f"mixer.x_proj{s}.weight"])
                self.assertLessEqual((x_dbl[..., :r] - inputs[f"mixer.dt_proj{s}.weight"]).abs().max().item(), 1e-6)

    def test_metadata(self):
        eager, scripted = self.models["vim_micro"]
        meta = json.loads(scripted.metadata())
        for key in ("contract_version", "architecture", "config", "input", "num_classes", "class_names",
                    "cls_token_position", "num_blocks", "quantizable_layers"):
            self.assertIn(key, meta)
        self.assertEqual(meta["input"]["channels"], 3)
        self.assertEqual(meta["num_classes"], 7)
        self.assertEqual(meta["cls_token_position"], eager.token_position)
        self.assertEqual(meta["num_blocks"], len(scripted.layers))
        self.assertEqual(scripted(self.images("vim_micro")).shape, (3, 7))

    def test_backward_through_scripted_block(self):
        _, scripted = self.models["vim_micro_gray"]
        x = self.images("vim_micro_gray")
        loss = scripted(x).logsumexp(-1).sum()
        loss.backward()
        grad = dict(scripted.named_parameters())["layers.0.mixer.in_proj.weight"].grad
        self.assertIsNotNone(grad)
        self.assertGreater(grad.abs().sum().item(), 0)


if __name__ == "__main__":
    unittest.main()
