"""Reader of vimvq's packed checkpoint format (docs/FORMAT.md).

As strict as the C++ reader (src/format/packed_checkpoint.cpp): section tags and order, every
size and count checked before use, codes in range, finite codebooks and architecture parameters,
and every stored layer on a quantizable weight of the architecture. Every problem is a
PackedFormatError naming the file; tests/python/test_damaged_packed.py runs one corpus of damaged
files through both readers.
"""
import io
import json
import struct
import zlib
from typing import Dict, List, NamedTuple, Tuple

import numpy as np
import torch

MAGIC = b"VIMVQPK\n"
MAJOR = 2  # the newest major version read (and the one vimvq writes)
OLDEST_MAJOR = 1
MAX_DEFLATE_RATIO = 1032  # deflate's largest ratio: bounds a declared architecture length
TAGS = (b"META", b"ARCH", b"CBK1", b"CODE")
METHODS = ("rtn", "kmeans", "vq4dit", "vimvq")
MAX_DIM = 1 << 32
MAX_WEIGHTS = 1 << 40
MAX_SECTIONS = 1 << 20
MAX_JSON_DEPTH = 64  # as the C++ reader (include/vimvq/util/bounded_json.h)


class PackedFormatError(ValueError):
    pass


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text, counted without parsing it (so
    that a file nested 100,000 deep is refused by the depth, not by Python's recursion limit)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def load_bounded_json(text, what: str):
    """json.loads, refusing nesting deeper than the C++ reader accepts."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", errors="replace")
    if json_depth(text) > MAX_JSON_DEPTH:
        raise PackedFormatError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text)


def _sections(data: bytes, path: str):
    if len(data) < 20 or data[:8] != MAGIC:
        raise PackedFormatError(f"{path}: not a vimvq packed checkpoint")
    major, minor, count, header_crc = struct.unpack_from("<HHII", data, 8)
    if not OLDEST_MAJOR <= major <= MAJOR:
        raise PackedFormatError(f"{path}: packed format version {major}.{minor} is not readable "
                                f"(reads {OLDEST_MAJOR}.x to {MAJOR}.x)")
    if zlib.crc32(data[:16]) != header_crc:
        raise PackedFormatError(f"{path}: header checksum mismatch")
    if count < 2 or count > MAX_SECTIONS or count % 2:
        raise PackedFormatError(f"{path}: implausible section count")
    offset, sections = 20, []
    for i in range(count):
        want = TAGS[0] if i == 0 else TAGS[1] if i == 1 else TAGS[2 + i % 2]
        if len(data) - offset < 16:
            raise PackedFormatError(f"{path}: truncated section header")
        tag, crc, length = struct.unpack_from("<4sIQ", data, offset)
        if tag != want:
            raise PackedFormatError(f"{path}: expected the {want.decode()} section, found another")
        offset += 16
        if length > len(data) - offset:
            raise PackedFormatError(f"{path}: truncated {want.decode()} section")
        payload = data[offset:offset + length]
        if zlib.crc32(payload) != crc:
            raise PackedFormatError(f"{path}: checksum mismatch in a {want.decode()} section")
        sections.append((payload, crc))
        offset += length
    if offset != len(data):
        raise PackedFormatError(f"{path}: trailing bytes")
    return major, sections


def _architecture(payload: bytes, major: int, path: str) -> bytes:
    """The TorchScript archive: stored as is in major 1; in major 2, a u64 length and the archive
    deflated, the length bounded before anything is inflated."""
    if major < 2:
        return payload
    if len(payload) < 8:
        raise PackedFormatError(f"{path}: truncated architecture section (no length)")
    (length,) = struct.unpack_from("<Q", payload)
    if length > (len(payload) - 8) * MAX_DEFLATE_RATIO:
        raise PackedFormatError(f"{path}: architecture declares {length} bytes, more than its "
                                f"{len(payload) - 8} deflated bytes can hold")
    try:
        inflater = zlib.decompressobj()
        archive = inflater.decompress(payload[8:], length)
        complete = inflater.eof and not inflater.unconsumed_tail
    except zlib.error:
        complete = False
    if not complete or len(archive) != length:
        raise PackedFormatError(f"{path}: architecture section does not inflate to its declared length")
    return archive


def _check_binding(layer: dict, what: str, crc: int) -> None:
    """Major 2: a layer's section carries the CRC-32 its table entry names, or it is another's."""
    if layer.get(f"{what}_crc32") != crc:
        raise PackedFormatError(f"its {what} section is not the one its layer table entry names "
                                f"(checksum differs: a section of another layer?)")


def unpack_codes(packed: bytes, count: int, bits: int) -> np.ndarray:
    """LSB-first continuous bit stream, `bits` bits per code."""
    stream = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), bitorder="little")
    fields = stream[:count * bits].reshape(count, bits).astype(np.int64)
    return (fields << np.arange(bits, dtype=np.int64)).sum(axis=1)


def _int(layer: dict, key: str, default=None) -> int:
    value = layer.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PackedFormatError(f"{key} is not an integer")
    return value


class LayerCodes(NamedTuple):
    """One stored layer as the compressed form runs it: codes (one byte each where k <= 256) and
    the fp32 codebooks (groups * k, d)."""
    shape: List[int]
    codes: np.ndarray
    codebook: np.ndarray
    k: int
    d: int
    groups: int

    def dequantize(self) -> torch.Tensor:
        n_sub = len(self.codes)
        numel = int(np.prod(self.shape)) if self.shape else 1
        index = np.arange(n_sub) // (n_sub // self.groups) * self.k + self.codes  # per-group codebooks
        return torch.from_numpy(self.codebook)[torch.from_numpy(index)].reshape(-1)[:numel].reshape(self.shape)


def _layer(layer: dict, book: Tuple[bytes, int], code: Tuple[bytes, int], major: int) -> LayerCodes:
    name = layer.get("name")
    if not isinstance(name, str):
        raise PackedFormatError("a layer has no name")
    (book_raw, book_crc), (code_raw, code_crc) = book, code
    try:
        if major >= 2:
            _check_binding(layer, "codebook", book_crc)
        shape = layer["shape"]
        if not isinstance(shape, list):
            raise PackedFormatError("shape is not a list")
        numel = 1
        for s in shape:
            if not isinstance(s, int) or s < 0 or s > MAX_DIM or (s and numel > MAX_WEIGHTS // s):
                raise PackedFormatError("implausible shape")
            numel *= s
        k, d, bits = _int(layer, "k"), _int(layer, "d"), _int(layer, "code_bits")
        groups = _int(layer, "groups", 1)
        if layer.get("method") not in METHODS:
            raise PackedFormatError(f"unknown method {layer.get('method')!r}")
        if not (1 <= d <= 64 and 1 <= bits <= 16 and 1 <= k <= min(256, 1 << bits)):
            raise PackedFormatError("implausible k, d or code bits")
        n_sub = -(-numel // d)
        if groups < 1 or groups > n_sub or n_sub % groups:
            raise PackedFormatError("implausible codebook groups")
        if len(book_raw) != groups * k * d * 2:
            raise PackedFormatError("codebook size does not match groups x k x d")
        if major >= 2:
            _check_binding(layer, "codes", code_crc)
        if len(code_raw) != (n_sub * bits + 7) // 8:
            raise PackedFormatError("packed codes size does not match its shape")
        codebook = np.frombuffer(book_raw, dtype="<f2").reshape(groups * k, d).astype(np.float32)
        if not np.isfinite(codebook).all():
            raise PackedFormatError("codebook holds a NaN or infinite codeword")
        codes = unpack_codes(code_raw, n_sub, bits)
        if codes.max(initial=0) >= k:
            raise PackedFormatError("code out of range")
        return LayerCodes(list(shape), codes, codebook, k, d, groups)
    except PackedFormatError as e:
        raise PackedFormatError(f"{name}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise PackedFormatError(f"{name}: malformed layer entry ({e})") from None


def _quantizable_names(meta: dict) -> set:
    blocks, local = meta["num_blocks"], meta["quantizable_layers"]
    return {f"layers.{b}.{name}" for b in range(blocks) for name in local}


def read_packed(path: str) -> Tuple[Dict[str, torch.Tensor], dict, torch.jit.ScriptModule]:
    """Returns (full state dict with dequantized weights, provenance, architecture module with the
    dequantized weights set)."""
    return _read(path, compressed=False)


def load(path: str) -> torch.jit.ScriptModule:
    """The packed model as `vimvq eval` runs it: every quantized layer whose linear module has the
    compressed members (docs/MODEL_CONTRACT.md, "Compressed linears") keeps its codes and codebooks
    and multiplies through torch.ops.vimvq.vq_linear (load the ops library first:
    vimlib.native.load_ops); its weight is never rebuilt. Layers of an architecture without those
    members are dequantized. Checked as strictly as read_packed."""
    return _read(path, compressed=True)[2]


REST_DTYPES = ("float16", "bfloat16", "float32")


def _to_float32(module) -> None:
    """Every floating parameter and buffer of a TorchScript module in fp32."""
    for name, value in list(module.named_parameters()) + list(module.named_buffers()):
        if value.is_floating_point() and value.dtype != torch.float32 and value.numel() > 0:
            owner, leaf = _owner(module, name)
            setattr(owner, leaf, value.detach().float())


def _owner(module, name: str):
    *parents, leaf = name.split(".")
    for part in parents:
        module = getattr(module, part)
    return module, leaf


def _set_compressed(arch, name: str, parts: LayerCodes) -> bool:
    owner, _ = _owner(arch, name)
    if not hasattr(owner, "vq_d") or parts.k > 256 or len(parts.shape) != 2:
        return False  # an export before the compressed members: dequantized instead
    owner.vq_codes = torch.from_numpy(parts.codes.astype(np.uint8))
    owner.vq_codebook = torch.from_numpy(np.ascontiguousarray(parts.codebook))
    owner.vq_groups = parts.groups
    owner.vq_d = parts.d
    return True


def _read(path: str, compressed: bool) -> Tuple[Dict[str, torch.Tensor], dict, torch.jit.ScriptModule]:
    with open(path, "rb") as f:
        data = f.read()
    major, sections = _sections(data, path)
    try:
        meta = load_bounded_json(sections[0][0], f"{path}: metadata")
        layers, provenance = meta["layers"], meta["provenance"]
        if major >= 2 and meta.get("rest_dtype") not in REST_DTYPES:
            raise PackedFormatError(f"{path}: metadata: unknown rest_dtype {meta.get('rest_dtype')!r}")
        if not isinstance(layers, list) or 2 + 2 * len(layers) != len(sections):
            raise PackedFormatError(f"{path}: layer table and section count disagree")
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, PackedFormatError):
            raise
        raise PackedFormatError(f"{path}: metadata: {e}") from None
    try:
        arch = torch.jit.load(io.BytesIO(_architecture(sections[1][0], major, path)))
        arch_meta = load_bounded_json(arch.metadata(), f"{path}: packed architecture: metadata")
        quantizable = _quantizable_names(arch_meta)
        probe_input = (1, arch_meta["input"]["channels"], arch_meta["input"]["image_size"],
                       arch_meta["input"]["image_size"])
    except PackedFormatError:
        raise
    except Exception as e:  # noqa: BLE001 - TorchScript raises many kinds; all mean "damaged"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PackedFormatError(f"{path}: packed architecture does not load: {first}") from None
    _to_float32(arch)  # stored fp16 or bf16 (major 2), computed in fp32 as vimvq does
    state = {k: v.clone() for k, v in arch.state_dict().items()}
    for name, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise PackedFormatError(f"{path}: architecture parameter {name} holds a NaN or infinite value")
    seen = set()
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise PackedFormatError(f"{path}: metadata: layer {i} is not an object")
        try:
            parts = _layer(layer, sections[2 + 2 * i], sections[3 + 2 * i], major)
        except PackedFormatError as e:
            raise PackedFormatError(f"{path}: {e}") from None
        name = layer["name"]
        if name not in quantizable:
            raise PackedFormatError(f"{path}: layer {name} is not a quantizable weight of the architecture")
        if name in seen:
            raise PackedFormatError(f"{path}: layer {name} is stored twice")
        if state.get(name) is None or state[name].numel() != 0:
            raise PackedFormatError(f"{path}: layer {name} has no empty placeholder in the architecture")
        seen.add(name)
        if not (compressed and _set_compressed(arch, name, parts)):  # compressed: the placeholder stays
            state[name] = parts.dequantize()
    _probe(arch, state, quantizable, probe_input, arch_meta["num_classes"], path)
    return state, provenance, arch


def _probe(arch, state, quantizable, probe_input, num_classes, path):
    """Sets the stored weights into the architecture and runs one image of zeros through it, as the
    C++ reader's load does: a layer whose shape does not fit the architecture fails here."""
    for name in quantizable & set(state):
        if state[name].numel() == 0:
            continue  # a compressed layer (its codes are set), or nothing stored
        owner, leaf = _owner(arch, name)
        setattr(owner, leaf, state[name])
    try:
        with torch.no_grad():
            out = arch(torch.zeros(probe_input))
    except Exception as e:  # noqa: BLE001 - a shape error surfaces as a TorchScript RuntimeError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PackedFormatError(f"{path}: the stored layers do not fit the architecture: {first}") from None
    if tuple(out.shape) != (1, num_classes):
        raise PackedFormatError(f"{path}: the architecture's head does not give num_classes scores")
