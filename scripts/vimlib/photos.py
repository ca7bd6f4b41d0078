"""Calibration-style JPEG photographs made from the test fixtures (for benchmarks and GPU checks)."""
import os
import random

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_jpegs(folder, count, seed):
    photos = [os.path.join(REPO, "tests", "data", "images", n) for n in
              ("rocket_baseline.jpg", "chelsea_progressive.jpg", "coffee_rgb.png", "astronaut_rgba.png")]
    rng = random.Random(seed)
    for i in range(count):
        cls = os.path.join(folder, f"n{i % 4:08d}")
        os.makedirs(cls, exist_ok=True)
        img = Image.open(photos[i % len(photos)]).convert("RGB")
        scale = rng.uniform(1.0, 1.6) * 256 / min(img.size)
        img = img.resize((int(img.width * scale), int(img.height * scale)), Image.BICUBIC)
        img.save(os.path.join(cls, f"img_{i:04d}.jpg"), quality=90)
