"""Shared set-up for the Python tests: import path, threads, and a float64 reference scan."""
import csv
import json
import os
import shutil
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
torch.set_num_threads(os.cpu_count() or 1)

from vimlib.native import load_ops  # noqa: E402

HAVE_NATIVE = load_ops(required=False)

BINARY = os.environ.get("VIMVQ_BINARY", os.path.join(REPO, "build", "vimvq"))
MICRO = os.path.join(REPO, "tests", "data", "vim_micro.pt")  # vim_micro, seed 1, portable scan
IMAGES = os.path.join(REPO, "tests", "data", "images")
PHOTOS = ["rocket_baseline.jpg", "chelsea_progressive.jpg", "camera_gray.jpg", "coffee_rgb.png", "astronaut_rgba.png",
          "coffee_palette.png", "camera_gray.png"]


def make_photo_folder(root, classes=7, per_class=2):
    """An ImageFolder tree of the fixture photographs (vim_micro has 7 classes)."""
    for c in range(classes):
        os.makedirs(os.path.join(root, f"class{c}"))
        for j in range(per_class):
            name = PHOTOS[(c + j) % len(PHOTOS)]
            shutil.copy(os.path.join(IMAGES, name), os.path.join(root, f"class{c}", f"{j}_{name}"))


def read_text(path):
    with open(path) as f:
        return f.read()


def read_json(path):
    return json.loads(read_text(path))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def reference_scan(u, delta, A, B, C, D, z, delta_bias):
    """Direct transcription of docs/VIM.md's recurrence, one time step at a time, in the inputs' dtype.

    B, C: (batch, G, N, L); channel d reads group d // (dim // G).
    """
    batch, dim, length = u.shape
    groups = B.shape[1]
    g_of = torch.arange(dim) // (dim // groups)
    Bd, Cd = B[:, g_of], C[:, g_of]  # (batch, dim, N, L)
    dt = torch.nn.functional.softplus(delta + delta_bias[None, :, None])
    h = torch.zeros(batch, dim, A.shape[1], dtype=u.dtype)
    out = []
    for t in range(length):
        h = torch.exp(dt[:, :, t, None] * A) * h + dt[:, :, t, None] * Bd[..., t] * u[:, :, t, None]
        y = (h * Cd[..., t]).sum(-1) + D * u[:, :, t]
        out.append(y * z[:, :, t] * torch.sigmoid(z[:, :, t]))
    return torch.stack(out, dim=-1)


def random_scan_inputs(batch, dim, length, n_state, groups, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)
    return [r(batch, dim, length, scale=0.5), r(batch, dim, length, scale=0.5),
            -torch.rand(dim, n_state, generator=g).mul(3).add(0.1).to(dtype),
            r(batch, groups, n_state, length, scale=0.5), r(batch, groups, n_state, length, scale=0.5),
            r(dim, scale=0.5), r(batch, dim, length), r(dim, scale=0.3)]


def forward_backward(fn, args, weight):
    """fn(*args) and the gradients of sum(out * weight) for every argument."""
    args = [a.detach().clone().requires_grad_() for a in args]
    out = fn(*args)
    return [out.detach()] + list(torch.autograd.grad((out * weight).sum(), args))


def forward_backward_per_thread_count(fn, args, weight, counts=(1, 2, 3)):
    """forward_backward at each of torch's intra-op thread counts, the setting restored after."""
    before = torch.get_num_threads()
    try:
        results = []
        for threads in counts:
            torch.set_num_threads(threads)
            results.append(forward_backward(fn, args, weight))
    finally:
        torch.set_num_threads(before)
    return results
