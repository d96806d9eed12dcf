"""Tiny random seq2seq models and headline pairs for offline tests (2 layers, hidden 32, the
tiny CJK tokenizer). Built with the same warm-start code as the real model."""
from __future__ import annotations

from pathlib import Path

import torch
from tiny_models import save_tiny_encoder, tiny_tokenizer

from xinwen.inference.headline.generator import HeadlineSettings


def save_tiny_seq2seq(folder: Path, seed: int = 0, num_beams: int = 2) -> Path:
    """A tiny encoder-decoder warm-started from a tiny random BERT, saved like `xinwen train`."""
    from transformers import AutoModel, GenerationConfig

    from xinwen.training.headline.model import warm_start_encoder_decoder

    torch.manual_seed(seed)
    encoder_dir = save_tiny_encoder(folder / "encoder", seed=seed)
    tok = tiny_tokenizer()
    encoder = AutoModel.from_pretrained(encoder_dir)
    for name, token in (("bos_token_id", "<s>"), ("eos_token_id", "</s>"), ("pad_token_id", "<pad>")):
        setattr(encoder.config, name, tok.convert_tokens_to_ids(token))
    model = warm_start_encoder_decoder(encoder, decoder_layers=2)
    model.generation_config = GenerationConfig(
        num_beams=num_beams, no_repeat_ngram_size=3, min_new_tokens=3, max_new_tokens=8, do_sample=False,
        decoder_start_token_id=model.config.decoder_start_token_id, bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id)
    out = folder / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    HeadlineSettings(max_source_length=48, lead_chars=8).save(out)
    return out


def save_tiny_bart(folder: Path, seed: int = 0) -> Path:
    """A tiny random BART with the tiny tokenizer (<s>=0, <pad>=1, </s>=2 as BART expects): a
    stand-in for any AutoModelForSeq2SeqLM checkpoint a user brings."""
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    config = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_position_embeddings=128, bos_token_id=0, pad_token_id=1,
                        eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)
    model = BartForConditionalGeneration(config)
    model.generation_config = GenerationConfig(max_new_tokens=6, num_beams=1, do_sample=False, bos_token_id=0,
                                               pad_token_id=1, eos_token_id=2, decoder_start_token_id=2)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# Two-character words of the tiny vocabulary. Each title is three of them (distinct titles, so
# deduplication keeps them); its body starts with the same words, so a tiny model can learn it.
_WORDS = ["海关", "贸易", "出口", "进口", "铁路", "高铁", "列车", "航班", "机场", "港口", "物流", "运输",
          "事故", "安全", "火灾", "爆炸", "救援", "消防", "政策", "产业", "规划", "园区", "招商", "企业"]


def headline_records(n: int = 24, offset: int = 0) -> list[dict]:
    import random

    recs = []
    for i in range(offset, offset + n):
        a, b, c = random.Random(i).sample(_WORDS, 3)
        title = f"{a}{b}{c}发展"
        body = f"{a}的{b}和{c}。{c}的{a}在{b}中发展,我们要{a}{b}。" + "这是工业的新闻。" * 4
        recs.append({"id": f"h{i}", "title": title, "body": body})
    return recs
