"""HeadlineGenerator: a Chinese headline for a news body, from a folder written by ``xinwen train``.

>>> gen = HeadlineGenerator.from_pretrained("runs/headline")              # doctest: +SKIP
>>> gen.generate("海关总署10月13日发布数据，前三季度我国货物贸易进出口总值同比增长……")  # doctest: +SKIP
'前三季度我国外贸进出口同比增长'
>>> gen.generate([body_a, {"title": "...", "body": body_b}], num_beams=1)  # doctest: +SKIP
['...', '...']
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from xinwen.inference.batching import length_batches, pad_batch
from xinwen.inference.encoders.loading import check_headline_folder, check_model_source, pick_device
from xinwen.inference.headline.text import encoder_text, headline_source, lead_headline, tighten_spaces
from xinwen.inference.settings import SETTINGS_FILE
from xinwen.inference.text import Article, as_article, is_one_article


@dataclass
class HeadlineSettings:
    """How text reaches the model (``xinwen.json`` beside the weights)."""

    task: str = "headline"
    max_source_length: int = 256
    prefix: str = ""
    # Median training-title length in characters: the lead baseline's clip, and the length of
    # the fallback headline in the (rare) case the model only emits special tokens.
    lead_chars: int = 22

    def save(self, folder: str | Path) -> None:
        Path(folder, SETTINGS_FILE).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, folder: str | Path) -> "HeadlineSettings":
        path = Path(folder, SETTINGS_FILE)
        if not path.is_file():  # a plain HF seq2seq folder: neutral defaults
            return cls()
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# Counts a caller may override, with their least valid value: transformers itself answers 0 or
# "2" with a ZeroDivisionError, a negative-dimension RuntimeError or a TypeError.
_COUNTS = {"num_beams": 1, "max_new_tokens": 1, "min_new_tokens": 0, "no_repeat_ngram_size": 0,
           "max_length": 1, "min_length": 0, "num_beam_groups": 1}


def check_generation_overrides(overrides: dict, positions: int | None = None) -> None:
    """ValueError naming the setting for a count that is not a valid integer, for more than one
    headline per article, or for ``max_new_tokens`` past the decoder's ``positions``."""
    for key, low in _COUNTS.items():
        value = overrides.get(key)
        if key in overrides and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"generate(): {key}: expected an integer >= {low}, got {value!r}")
    if overrides.get("num_return_sequences", 1) != 1:
        raise ValueError("generate(): num_return_sequences: expected 1 (one headline per article), got "
                         f"{overrides['num_return_sequences']!r}; fix: call generate once per setting instead")
    longest = overrides.get("max_new_tokens")
    if positions and longest is not None and longest >= positions:
        raise ValueError(f"generate(): max_new_tokens: expected at most {positions - 1} (the decoder reads "
                         f"{positions} positions, one taken by the start token), got {longest}")


def generation_settings(base, overrides: dict):
    """A copy of the model's GenerationConfig with ``overrides``; unknown keys are an error."""
    from transformers import GenerationConfig

    config = GenerationConfig.from_dict({**base.to_dict(), **overrides})
    unknown = sorted(k for k in overrides if not hasattr(GenerationConfig(), k))
    if unknown:
        raise TypeError(f"generate(): unknown generation setting(s) {unknown}; expected GenerationConfig fields "
                        "such as num_beams, length_penalty, no_repeat_ngram_size, min_new_tokens, max_new_tokens")
    config.validate()
    return config


def _decoder_positions(config) -> int | None:
    """The decoder's learned positions (encoder-decoder or BART-style config); None for relative ones (T5)."""
    decoder = getattr(config, "decoder", None) or config
    return getattr(decoder, "max_position_embeddings", None)


class HeadlineGenerator:
    def __init__(self, model, tokenizer, settings: HeadlineSettings, device: torch.device):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.settings = settings
        self.device = device

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None,
                        trust_remote_code: bool = False) -> "HeadlineGenerator":
        """Load a folder written by ``xinwen train`` (or any ``AutoModelForSeq2SeqLM`` folder)."""
        from transformers import AutoTokenizer

        from xinwen.inference.headline.copy_model import load_seq2seq_model

        source = check_model_source(path, what="headline model path")
        check_headline_folder(source, what="headline model path")  # not transformers' list of 60 configs
        dev = pick_device(device)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = load_seq2seq_model(source, trust_remote_code=trust_remote_code)
        settings = HeadlineSettings.load(source) if Path(source).is_dir() else HeadlineSettings()
        return cls(model.to(dev), tokenizer, settings, dev)

    def sources(self, items: Sequence[Article], indexed: bool = True) -> list[str]:
        """The prepared source text of each item (what the model and the lead baseline read).

        An article is a title and/or a body (``as_article``; neither is a ValueError naming its
        index); a title-only one is rewritten from its title."""
        out = []
        for i, item in enumerate(items):
            article = as_article(item, i if indexed else None)
            out.append(headline_source(article) or article.title)
        return out

    def encode(self, sources: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer([encoder_text(s, self.settings.prefix) for s in sources],
                             max_length=self.settings.max_source_length, truncation=True, verbose=False)
        return enc["input_ids"]

    @torch.inference_mode()
    def generate_ids(self, encoded: list[list[int]], batch_size: int = 16, **overrides) -> list[list[int]]:
        """Token ids of the headline for each encoded source, in input order.

        Sources are sorted by length and padded per batch (little padding, no wasted compute);
        token_type_ids, which some BERT-style tokenizers add and seq2seq generate() rejects,
        are never passed."""
        check_generation_overrides(overrides, _decoder_positions(self.model.config))
        config = generation_settings(self.model.generation_config, overrides)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        results: list[list[int]] = [[] for _ in encoded]
        for chunk in length_batches([len(ids) for ids in encoded], batch_size):
            batch = pad_batch([encoded[k] for k in chunk], pad_id)
            out = self.model.generate(input_ids=batch["input_ids"].to(self.device),
                                      attention_mask=batch["attention_mask"].to(self.device), generation_config=config)
            for row, k in enumerate(chunk):
                results[k] = out[row].tolist()
        return results

    def decode(self, ids: list[int], source: str) -> str:
        text = tighten_spaces(self.tokenizer.decode(ids, skip_special_tokens=True))
        # Never an empty headline: fall back to the lead sentence (a model that emits only
        # special tokens is broken, but the caller still gets usable text).
        return text or lead_headline(source, self.settings.lead_chars) or source[: self.settings.lead_chars]

    def generate(self, articles: Article | Sequence[Article], batch_size: int = 16,
                 **generation_overrides) -> str | list[str]:
        """A headline for one body (str) or article mapping (its ``body`` is used); a list in,
        a list out (``[]`` for ``[]``). Keyword arguments override the saved generation settings
        for this call, e.g. ``num_beams=1, max_new_tokens=24``. Deterministic: beam search, no
        sampling unless asked for."""
        single = is_one_article(articles)
        if not single and not isinstance(articles, Sequence):
            raise TypeError(f"generate() takes a str, a mapping with 'body', or a list of them; "
                            f"got {type(articles).__name__}")
        items = [articles] if single else list(articles)
        if not items:
            return []
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        sources = self.sources(items, indexed=not single)
        ids = self.generate_ids(self.encode(sources), batch_size=batch_size, **generation_overrides)
        headlines = [self.decode(i, s) for i, s in zip(ids, sources)]
        return headlines[0] if single else headlines
