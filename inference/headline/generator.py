"""HeadlineGenerator: a Chinese headline for a news body, from a folder written by ``xinwen train``.

>>> gen = HeadlineGenerator.from_pretrained("runs/headline")              # doctest: +SKIP
>>> gen.generate("海关总署10月13日发布数据，前三季度我国货物贸易进出口总值同比增长……")  # doctest: +SKIP
'前三季度我国外贸进出口同比增长'
>>> gen.generate([body_a, {"title": "...", "body": body_b}], num_beams=1)  # doctest: +SKIP
['...', '...']
>>> gen.generate(body, max_chars=12, candidates=3)  # doctest: +SKIP
[HeadlineCandidate(text='前三季度外贸同比增长', score=-0.41, problems=[], ...), ...]
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from xinwen.inference.batching import length_batches, pad_batch
from xinwen.inference.encoders.loading import check_headline_folder, check_model_source, pick_device
from xinwen.inference.headline.candidates import HeadlineCandidate, rank_candidates, with_lead_fallback
from xinwen.inference.headline.echo_guard import EchoGuard
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
    # Longest headline in characters (0 = no limit); generate(max_chars=...) overrides per call.
    max_chars: int = 0
    # Choose among the beam's candidates by the editor's checks (faithful numbers and names, no
    # echo, balanced quotes, no dangling ending) before the decoder's score.
    rerank: bool = True
    # Forbid, while decoding, any span of 2+ characters written twice in a row (寿光寿光);
    # headline/echo_guard.py.
    block_echo: bool = True
    # With rerank: when every beam candidate bends a number or a name, answer the body's first
    # sentence (cut at a phrase break) instead (HeadlineCandidate.origin == "lead").
    lead_fallback: bool = True

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


def check_count(name: str, value, low: int) -> None:
    """ValueError naming ``name`` unless ``value`` is an integer (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"generate(): {name}: expected an integer >= {low}, got {value!r}")


def check_generation_overrides(overrides: dict, positions: int | None = None) -> None:
    """ValueError naming the setting for a count that is not a valid integer, for more than one
    headline per article, or for ``max_new_tokens`` past the decoder's ``positions``."""
    for key, low in _COUNTS.items():
        if key in overrides:
            check_count(key, overrides[key], low)
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


def mean_until_end(step_scores: torch.Tensor, written: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Mean log-probability per row over the tokens up to and including its end token: a finished
    row keeps receiving pad tokens (with scores) while the rest of its batch decodes."""
    ended = written == eos_id
    keep = ((torch.cumsum(ended, dim=1) - ended.long()) == 0) & torch.isfinite(step_scores)
    return torch.where(keep, step_scores, 0).sum(dim=1) / keep.sum(dim=1).clamp(min=1)


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
        self._guard: EchoGuard | None = None

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

    def _batches(self, encoded: list[list[int]], batch_size: int, config, block_echo: bool | None = None):
        """``(positions, generate() output)`` per length-sorted batch of the encoded sources.

        Sources are sorted by length and padded per batch (little padding, no wasted compute);
        token_type_ids, which some BERT-style tokenizers add and seq2seq generate() rejects,
        are never passed."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        guard = [self._echo_guard()] if (self.settings.block_echo if block_echo is None else block_echo) else None
        for chunk in length_batches([len(ids) for ids in encoded], batch_size):
            batch = pad_batch([encoded[k] for k in chunk], pad_id)
            yield chunk, self.model.generate(input_ids=batch["input_ids"].to(self.device),
                                             attention_mask=batch["attention_mask"].to(self.device),
                                             generation_config=config, logits_processor=guard)

    def _echo_guard(self) -> EchoGuard:
        if self._guard is None:  # built once: it reads the whole vocabulary
            self._guard = EchoGuard(self.tokenizer)
        return self._guard

    @torch.inference_mode()
    def generate_ids(self, encoded: list[list[int]], batch_size: int = 16, block_echo: bool | None = None,
                     **overrides) -> list[list[int]]:
        """Token ids of the decoder's most probable headline for each encoded source, in input order."""
        check_generation_overrides(overrides, _decoder_positions(self.model.config))
        config = generation_settings(self.model.generation_config, overrides)
        results: list[list[int]] = [[] for _ in encoded]
        for chunk, out in self._batches(encoded, batch_size, config, block_echo):
            for row, k in enumerate(chunk):
                results[k] = out[row].tolist()
        return results

    @torch.inference_mode()
    def candidate_ids(self, encoded: list[list[int]], batch_size: int = 16, block_echo: bool | None = None,
                      **overrides) -> list[list[tuple[list[int], float]]]:
        """Every finished beam per source, as ``(token ids, score)`` in the decoder's order: the
        beam's length-normalised log-probability; greedy decoding gives one candidate scored by
        its mean token log-probability."""
        check_generation_overrides(overrides, _decoder_positions(self.model.config))
        config = generation_settings(self.model.generation_config, overrides)
        beams = config.num_beams
        config = generation_settings(config, {"num_return_sequences": beams, "return_dict_in_generate": True,
                                              "output_scores": True})
        results: list[list[tuple[list[int], float]]] = [[] for _ in encoded]
        for chunk, out in self._batches(encoded, batch_size, config, block_echo):
            scores = self._sequence_scores(out, beams)
            for row, k in enumerate(chunk):
                span = range(row * beams, (row + 1) * beams)
                results[k] = [(out.sequences[j].tolist(), float(scores[j])) for j in span]
        return results

    def _sequence_scores(self, out, beams: int) -> torch.Tensor:
        if beams > 1:
            return out.sequences_scores
        steps = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        return mean_until_end(steps, out.sequences[:, -steps.shape[1]:], self.model.generation_config.eos_token_id)

    def decode(self, ids: list[int], source: str) -> str:
        text = tighten_spaces(self.tokenizer.decode(ids, skip_special_tokens=True))
        # Never an empty headline: fall back to the lead sentence (a model that emits only
        # special tokens is broken, but the caller still gets usable text).
        return text or lead_headline(source, self.settings.lead_chars) or source[: self.settings.lead_chars]

    def generate(self, articles: Article | Sequence[Article], batch_size: int = 16,
                 max_chars: int | None = None, candidates: int = 0, rerank: bool | None = None,
                 block_echo: bool | None = None, **generation_overrides) -> str | list[str] | list[HeadlineCandidate] | list[list[HeadlineCandidate]]:
        """A headline for one body (str) or article mapping (its ``body`` is used); a list in,
        a list out (``[]`` for ``[]``). Deterministic: beam search, no sampling unless asked for.

        - ``max_chars``: longest headline in characters (default: the folder's, 0 = no limit).
        - ``candidates=k``: instead of a string, the ``k`` best ``HeadlineCandidate`` (text, score,
          problems the checks found) per article, best first.
        - ``rerank``: choose among the beam's candidates by the editor's checks before the
          decoder's score (default: the folder's setting, on unless trained with it off); when
          none is faithful, the body's first sentence comes first (``lead_fallback`` in
          ``xinwen.json``, config ``generation.lead_fallback``).
        - ``block_echo``: never decode a span of 2+ characters twice in a row (default: the
          folder's setting, on unless trained with it off).
        - other keyword arguments override the saved generation settings for this call, e.g.
          ``num_beams=1, max_new_tokens=24``."""
        single = is_one_article(articles)
        if not single and not isinstance(articles, Sequence):
            raise TypeError(f"generate() takes a str, a mapping with 'body', or a list of them; "
                            f"got {type(articles).__name__}")
        items = [articles] if single else list(articles)
        if not items:
            return []
        check_count("batch_size", batch_size, 1)
        limit = self.settings.max_chars if max_chars is None else max_chars
        check_count("max_chars", limit, 0)
        check_count("candidates", candidates, 0)
        for name, flag in (("rerank", rerank), ("block_echo", block_echo)):
            if flag is not None and not isinstance(flag, bool):
                raise ValueError(f"generate(): {name}: expected True, False or None (the folder's setting), got {flag!r}")
        generation_overrides["block_echo"] = block_echo
        sources = self.sources(items, indexed=not single)
        if limit:
            generation_overrides.update(self._length_budget(limit, generation_overrides))
        use_checks = self.settings.rerank if rerank is None else rerank
        if not (use_checks or limit or candidates):  # the decoder's own best: no candidates needed
            ids = self.generate_ids(self.encode(sources), batch_size=batch_size, **generation_overrides)
            headlines = [self.decode(i, s) for i, s in zip(ids, sources)]
            return headlines[0] if single else headlines
        beams = self.candidate_ids(self.encode(sources), batch_size=batch_size, **generation_overrides)
        ranked = [rank_candidates([self.decode(ids, source) for ids, _ in found], [score for _, score in found],
                                  source, limit, use_checks) for found, source in zip(beams, sources)]
        if use_checks and self.settings.lead_fallback:
            ranked = [with_lead_fallback(r, source, limit, self.settings.lead_chars) for r, source in zip(ranked, sources)]
        out = [r[:candidates] for r in ranked] if candidates else [r[0].text for r in ranked]
        return out[0] if single else out

    def _length_budget(self, limit: int, overrides: dict) -> dict:
        """Token bounds for a ``limit``-character headline: a piece holds at least one character,
        so ``limit`` pieces and the end token are enough; the ranking then applies the limit."""
        saved = self.model.generation_config
        longest = overrides.get("max_new_tokens", saved.max_new_tokens) or limit + 1
        shortest = overrides.get("min_new_tokens", saved.min_new_tokens) or 0
        return {"max_new_tokens": min(longest, limit + 1), "min_new_tokens": min(shortest, limit)}


