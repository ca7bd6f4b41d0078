"""The Python reader against a packed file written by the C++ library (CTest fixture)."""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

from helpers import REPO
from vimlib.packed import PackedFormatError, read_packed, unpack_codes

FIXTURE = os.environ.get("VIMVQ_PACKED_FIXTURE", "")


class Unpacking(unittest.TestCase):
    def test_lsb_first_stream(self):
        # Codes 5 (101), 3 (011) at 3 bits: bits 1,0,1, 1,1,0 -> byte 0b00011101.
        self.assertEqual(unpack_codes(bytes([0b00011101]), 2, 3).tolist(), [5, 3])
        rng = np.random.default_rng(0)
        for bits in (1, 5, 8, 13, 16):
            codes = rng.integers(0, 1 << bits, size=11)
            stream = np.zeros(11 * bits, dtype=np.uint8)
            for i, c in enumerate(codes):
                stream[i * bits:(i + 1) * bits] = [(int(c) >> b) & 1 for b in range(bits)]
            packed = np.packbits(stream, bitorder="little").tobytes()
            self.assertEqual(unpack_codes(packed, 11, bits).tolist(), codes.tolist())


@unittest.skipUnless(os.path.exists(FIXTURE), "packed fixture not written (run through CTest)")
class CrossLanguage(unittest.TestCase):
    def test_state_dict_equals_cpp_dequantization(self):
        state, provenance, _ = read_packed(FIXTURE)
        cpp = torch.jit.load(FIXTURE + ".dequantized.pt").state_dict()
        self.assertEqual(set(state), set(cpp))
        for name, value in cpp.items():
            self.assertTrue(torch.equal(state[name], value), name)
        self.assertEqual(provenance["method"], "kmeans")

    def test_cli_and_corruption(self):
        with tempfile.TemporaryDirectory() as tmp:
            out, ts = os.path.join(tmp, "sd.pth"), os.path.join(tmp, "m.pt")
            r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "read_packed.py"), FIXTURE,
                                "--state-dict", out, "--torchscript", ts], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            cpp = torch.jit.load(FIXTURE + ".dequantized.pt")
            name = "layers.0.mixer.in_proj.weight"
            self.assertTrue(torch.equal(torch.load(out)["model"][name], cpp.state_dict()[name]))
            x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
            self.assertTrue(torch.equal(torch.jit.load(ts)(x), cpp(x)))
            with open(FIXTURE, "rb") as f:
                data = bytearray(f.read())
            data[len(data) // 2] ^= 0xFF
            bad = os.path.join(tmp, "bad.vqpk")
            with open(bad, "wb") as f:
                f.write(data)
            with self.assertRaisesRegex(PackedFormatError, "checksum"):
                read_packed(bad)


if __name__ == "__main__":
    unittest.main()
