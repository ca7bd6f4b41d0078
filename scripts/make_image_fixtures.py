#!/usr/bin/env python3
"""Build tests/data/images: real photographs in every decoder case, and torchvision's expected output.

  scripts/py scripts/make_image_fixtures.py --skimage-data /path/to/skimage/data

The photographs come from scikit-image's data folder (Debian python3-skimage; astronaut and rocket
are NASA public-domain images, chelsea and coffee CC0). For each fixture this writes
<name>.expected_<resize>_<crop>.f32: torchvision's Resize(resize, BICUBIC) -> CenterCrop(crop) ->
ToTensor -> Normalize(ImageNet mean/std) on PIL's convert("RGB"), float32 little-endian CHW.
The C++ test (tests/cpp/test_preprocess.cpp) pins vimvq's pipeline against these files.
"""
import argparse
import io
import os

import numpy as np
from PIL import Image
from torchvision import transforms

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "images")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SIZES = [(96, 80)]
FULL_SIZE_FIXTURES = {"rocket_baseline.jpg"}


def fixtures(src):
    def photo(name):
        return Image.open(os.path.join(src, name))
    chelsea, coffee, astronaut = photo("chelsea.png").convert("RGB"), photo("coffee.png").convert("RGB"), \
        photo("astronaut.png").convert("RGB")
    with open(os.path.join(src, "rocket.jpg"), "rb") as f:
        yield "rocket_baseline.jpg", f.read()
    def encoded(image, fmt, **kw):
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        return buf.getvalue()
    yield "chelsea_progressive.jpg", encoded(chelsea, "JPEG", quality=90, progressive=True)
    yield "camera_gray.jpg", encoded(photo("camera.png").convert("L").resize((256, 256), Image.BICUBIC), "JPEG",
                                     quality=90)
    yield "chelsea_cmyk.jpg", encoded(chelsea.resize((226, 150), Image.BICUBIC).convert("CMYK"), "JPEG", quality=92)
    yield "coffee_rgb.png", encoded(coffee.resize((300, 200), Image.BICUBIC), "PNG")
    rgba = astronaut.resize((200, 200), Image.BICUBIC).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((200, 200)))
    yield "astronaut_rgba.png", encoded(rgba, "PNG")
    yield "coffee_palette.png", encoded(coffee.resize((240, 160), Image.BICUBIC).quantize(256), "PNG")
    gray16 = np.asarray(photo("camera.png").convert("L").resize((160, 160), Image.BICUBIC), dtype=np.uint16) * 257
    yield "camera_gray16.png", encoded(Image.fromarray(gray16, mode="I;16"), "PNG")
    yield "camera_gray.png", encoded(photo("camera.png").convert("L").resize((180, 120), Image.BICUBIC), "PNG")


def expected(path, resize, crop):
    t = transforms.Compose([transforms.Resize(resize, interpolation=transforms.InterpolationMode.BICUBIC),
                            transforms.CenterCrop(crop), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    image = Image.open(path)
    if image.mode in ("I", "I;16"):  # PIL would clip 16-bit gray at 255; vimvq takes the high byte
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8), mode="L")
    return t(image.convert("RGB")).numpy().astype("<f4")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skimage-data", default="/usr/lib/python3/dist-packages/skimage/data")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, data in fixtures(args.skimage_data):
        path = os.path.join(args.out, name)
        with open(path, "wb") as f:
            f.write(data)
        sizes = SIZES + ([(256, 224)] if name in FULL_SIZE_FIXTURES else [])
        for resize, crop in sizes:
            expected(path, resize, crop).tofile(f"{path}.expected_{resize}_{crop}.f32")
        print(f"{name}: {len(data)} bytes")
    with open(os.path.join(args.out, "not_an_image.jpg"), "w") as f:
        f.write("this is text, not a JPEG\n")
    with open(os.path.join(args.out, "truncated.png"), "wb") as f:
        f.write(encoded_truncated(os.path.join(args.out, "coffee_rgb.png")))


def encoded_truncated(path):
    with open(path, "rb") as f:
        data = f.read()
    return data[:len(data) // 3]


if __name__ == "__main__":
    main()
