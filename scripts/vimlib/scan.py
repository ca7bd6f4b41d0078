"""The selective scan of Mamba (docs/VIM.md), in one scriptable function.

Layout follows mamba's `selective_scan_fn` with grouped B and C, so that both directions of a
bimamba-v2 mixer run as one scan over 2E stacked channels:
  u, delta, z:       (batch, dim, L)
  A:                 (dim, N)         (already -exp(A_log))
  B, C:              (batch, G, N, L), channel d uses group d // (dim // G)
  D, delta_bias:     (dim,)
Returns (batch, dim, L) = (sum_n h_t[n] C_t[n] + D u_t) * SiLU(z_t), state in fp32.

The native operator `torch.ops.vimvq.selective_scan` (src/ops/) has the same signature and is a
drop-in replacement; `selective_scan_torch` is the portable reference.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def selective_scan_torch(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor,
                         z: Tensor, delta_bias: Tensor) -> Tensor:
    batch, dim, length = u.shape
    groups = B.shape[1]
    n_state = A.shape[1]
    per_group = dim // groups
    dt = F.softplus(delta + delta_bias.view(1, dim, 1))  # threshold 20, as mamba
    # Time-major (L, batch, ...) so that every per-step slice is contiguous: strided slices make
    # each elementwise step several times slower.
    dt_l = dt.permute(2, 0, 1).contiguous()
    decay = torch.exp(dt_l.unsqueeze(-1) * A.view(1, 1, dim, n_state))  # (L, batch, dim, N)
    dtu_l = (dt_l * u.permute(2, 0, 1).contiguous()).reshape(length, batch, groups, per_group, 1)
    drive = dtu_l * B.permute(3, 0, 1, 2).contiguous().unsqueeze(3)  # (L, batch, G, dim/G, N)
    c_steps = C.permute(3, 0, 1, 2).contiguous().unsqueeze(-1)  # (L, batch, G, N, 1)
    h = torch.zeros(batch, groups, per_group, n_state, dtype=u.dtype, device=u.device)
    ys = []
    # unbind (not t-indexing) keeps backward cheap: no full-size gradient buffer per step.
    for decay_t, drive_t, c_t in zip(decay.unbind(0), drive.unbind(0), c_steps.unbind(0)):
        h = decay_t.view(batch, groups, per_group, n_state) * h + drive_t
        ys.append(torch.matmul(h, c_t).view(batch, dim))
    y = torch.stack(ys, dim=-1) + D.view(1, dim, 1) * u
    return y * F.silu(z)
