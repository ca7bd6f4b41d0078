"""Format 2.0's unquantized rest (fp16 by default, bf16 or fp32 by option) and the 1.0 files both
readers must still read. A 1.0 file is made from a 2.0 one with an fp32 rest, rewritten as the 1.0
writer wrote it: the ARCH section not deflated, no rest_dtype and no section checksums in META,
version 1.0 (on the shipped model this gave a file byte-identical to the 1.0 writer's own)."""
import json
import os
import struct
import subprocess
import tempfile
import unittest
import zlib

import torch

from helpers import BINARY, MICRO, make_photo_folder
from vimlib.model import QUANTIZABLE_LAYERS
from vimlib.packed import load, read_packed


def as_version_1(data: bytes) -> bytes:
    count = struct.unpack_from("<I", data, 12)[0]
    offset, out = 20, []
    for _ in range(count):
        tag, _, length = struct.unpack_from("<4sIQ", data, offset)
        payload = data[offset + 16:offset + 16 + length]
        offset += 16 + length
        if tag == b"META":
            meta = json.loads(payload)
            assert meta.pop("rest_dtype") == "float32", "a 1.0 file holds its rest in fp32"
            meta["format"]["major"] = 1
            for layer in meta["layers"]:
                del layer["codebook_crc32"], layer["codes_crc32"]
            payload = json.dumps(meta, separators=(",", ":")).encode()
        elif tag == b"ARCH":
            payload = zlib.decompress(payload[8:])
        out.append(struct.pack("<4sIQ", tag, zlib.crc32(payload), len(payload)) + payload)
    head = data[:8] + struct.pack("<HHI", 1, 0, count)
    return head + struct.pack("<I", zlib.crc32(head)) + b"".join(out)


def inspect_json(path):
    r = subprocess.run([BINARY, "inspect", path, "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@unittest.skipUnless(os.path.exists(BINARY), "vimvq binary not built")
class RestDtypes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.tmp.name, "data")
        make_photo_folder(cls.data)
        cls.files = {}
        for dtype in ("fp16", "bf16", "fp32"):
            out = os.path.join(cls.tmp.name, f"{dtype}.vqpk")
            subprocess.run([BINARY, "quantize", MICRO, cls.data, "-o", out, "--method", "kmeans", "--calib-size", "4",
                            "--threads", "2", "--rest-dtype", dtype, "--agreement-images", "0"],
                           check=True, capture_output=True, timeout=300)
            cls.files[dtype] = out
        cls.v1 = os.path.join(cls.tmp.name, "v1.vqpk")
        with open(cls.files["fp32"], "rb") as f, open(cls.v1, "wb") as g:
            g.write(as_version_1(f.read()))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_rest_is_stored_as_asked_and_loaded_in_fp32(self):
        original = torch.jit.load(MICRO).state_dict()
        states = {dtype: read_packed(path)[0] for dtype, path in self.files.items()}
        quantized = {name for name, v in states["fp32"].items() if not torch.equal(v, original[name])}
        blocks = {name.split(".")[1] for name in original if name.startswith("layers.")}
        self.assertEqual(quantized, {f"layers.{b}.{local}" for b in blocks for local in QUANTIZABLE_LAYERS})
        for dtype, torch_dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)):
            for name, value in states[dtype].items():
                self.assertEqual(value.dtype, torch.float32, name)
                if name in quantized:  # the same codes and codebooks whatever the rest's storage
                    self.assertTrue(torch.equal(value, states["fp32"][name]), name)
                elif value.is_floating_point():
                    self.assertTrue(torch.equal(value, original[name].to(torch_dtype).float()), (dtype, name))
        sizes = {dtype: inspect_json(path) for dtype, path in self.files.items()}
        for dtype, name in (("fp16", "float16"), ("bf16", "bfloat16"), ("fp32", "float32")):
            self.assertEqual(sizes[dtype]["rest_dtype"], name)
            self.assertEqual(sizes[dtype]["file_bytes"], os.path.getsize(self.files[dtype]))
        # The rest's tensors halve (vim_micro's architecture section also holds its code); the
        # rest of the file stays.
        for half in ("fp16", "bf16"):
            self.assertLess(sizes[half]["stored_bytes"]["architecture"], 0.8 * sizes["fp32"]["stored_bytes"]["architecture"])
        for part in ("codes", "codebooks"):
            self.assertEqual(sizes["fp16"]["stored_bytes"][part], sizes["fp32"]["stored_bytes"][part])

    def test_inspect_gives_file_and_resident_bytes(self):
        j = inspect_json(self.files["fp16"])
        stored, resident = j["stored_bytes"], j["resident_bytes"]
        self.assertEqual(j["format"], {"major": 2, "minor": 0})
        self.assertEqual(sum(stored.values()) + 20 + 16 * (2 + 2 * len(j["layers"])), j["file_bytes"])
        self.assertAlmostEqual(j["file_bits_per_parameter"], 8 * j["file_bytes"] / j["parameters"])
        self.assertEqual(resident["total"], resident["codes"] + resident["codebooks"] + resident["rest"])
        # vim_micro's export has the portable scan, whose linears are plain nn.Linear: its layers
        # load dequantized, so the rest is the whole fp32 model (test_compressed: a compressed one).
        self.assertEqual((resident["codes"], resident["codebooks"]), (0, 0))
        self.assertEqual(resident["rest"], j["fp32_bytes"])
        self.assertEqual(j["fp32_bytes"], 4 * sum(v.numel() for v in torch.jit.load(MICRO).state_dict().values()))

    def test_both_readers_read_version_1(self):
        j = inspect_json(self.v1)
        self.assertEqual((j["format"]["major"], j["rest_dtype"]), (1, "float32"))
        state_1, provenance_1, model_1 = read_packed(self.v1)
        state_2, provenance_2, model_2 = read_packed(self.files["fp32"])
        self.assertEqual(provenance_1, provenance_2)
        self.assertEqual(set(state_1), set(state_2))
        for name in state_1:
            self.assertTrue(torch.equal(state_1[name], state_2[name]), name)
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            self.assertTrue(torch.equal(load(self.v1)(x), load(self.files["fp32"])(x)))
        # vimvq eval: the same predictions from either version.
        preds = []
        for path in (self.v1, self.files["fp32"]):
            out = path + ".csv"
            subprocess.run([BINARY, "eval", path, "--data", self.data, "--predictions", out, "--threads", "2"],
                           check=True, capture_output=True, timeout=300)
            with open(out) as f:
                preds.append(f.read())
        self.assertEqual(preds[0], preds[1])

    def test_fp16_out_of_range_is_refused_before_anything_is_written(self):
        model = torch.jit.load(MICRO)
        model.norm_f.weight.data[0] = 1e5  # beyond fp16's 65504
        big = os.path.join(self.tmp.name, "big.pt")
        model.save(big)
        out = os.path.join(self.tmp.name, "big.vqpk")
        r = subprocess.run([BINARY, "quantize", big, self.data, "-o", out, "--method", "kmeans", "--calib-size", "4",
                            "--threads", "2", "--agreement-images", "0"], capture_output=True, text=True, timeout=300)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("norm_f.weight", r.stderr)
        self.assertIn("--rest-dtype", r.stderr)
        self.assertFalse(os.path.exists(out))
        r = subprocess.run([BINARY, "quantize", big, self.data, "-o", out, "--method", "kmeans", "--calib-size", "4",
                            "--threads", "2", "--agreement-images", "0", "--rest-dtype", "bf16"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unknown_rest_dtype_is_refused_up_front(self):
        r = subprocess.run([BINARY, "quantize", MICRO, self.data, "-o", os.path.join(self.tmp.name, "x.vqpk"),
                            "--rest-dtype", "fp8"], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--rest-dtype: unknown dtype 'fp8'", r.stderr)


if __name__ == "__main__":
    unittest.main()
