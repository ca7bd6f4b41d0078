"""Vision Mamba (Vim, bimamba v2, middle class token) in pure PyTorch, scriptable.

Parameter names and shapes are exactly those of the official hustvl/Vim checkpoints (docs/VIM.md), so
`load_state_dict(strict=True)` takes them unchanged. The TorchScript model contract that the C++ side
relies on is documented in docs/MODEL_CONTRACT.md; the methods marked @torch.jit.export here
implement it.
"""
import json
import math
from typing import Dict, List, Optional, Tuple

from torch.jit import Final

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .scan import selective_scan_torch

CONTRACT_VERSION = 1

# Linear layers of a block that vector quantization targets (docs/METHOD.md section 1), as parameter
# names relative to the block.
QUANTIZABLE_LAYERS = [
    "mixer.in_proj.weight",
    "mixer.x_proj.weight",
    "mixer.x_proj_b.weight",
    "mixer.dt_proj.weight",
    "mixer.dt_proj_b.weight",
    "mixer.out_proj.weight",
]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class VqLinear(nn.Linear):
    """nn.Linear (same parameters, same state-dict keys) whose weight a loader may replace by codes
    and codebooks: with `vq_d` > 0, `project` multiplies through `vimvq::vq_linear`, which decodes
    the weight panel by panel and never holds it whole (docs/MODEL_CONTRACT.md, "Compressed
    linears"). Exports with the native scan use it for the quantizable layers."""

    vq_d: int
    vq_groups: int
    vq_codes: Tensor
    vq_codebook: Tensor

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        # Plain tensor attributes, not buffers: a scripted module's state_dict lists even
        # non-persistent buffers, and the official checkpoints' keys must stay exactly theirs.
        self.vq_codes = torch.empty(0, dtype=torch.uint8)
        self.vq_codebook = torch.empty(0, 0)
        self.vq_d = 0
        self.vq_groups = 1

    @torch.jit.export
    def project(self, x: Tensor) -> Tensor:
        """x W^T without the bias (the dt projections' biases go into the scan)."""
        if self.vq_d > 0:
            return torch.ops.vimvq.vq_linear(x, self.vq_codes, self.vq_codebook, self.out_features,
                                             self.in_features, self.vq_d, self.vq_groups, None)
        return F.linear(x, self.weight)


class BiMambaV2Mixer(nn.Module):
    """One shared in_proj/out_proj, two SSM branches (forward, and backward on flipped L)."""

    # A constant, so TorchScript compiles only the chosen layout: a `--scan torch` export never
    # references the native operators.
    use_native_scan: Final[bool]

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 use_native_scan: bool = False):
        super().__init__()
        self.d_model = d_model
        self.d_inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.d_conv = d_conv
        self.use_native_scan = use_native_scan
        e, n, r = self.d_inner, d_state, self.dt_rank
        # The portable export never references the native operators, vq_linear included.
        linear = VqLinear if use_native_scan else nn.Linear
        self.in_proj = linear(d_model, 2 * e, bias=False)
        self.conv1d = nn.Conv1d(e, e, d_conv, groups=e, padding=d_conv - 1)
        self.x_proj = linear(e, r + 2 * n, bias=False)
        self.dt_proj = linear(r, e, bias=True)
        self.conv1d_b = nn.Conv1d(e, e, d_conv, groups=e, padding=d_conv - 1)
        self.x_proj_b = linear(e, r + 2 * n, bias=False)
        self.dt_proj_b = linear(r, e, bias=True)
        self.out_proj = linear(e, d_model, bias=False)
        a_log = torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(e, 1).contiguous()
        self.A_log = nn.Parameter(a_log.clone())
        self.A_b_log = nn.Parameter(a_log.clone())
        self.D = nn.Parameter(torch.ones(e))
        self.D_b = nn.Parameter(torch.ones(e))

    def _branch_inputs(self, x: Tensor, conv_w: Tensor, conv_b: Optional[Tensor], x_proj_w: Tensor,
                       dt_proj_w: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        length = x.shape[-1]
        u = F.silu(F.conv1d(x, conv_w, conv_b, padding=self.d_conv - 1, groups=self.d_inner)[..., :length])
        u_t = u.transpose(1, 2)  # (B, L, E): the input of x_proj
        x_dbl = F.linear(u_t, x_proj_w)
        dt_low, b_mat, c_mat = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt_low, dt_proj_w).transpose(1, 2)  # bias goes into the scan
        return u, u_t, dt_low, delta, b_mat.transpose(1, 2), c_mat.transpose(1, 2)

    def run(self, hidden: Tensor, collect: bool) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Mixer forward; when `collect`, also the input of every quantizable linear layer."""
        if self.use_native_scan:
            return self._run_token_major(hidden, collect)
        return self._run_channel_major(hidden, collect)

    def _stacked_scan_params(self) -> Tuple[Tensor, Tensor, Tensor]:
        """A = -exp(A_log), D and the dt bias of both directions stacked (2E channels), as both
        layouts' scans take them."""
        dt_bias = self.dt_proj.bias
        dt_bias_b = self.dt_proj_b.bias
        assert dt_bias is not None and dt_bias_b is not None
        return (-torch.exp(torch.cat([self.A_log, self.A_b_log], dim=0).float()),
                torch.cat([self.D, self.D_b], dim=0).float(), torch.cat([dt_bias, dt_bias_b], dim=0).float())

    def _run_token_major(self, hidden: Tensor, collect: bool) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The native operators' layout: every activation stays (B, L, channels), as the linear
        layers produce and take it; the backward direction is scanned from the last token, so
        nothing is flipped, transposed or concatenated at full size (docs/VIM.md)."""
        inputs: Dict[str, Tensor] = {}
        n, r = self.d_state, self.dt_rank
        # chunk, not slicing: its backward is one concatenation, where each slice's backward
        # fills a zero tensor of the whole width.
        x, z = self.in_proj.project(hidden).chunk(2, dim=-1)  # (B, L, E) views of (B, L, 2E)
        conv_b, conv_b_b = self.conv1d.bias, self.conv1d_b.bias
        assert conv_b is not None and conv_b_b is not None
        taps = torch.cat([self.conv1d.weight, self.conv1d_b.weight], dim=0).squeeze(1)
        u = torch.ops.vimvq.bimamba_conv(x, taps, torch.cat([conv_b, conv_b_b], dim=0))
        u_f, u_b = u.chunk(2, dim=-1)
        dtl_f, b_f, c_f = torch.split(self.x_proj.project(u_f), [r, n, n], dim=-1)
        dtl_b, b_b, c_b = torch.split(self.x_proj_b.project(u_b), [r, n, n], dim=-1)
        delta = torch.cat([self.dt_proj.project(dtl_f), self.dt_proj_b.project(dtl_b)], dim=-1)
        a, d_skip, delta_bias = self._stacked_scan_params()
        y = torch.ops.vimvq.bimamba_scan(u, delta, a, torch.stack([b_f, b_b], dim=1), torch.stack([c_f, c_b], dim=1),
                                         d_skip, z, delta_bias)
        if collect:
            inputs["mixer.in_proj.weight"] = hidden
            inputs["mixer.x_proj.weight"] = u_f
            inputs["mixer.x_proj_b.weight"] = u_b
            inputs["mixer.dt_proj.weight"] = dtl_f
            inputs["mixer.dt_proj_b.weight"] = dtl_b
            inputs["mixer.out_proj.weight"] = y
        return self.out_proj.project(y), inputs

    def _run_channel_major(self, hidden: Tensor, collect: bool) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The pure-PyTorch scan's layout (mamba's): channel-major, the backward direction flipped."""
        inputs: Dict[str, Tensor] = {}
        if collect:
            inputs["mixer.in_proj.weight"] = hidden
        xz = F.linear(hidden, self.in_proj.weight).transpose(1, 2)  # (B, 2E, L)
        x, z = xz.chunk(2, dim=1)
        u_f, ut_f, dtl_f, delta_f, b_f, c_f = self._branch_inputs(
            x, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight, self.dt_proj.weight)
        u_b, ut_b, dtl_b, delta_b, b_b, c_b = self._branch_inputs(
            x.flip(-1), self.conv1d_b.weight, self.conv1d_b.bias, self.x_proj_b.weight,
            self.dt_proj_b.weight)
        if collect:
            inputs["mixer.x_proj.weight"] = ut_f
            inputs["mixer.x_proj_b.weight"] = ut_b
            inputs["mixer.dt_proj.weight"] = dtl_f
            inputs["mixer.dt_proj_b.weight"] = dtl_b
        # Both directions in one scan: channels stacked (2E), B and C as two groups.
        u = torch.cat([u_f, u_b], dim=1)
        delta = torch.cat([delta_f, delta_b], dim=1)
        a, d_skip, delta_bias = self._stacked_scan_params()
        b_mat = torch.stack([b_f, b_b], dim=1)
        c_mat = torch.stack([c_f, c_b], dim=1)
        zz = torch.cat([z, z.flip(-1)], dim=1)
        y = selective_scan_torch(u, delta, a, b_mat, c_mat, d_skip, zz, delta_bias)
        y_f, y_b = y.chunk(2, dim=1)
        y_mix = ((y_f + y_b.flip(-1)) / 2).transpose(1, 2)  # (B, L, E)
        if collect:
            inputs["mixer.out_proj.weight"] = y_mix
        return F.linear(y_mix, self.out_proj.weight), inputs

    def forward(self, hidden: Tensor) -> Tensor:
        return self.run(hidden, False)[0]


class Block(nn.Module):
    """Pre-norm block over (hidden, residual): residual += hidden; hidden = mixer(norm(residual))."""

    def __init__(self, d_model: int, d_state: int, use_native_scan: bool):
        super().__init__()
        self.mixer = BiMambaV2Mixer(d_model, d_state=d_state, use_native_scan=use_native_scan)
        self.norm = RMSNorm(d_model)
        self.quantizable_layer_names: List[str] = list(QUANTIZABLE_LAYERS)

    def forward(self, hidden: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor]:
        residual = residual + hidden
        return self.mixer(self.norm(residual)), residual

    @torch.jit.export
    def layer_inputs(self, hidden: Tensor, residual: Tensor) -> Dict[str, Tensor]:
        """Input tensor (..., in_features) of each quantizable linear layer, by parameter name."""
        residual = residual + hidden
        return self.mixer.run(self.norm(residual), True)[1]

    @torch.jit.export
    def quantizable_layers(self) -> List[str]:
        return self.quantizable_layer_names


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, stride: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.grid = (img_size - patch_size) // stride + 1
        self.num_patches = self.grid * self.grid
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Vim(nn.Module):
    def __init__(self, img_size: int = 224, patch_size: int = 16, stride: int = 16, in_chans: int = 3,
                 num_classes: int = 1000, embed_dim: int = 192, depth: int = 24, d_state: int = 16,
                 use_native_scan: bool = False, metadata: Optional[dict] = None):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, stride, in_chans, embed_dim)
        self.token_position = self.patch_embed.num_patches // 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.layers = nn.ModuleList([Block(embed_dim, d_state, use_native_scan) for _ in range(depth)])
        self.norm_f = RMSNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self.metadata_json = json.dumps(metadata or {}, sort_keys=True)

    @torch.jit.export
    def forward_embed(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """Images -> (hidden, residual); residual starts at zero so that block 0 adds hidden exactly."""
        x = self.patch_embed(images)
        t = self.token_position
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([x[:, :t], cls, x[:, t:]], dim=1) + self.pos_embed
        return x, torch.zeros_like(x)

    @torch.jit.export
    def forward_head(self, hidden: Tensor, residual: Tensor) -> Tensor:
        x = self.norm_f(residual + hidden)
        return self.head(x[:, self.token_position])

    @torch.jit.export
    def metadata(self) -> str:
        return self.metadata_json

    def forward(self, images: Tensor) -> Tensor:
        hidden, residual = self.forward_embed(images)
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        return self.forward_head(hidden, residual)


def init_weights(model: Vim, seed: int) -> None:
    """Seeded random init in the spirit of the official one (trunc-normal linears, mamba dt init)."""
    gen = torch.Generator().manual_seed(seed)
    depth = len(model.layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log") or name.endswith("A_b_log") or name.endswith(".D") \
                    or name.endswith(".D_b") or "norm" in name:
                continue  # keep the module's own init (log(1..N), ones)
            if "dt_proj" in name and name.endswith("weight"):
                std = p.shape[1] ** -0.5
                p.uniform_(-std, std, generator=gen)
            elif "dt_proj" in name and name.endswith("bias"):
                dt = torch.exp(torch.rand(p.shape, generator=gen) * (math.log(0.1) - math.log(1e-3))
                               + math.log(1e-3)).clamp(min=1e-4)
                p.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02, generator=gen).clamp_(-0.04, 0.04)
                if name.endswith("out_proj.weight"):
                    p.div_(math.sqrt(depth))
