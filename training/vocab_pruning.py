"""Shrink a SentencePiece-Unigram vocabulary to the pieces a corpus uses.

multilingual-e5-small spends ~80% of its weights on a 250k-piece table, most of it for scripts a
Chinese news model never sees. We keep every piece the training texts use, every single-character
piece (so unseen text still splits into known characters rather than <unk>), and the specials.
For texts made only of kept pieces the Viterbi segmentation is unchanged: the best path over the
full vocabulary uses only kept pieces, and every path over the subset exists in the full set.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import torch
from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)


def _is_single_character(piece: str) -> bool:
    return len(piece.lstrip("▁")) == 1


def used_piece_ids(tokenizer, texts: Iterable[str], batch_size: int = 512) -> set[int]:
    used: set[int] = set()
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            for ids in tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
                used.update(ids)
            batch = []
    if batch:
        for ids in tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
            used.update(ids)
    return used


def kept_piece_ids(tokenizer, texts: Iterable[str], keep_single_characters: bool = True) -> list[int]:
    """Ids, ascending, of the pieces pruning keeps: those ``texts`` use, the specials and (by
    default) every single-character piece. ``tokenizer`` must be a Unigram one."""
    vocab = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    keep = used_piece_ids(tokenizer, texts)
    keep.update(tokenizer.all_special_ids)
    if keep_single_characters:
        keep.update(i for i, (piece, _) in enumerate(vocab) if _is_single_character(piece))
    return sorted(i for i in keep if i < len(vocab))


def prune_vocabulary(model, tokenizer, texts: Iterable[str], keep_single_characters: bool = True):
    """Return ``(model, tokenizer)`` restricted to the kept pieces; embeddings re-indexed.

    Only Unigram tokenizers are pruned; others are returned unchanged with a log message.
    """
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "Unigram":
        logger.info("vocabulary pruning skipped: %s tokenizer (only Unigram is pruned)", spec["model"]["type"])
        return model, tokenizer
    vocab = spec["model"]["vocab"]
    kept = kept_piece_ids(tokenizer, texts, keep_single_characters)
    old_to_new = {old: new for new, old in enumerate(kept)}

    spec["model"]["vocab"] = [vocab[i] for i in kept]
    spec["model"]["unk_id"] = old_to_new[spec["model"]["unk_id"]]
    for tok in spec.get("added_tokens", []):
        tok["id"] = old_to_new[tok["id"]]
    post = spec.get("post_processor") or {}
    for entry in (post.get("special_tokens") or {}).values():
        entry["ids"] = [old_to_new[i] for i in entry["ids"]]

    from tokenizers import Tokenizer

    new_tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        model_max_length=tokenizer.model_max_length,
        model_input_names=list(tokenizer.model_input_names),
        **{k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)},
    )

    old_emb = model.get_input_embeddings().weight.data
    index = torch.tensor(kept, dtype=torch.long)
    model.resize_token_embeddings(len(kept))
    model.get_input_embeddings().weight.data.copy_(old_emb[index])
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value in old_to_new:
            setattr(model.config, attr, old_to_new[value])
    logger.info("vocabulary pruned from %d to %d pieces (%.1fM fewer parameters)",
                len(vocab), len(kept), (old_emb.shape[0] - len(kept)) * old_emb.shape[1] / 1e6)
    return model, new_tok
