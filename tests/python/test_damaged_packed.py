"""One corpus of damaged packed files, read from both sides: the C++ reader (`vimvq inspect`) and the
Python one (scripts/read_packed.py, vimlib.packed) must refuse every designed-bad file with one
error line, and agree (both refuse or both accept) on random damage. Every checksum is recomputed,
so the readers' other checks are what is tested (the layer table's section checksums included,
except where the damage is a section moved to another layer).

The Python script runs in this process (its main(), argv and streams swapped in) for the corpus,
and as its own process for the good file and one damaged one: an interpreter start that imports
torch costs about 2 s, which over 43 files was most of this test's time."""
import contextlib
import importlib
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import unittest
import warnings
import zlib
from unittest import mock

from helpers import BINARY, MICRO, REPO, make_photo_folder
from vimlib.packed import PackedFormatError, read_packed

read_packed_script = importlib.import_module("read_packed")  # scripts/read_packed.py

HEADER = 20


def split(data: bytes):
    count = struct.unpack_from("<I", data, 12)[0]
    offset, sections = HEADER, []
    for _ in range(count):
        tag, _, length = struct.unpack_from("<4sIQ", data, offset)
        sections.append([tag, data[offset + 16:offset + 16 + length]])
        offset += 16 + length
    return data[:HEADER], sections


def rebind(sections) -> None:
    """Sets META's per-layer section checksums to the sections now there (where META parses)."""
    try:
        meta = json.loads(sections[0][1])
        layers = meta["layers"]
        for i, layer in enumerate(layers):
            if isinstance(layer, dict) and 3 + 2 * i < len(sections):
                layer["codebook_crc32"] = zlib.crc32(sections[2 + 2 * i][1])
                layer["codes_crc32"] = zlib.crc32(sections[3 + 2 * i][1])
    except (ValueError, KeyError, TypeError, RecursionError):
        return
    sections[0][1] = json.dumps(meta).encode()


def join(header: bytes, sections, count=None, bind=True) -> bytes:
    if bind:
        rebind(sections)
    head = bytearray(header)
    struct.pack_into("<I", head, 12, len(sections) if count is None else count)
    struct.pack_into("<I", head, 16, zlib.crc32(bytes(head[:16])))
    out = bytes(head)
    for tag, payload in sections:
        out += struct.pack("<4sIQ", tag, zlib.crc32(payload), len(payload)) + payload
    return out


def edit_meta(data: bytes, edit) -> bytes:
    header, sections = split(data)
    meta = json.loads(sections[0][1])
    edit(meta)
    sections[0][1] = json.dumps(meta).encode()
    return join(header, sections, bind=False)  # the sections are unchanged: their checksums stand


def edit_sections(data: bytes, edit, count=None) -> bytes:
    header, sections = split(data)
    edit(sections)
    return join(header, sections, count)


def set_layer(key, value, index=0):
    return lambda m: m["layers"][index].__setitem__(key, value)


def swap_layer_sections(data):
    """Layers 0 and 6 (in_proj of blocks 0 and 1, one shape) swap their codebook and codes, every
    section CRC intact: only the layer table's checksums tell them apart."""
    header, sections = split(data)
    sections[2], sections[3], sections[14], sections[15] = sections[14], sections[15], sections[2], sections[3]
    return join(header, sections, bind=False)


def deflated(archive: bytes, declared=None) -> bytes:
    return struct.pack("<Q", len(archive) if declared is None else declared) + zlib.compress(archive)


def nan_codeword(sections):
    sections[2][1] = b"\x00\x7e" + sections[2][1][2:]


def duplicate_first_layer(data):
    header, sections = split(data)
    meta = json.loads(sections[0][1])
    meta["layers"][1] = dict(meta["layers"][0])
    sections[0][1] = json.dumps(meta).encode()
    sections[4], sections[5] = list(sections[2]), list(sections[3])
    return join(header, sections)


def deep_metadata(data: bytes) -> bytes:
    """META with 100,000 nested lists inside its provenance (json.dumps itself would recurse)."""
    header, sections = split(data)
    text = sections[0][1].decode()
    deep = "[" * 100_000 + "]" * 100_000
    nested, found = re.subn(r'"provenance":\s*\{', lambda _: '"provenance": {"deep": ' + deep + ", ", text, count=1)
    assert found == 1, "no provenance object to nest into"
    sections[0][1] = nested.encode()
    return join(header, sections)


DESIGNED = {
    "deep_metadata": deep_metadata,
    "nan_codeword": lambda d: edit_sections(d, nan_codeword),
    "layer_on_head": lambda d: edit_meta(d, set_layer("name", "head.weight")),
    "layer_on_norm": lambda d: edit_meta(d, set_layer("name", "layers.0.norm.weight")),
    "layer_in_missing_block": lambda d: edit_meta(d, set_layer("name", "layers.99.mixer.in_proj.weight")),
    "forged_shape": lambda d: edit_meta(d, set_layer("shape", [1 << 32, 1 << 32])),
    "huge_dimension": lambda d: edit_meta(d, set_layer("shape", [1 << 40, 1])),
    "shape_transposed": lambda d: edit_meta(d, lambda m: m["layers"][0].__setitem__("shape", m["layers"][0]["shape"][::-1])),
    "negative_dimension": lambda d: edit_meta(d, set_layer("shape", [-4, 8])),
    "shape_not_a_list": lambda d: edit_meta(d, set_layer("shape", "64x32")),
    "d_zero": lambda d: edit_meta(d, set_layer("d", 0)),
    "d_string": lambda d: edit_meta(d, set_layer("d", "4")),
    "groups_zero": lambda d: edit_meta(d, set_layer("groups", 0)),
    "k_beyond_code_bits": lambda d: edit_meta(d, set_layer("k", 1 << 20)),
    "unknown_method": lambda d: edit_meta(d, set_layer("method", "magic")),
    "no_name": lambda d: edit_meta(d, lambda m: m["layers"][0].pop("name")),
    "layers_not_a_list": lambda d: edit_meta(d, lambda m: m.__setitem__("layers", {"a": 1})),
    "layer_not_an_object": lambda d: edit_meta(d, lambda m: m["layers"].__setitem__(0, 7)),
    "no_provenance": lambda d: edit_meta(d, lambda m: m.pop("provenance")),
    "meta_not_json": lambda d: edit_sections(d, lambda s: s[0].__setitem__(1, b"{not json")),
    "arch_not_torchscript": lambda d: edit_sections(d, lambda s: s[1].__setitem__(1, deflated(b"junk"))),
    "arch_not_deflated": lambda d: edit_sections(d, lambda s: s[1].__setitem__(1, struct.pack("<Q", 4) + b"junk")),
    "arch_no_length": lambda d: edit_sections(d, lambda s: s[1].__setitem__(1, b"junk")),
    "arch_length_bomb": lambda d: edit_sections(d, lambda s: s[1].__setitem__(1, deflated(b"junk", 1 << 62))),
    "arch_length_short": lambda d: edit_sections(
        d, lambda s: s[1].__setitem__(1, deflated(zlib.decompress(s[1][1][8:]), len(zlib.decompress(s[1][1][8:])) - 1))),
    "swapped_layer_sections": swap_layer_sections,
    "unbound_codebook": lambda d: edit_meta(d, set_layer("codebook_crc32", 7)),
    "no_rest_dtype": lambda d: edit_meta(d, lambda m: m.pop("rest_dtype")),
    "swapped_tags": lambda d: edit_sections(d, lambda s: (s[2].__setitem__(0, b"CODE"), s[3].__setitem__(0, b"CBK1"))),
    "unknown_tag": lambda d: edit_sections(d, lambda s: s[3].__setitem__(0, b"XXXX")),
    "codes_short": lambda d: edit_sections(d, lambda s: s[3].__setitem__(1, s[3][1][:-1])),
    "codebook_long": lambda d: edit_sections(d, lambda s: s[2].__setitem__(1, s[2][1] + b"\x00\x00")),
    "section_count_odd": lambda d: edit_sections(d, lambda s: s.pop(), count=None),
    "duplicate_layer": duplicate_first_layer,
    "truncated": lambda d: d[:len(d) // 2],
    "trailing_bytes": lambda d: d + b"\x00",
    "bad_magic": lambda d: b"VIMVQPX\n" + d[8:],
    "flipped_payload_byte": lambda d: d[:len(d) - 10] + bytes([d[len(d) - 10] ^ 0x40]) + d[len(d) - 9:],
}


@unittest.skipUnless(os.path.exists(BINARY), "vimvq binary not built")
class DamagedPacked(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        data = os.path.join(cls.tmp.name, "data")
        make_photo_folder(data)
        cls.good = os.path.join(cls.tmp.name, "good.vqpk")
        subprocess.run([BINARY, "quantize", MICRO, data, "-o", cls.good, "--method", "kmeans", "--calib-size", "4",
                        "--threads", "2"], check=True, capture_output=True, timeout=300)
        with open(cls.good, "rb") as f:
            cls.bytes = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def write(self, name, data):
        path = os.path.join(self.tmp.name, name + ".vqpk")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def cpp_refuses(self, path):
        r = subprocess.run([BINARY, "inspect", path], capture_output=True, text=True, errors="replace", timeout=120)
        if r.returncode == 0:
            return False
        lines = r.stderr.strip().splitlines()
        self.assertTrue(lines and lines[-1].startswith("vimvq: error: ") and os.path.basename(path) in lines[-1],
                        f"{path}: {r.stderr}")
        return True

    def check_python_answer(self, returncode, stderr):
        """True when the script refused the file, as its contract says: exit 2, one error line."""
        if returncode == 0:
            return False
        self.assertEqual(returncode, 2, stderr)
        self.assertTrue(stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1, stderr)
        return True

    def python_refuses(self, path):
        err = io.StringIO()
        with mock.patch.object(sys, "argv", ["read_packed.py", path]), contextlib.redirect_stderr(err), \
                contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # As in its own process, where Python hides DeprecationWarnings raised outside __main__
            # (torch.jit.load's); unittest shows them.
            warnings.simplefilter("ignore", DeprecationWarning)
            returncode = read_packed_script.main()  # an uncaught exception fails the test here
        return self.check_python_answer(returncode, err.getvalue())

    def python_process_refuses(self, path):
        r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "read_packed.py"), path],
                           capture_output=True, text=True, errors="replace", timeout=120)
        self.assertNotIn("Traceback", r.stderr, path)
        return self.check_python_answer(r.returncode, r.stderr)

    def test_good_file_is_accepted_by_both(self):
        self.assertFalse(self.cpp_refuses(self.good))
        self.assertFalse(self.python_refuses(self.good))
        self.assertFalse(self.python_process_refuses(self.good))

    def test_the_script_as_a_process_refuses_with_one_line(self):
        path = self.write("bad_magic_process", DESIGNED["bad_magic"](self.bytes))
        self.assertTrue(self.python_process_refuses(path))

    def test_designed_damage_is_refused_by_both(self):
        for name, damage in DESIGNED.items():
            with self.subTest(name):
                path = self.write(name, damage(self.bytes))
                self.assertTrue(self.cpp_refuses(path), f"C++ accepted {name}")
                self.assertTrue(self.python_refuses(path), f"Python accepted {name}")
                with self.assertRaises(PackedFormatError):
                    read_packed(path)

    def test_random_damage_gets_the_same_answer_from_both(self):
        rng = random.Random(11)
        header, sections = split(self.bytes)
        for i in range(12):
            s = rng.randrange(len(sections))
            payload = bytearray(sections[s][1])
            for _ in range(rng.randint(1, 3)):
                if payload:
                    payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
            damaged = [list(x) for x in sections]
            damaged[s][1] = bytes(payload)
            path = self.write(f"random{i}", join(header, damaged))
            with self.subTest(i=i, section=s):
                self.assertEqual(self.cpp_refuses(path), self.python_refuses(path))


if __name__ == "__main__":
    unittest.main()
