"""Reader of vimvq's packed checkpoint format (README.md, "Packed checkpoint format")."""
import io
import json
import struct
import zlib
from typing import Dict, Tuple

import numpy as np
import torch

MAGIC = b"VIMVQPK\n"
MAJOR = 1


class PackedFormatError(ValueError):
    pass


def _sections(data: bytes, path: str):
    if len(data) < 20 or data[:8] != MAGIC:
        raise PackedFormatError(f"{path}: not a vimvq packed checkpoint")
    major, minor, count, header_crc = struct.unpack_from("<HHII", data, 8)
    if major != MAJOR:
        raise PackedFormatError(f"{path}: packed format version {major}.{minor} is not readable (reads {MAJOR}.x)")
    if zlib.crc32(data[:16]) != header_crc:
        raise PackedFormatError(f"{path}: header checksum mismatch")
    offset, sections = 20, []
    for _ in range(count):
        if len(data) - offset < 16:
            raise PackedFormatError(f"{path}: truncated section header")
        tag, crc, length = struct.unpack_from("<4sIQ", data, offset)
        offset += 16
        if length > len(data) - offset:
            raise PackedFormatError(f"{path}: truncated {tag.decode(errors='replace')} section")
        payload = data[offset:offset + length]
        if zlib.crc32(payload) != crc:
            raise PackedFormatError(f"{path}: checksum mismatch in a {tag.decode(errors='replace')} section")
        sections.append((tag, payload))
        offset += length
    if offset != len(data):
        raise PackedFormatError(f"{path}: trailing bytes")
    return sections


def unpack_codes(packed: bytes, count: int, bits: int) -> np.ndarray:
    """LSB-first continuous bit stream, `bits` bits per code."""
    stream = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), bitorder="little")
    fields = stream[:count * bits].reshape(count, bits).astype(np.int64)
    return (fields << np.arange(bits, dtype=np.int64)).sum(axis=1)


def read_packed(path: str) -> Tuple[Dict[str, torch.Tensor], dict, torch.jit.ScriptModule]:
    """Returns (full state dict with dequantized weights, provenance, architecture module)."""
    with open(path, "rb") as f:
        data = f.read()
    sections = _sections(data, path)
    meta = json.loads(sections[0][1])
    arch = torch.jit.load(io.BytesIO(sections[1][1]))
    state = {k: v.clone() for k, v in arch.state_dict().items()}
    for i, layer in enumerate(meta["layers"]):
        book_raw, code_raw = sections[2 + 2 * i][1], sections[3 + 2 * i][1]
        k, d, bits, shape = layer["k"], layer["d"], layer["code_bits"], layer["shape"]
        groups = layer.get("groups", 1)
        codebook = torch.from_numpy(np.frombuffer(book_raw, dtype="<f2").reshape(groups * k, d).astype(np.float32))
        numel = int(np.prod(shape))
        n_sub = -(-numel // d)
        codes = unpack_codes(code_raw, n_sub, bits)
        if codes.max(initial=0) >= k:
            raise PackedFormatError(f"{path}: {layer['name']}: code out of range")
        index = np.arange(n_sub) // (n_sub // groups) * k + codes  # per-group codebooks (rtn: per row)
        weight = codebook[torch.from_numpy(index)].reshape(-1)[:numel].reshape(shape)
        state[layer["name"]] = weight
    return state, meta["provenance"], arch
