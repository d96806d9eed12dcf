"""NewsClassifier: topic of a Chinese news article, with calibrated probabilities.

Every probability the package reports is computed by ``NewsClassifier.probabilities``: the
first stage, the encoder (batched, chunks averaged, calibrated), the lexical expert and the
int8-checked backend's fp32 recheck all live inside it. ``predict``, ``NewsAnalyzer``, ``xinwen
score``, ``xinwen eval`` and the lexical and first-stage fits read it (the last two through its
``return_parts`` option).

>>> clf = NewsClassifier.from_pretrained("runs/topic")            # doctest: +SKIP
>>> clf.predict({"title": "海关总署发布前三季度进出口数据", "body": "..."}).label  # doctest: +SKIP
'trade'
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from xinwen.inference.batching import length_batches, pad_batch
from xinwen.inference.encoders.loading import load_classifier_model, pick_device
from xinwen.inference.settings import ClassifierSettings, TextSettings
from xinwen.inference.text import (Article, ArticleText, as_article, chunk_ids, classifier_text, head_tail_ids,
                                   is_one_article)
from xinwen.inference.topic.first_stage import FirstStage
from xinwen.inference.topic.lexical import LexicalExpert
from xinwen.inference.topic.runtimes import CheckedInt8Model, fragile_rows

__all__ = ["NewsClassifier", "Prediction", "ProbabilityParts", "RuntimeCounts", "encode_for_classifier",
           "override_text_settings", "special_tokens_around", "fragile_rows", "length_batches", "pad_batch"]


@dataclass
class Prediction:
    label: str
    score: float
    # label -> calibrated probability, highest first (only the top_k when top_k is given)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class ProbabilityParts:
    """What ``NewsClassifier.probabilities(..., return_parts=True)`` returns: the final rows and
    the parts they are made of, one row per article, columns in ``NewsClassifier.labels`` order."""

    # What predict reads: the first stage's answer where it is sure, else encoder x expert.
    final: torch.Tensor
    # The encoder alone: softmax(logits / T) averaged over chunks (after the int8-checked recheck).
    encoder: torch.Tensor
    # The same at T = 1 (before calibration).
    encoder_uncalibrated: torch.Tensor
    # The lexical expert's n-gram probabilities, and log p_encoder + weight * log p_ngram before
    # the expert's temperature (None without an expert).
    ngram: torch.Tensor | None = None
    product_logits: torch.Tensor | None = None
    # Articles the first stage answered (all False without one).
    answered: torch.Tensor | None = None


@dataclass
class RuntimeCounts:
    """Running totals of a classifier, for reports (``xinwen score`` prints the difference)."""

    articles: int = 0  # articles that reached probabilities()
    first_stage_answered: int = 0
    # int8-checked backend only (None otherwise): model inputs run, and those recomputed in fp32.
    backend_rows: int | None = None
    fp32_rechecked: int | None = None


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special ids a tokenizer puts before and after one text (e.g. ``<s>`` / ``</s>``).

    transformers 5 tokenizers no longer expose ``build_inputs_with_special_tokens``, so the
    template is read off a probe encoding."""
    cached = getattr(tokenizer, "_xinwen_specials", None)
    if cached is not None:
        return cached
    probe = "新闻"
    with_specials = tokenizer(probe, add_special_tokens=True)["input_ids"]
    content = tokenizer(probe, add_special_tokens=False, verbose=False)["input_ids"]
    for start in range(len(with_specials) - len(content) + 1):
        if with_specials[start : start + len(content)] == content:
            cached = (with_specials[:start], with_specials[start + len(content):])
            break
    else:
        raise ValueError("cannot find where the tokenizer places its special tokens")
    tokenizer._xinwen_specials = cached
    return cached


def encode_for_classifier(tokenizer, articles: Sequence[ArticleText], text: TextSettings) -> list[tuple[int, list[int]]]:
    """(article index, input ids with specials) for every model input; several per article
    when ``text.long_text == "chunks"`` and the article is longer than ``text.max_length``."""
    before, after = special_tokens_around(tokenizer)
    budget = text.max_length - len(before) - len(after)
    full = tokenizer([classifier_text(a, text.prefix) for a in articles], add_special_tokens=False, verbose=False)["input_ids"]
    inputs: list[tuple[int, list[int]]] = []
    for i, (article, ids) in enumerate(zip(articles, full)):
        if len(ids) <= budget or text.long_text == "head":
            pieces = [ids[:budget]]
        elif text.long_text == "head_tail":
            pieces = [head_tail_ids(ids, budget, text.tail_fraction)]
        else:
            lead = text.prefix + article.title + ("。" if article.title else "")
            lead_ids = tokenizer(lead, add_special_tokens=False)["input_ids"][: budget // 2]
            body_ids = tokenizer(article.body.replace("\n", " "), add_special_tokens=False, verbose=False)["input_ids"]
            windows = chunk_ids(body_ids, budget - len(lead_ids), text.chunk_stride, text.max_chunks)
            pieces = [lead_ids + w for w in windows]
        inputs.extend((i, before + p + after) for p in pieces)
    return inputs


def override_text_settings(clf, long_text: str | None = None, max_length: int | None = None,
                           max_chunks: int | None = None) -> None:
    """Change how much of each article ``clf`` reads (``xinwen eval``/``score`` --long-text,
    --max-length and --max-chunks), checked against the model's position table. Raises ValueError
    naming the flag."""
    given = (("long_text", long_text), ("max_length", max_length), ("max_chunks", max_chunks))
    overrides = {k: v for k, v in given if v is not None}
    if not overrides:
        return
    positions = getattr(getattr(clf.model, "config", None), "max_position_embeddings", None)
    if max_length is not None and isinstance(positions, int) and max_length > positions:
        raise ValueError(f"--max-length {max_length}: this model reads at most {positions} tokens per window; "
                         f"use a smaller value, or --long-text chunks for longer articles")
    try:
        clf.settings.text = replace(clf.settings.text, **overrides)  # validated by TextSettings
    except ValueError as err:
        raise ValueError(f"--long-text/--max-length/--max-chunks: {err}") from None


def _check_predict_arguments(top_k, threshold, batch_size) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: expected None or an integer >= 1, got {top_k!r}")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0)):
        raise ValueError(f"threshold: expected None or a probability between 0 and 1, got {threshold!r}")
    _check_batch_size(batch_size)


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


class NewsClassifier:
    def __init__(self, model, tokenizer, settings: ClassifierSettings, device: torch.device,
                 first_stage: FirstStage | None = None, lexical: LexicalExpert | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.settings = settings
        self.device = device
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        # Optional cheap model that answers the articles it is sure of (first_stage.py).
        self.first_stage = first_stage
        if first_stage is not None and set(first_stage.labels) != set(self.labels):
            raise ValueError(f"first stage labels {first_stage.labels} differ from the model's {self.labels}; "
                             "fix: refit it with `xinwen first-stage DIR`")
        # Optional character n-gram expert multiplied into the model's probabilities (lexical.py).
        self.lexical = lexical
        if lexical is not None and set(lexical.labels) != set(self.labels):
            raise ValueError(f"lexical expert labels {lexical.labels} differ from the model's {self.labels}; "
                             "fix: refit it with `xinwen lexical DIR`, or remove it with `xinwen lexical DIR --weight 0`")
        # [articles seen, articles answered by the first stage] (also in runtime_counts()).
        self.first_stage_counts = [0, 0]

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, quantize: str | None = None,
                        trust_remote_code: bool = False, first_stage: bool = True,
                        lexical: bool = True) -> "NewsClassifier":
        """Load a folder written by ``xinwen train`` (or any HF text-classification folder).

        ``quantize="int8"`` applies dynamic int8 quantization to the linear layers (CPU only).
        ``first_stage=False`` ignores a first stage fitted into the folder (``xinwen first-stage``);
        ``lexical=False`` ignores the lexical expert ``xinwen train`` saves there (the encoder alone).
        """
        dev = pick_device(device)
        model, tokenizer = load_classifier_model(path, dev, quantize=quantize, trust_remote_code=trust_remote_code)
        stage = FirstStage.load(path) if first_stage else None
        expert = LexicalExpert.load(path) if lexical else None
        return cls(model, tokenizer, ClassifierSettings.load(path), dev, first_stage=stage, lexical=expert)

    def with_experts(self, first_stage: FirstStage | None = None, lexical: LexicalExpert | None = None
                     ) -> "NewsClassifier":
        """The same model and settings with another first stage / lexical expert (``None``: none),
        e.g. to measure an expert while fitting it. The model is shared, not copied."""
        return NewsClassifier(self.model, self.tokenizer, self.settings, self.device, first_stage, lexical)

    # -- the one place a probability is computed --------------------------------------------------
    @torch.inference_mode()
    def probabilities(self, articles: Sequence[ArticleText], batch_size: int = 32, *,
                      max_batch_tokens: int | None = None, return_parts: bool = False,
                      reuse: "torch.Tensor | ProbabilityParts | None" = None) -> "torch.Tensor | ProbabilityParts":
        """Calibrated class probabilities, one row per article, columns in ``self.labels`` order.

        Per article: the first stage's answer where it is sure (when the folder has one); else the
        encoder's softmax(logits / T), averaged over chunks, times the lexical expert (when the
        folder has one); on the int8-checked backend, articles whose final answer is close are
        recomputed in fp32.

        ``batch_size`` inputs of full length run together; shorter ones are packed, up to 8x as
        many, under ``max_batch_tokens`` padded tokens (default ``batch_size * text.max_length``).
        ``return_parts=True`` gives a ``ProbabilityParts`` instead, with the encoder (and expert)
        run on every article, for evaluation and fitting. ``reuse`` skips the encoder pass: the
        parts of an earlier call on the same articles, or the encoder's probabilities at T = 1
        (recomputed anyway where rescaling them would not give the same numbers: chunks averaged
        at T != 1).
        """
        _check_batch_size(batch_size)
        articles = list(articles)
        stage, answered = self._first_stage_answers(articles)
        todo = list(range(len(articles))) if return_parts else (~answered).nonzero().squeeze(1).tolist()
        part = [articles[i] for i in todo]
        encoder, uncalibrated = self._encoder(part, batch_size, max_batch_tokens, _rows_of(reuse, todo))
        ngram = logits = None
        mixed = encoder
        if self.lexical is not None:
            ngram = self.lexical.probabilities(part, self.labels)
            encoder = self._recheck_close_answers(part, encoder, ngram, batch_size, max_batch_tokens)
            logits = self.lexical.logits(encoder, ngram)
            mixed = self.lexical.combine(encoder, ngram)
        full = torch.zeros((len(articles), len(self.labels)), dtype=torch.float32)
        full[todo] = mixed
        final = torch.where(answered.unsqueeze(1), stage, full)
        if not return_parts:
            return final
        return ProbabilityParts(final, encoder, uncalibrated, ngram, logits, answered)

    def _first_stage_answers(self, articles: list[ArticleText]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first_stage is None or not articles:
            return torch.zeros((len(articles), len(self.labels))), torch.zeros(len(articles), dtype=torch.bool)
        probs, accepted = self.first_stage.answer(articles, self.labels, self.settings.threshold)
        self.first_stage_counts[0] += len(articles)
        self.first_stage_counts[1] += int(accepted.sum())
        return probs, accepted

    def _encoder(self, articles: list[ArticleText], batch_size: int, max_batch_tokens: int | None,
                 reuse: "torch.Tensor | ProbabilityParts | None") -> tuple[torch.Tensor, torch.Tensor]:
        """(calibrated, T = 1) encoder probabilities, from ``reuse`` where it gives the same numbers."""
        if isinstance(reuse, ProbabilityParts):
            return reuse.encoder, reuse.encoder_uncalibrated
        t = self.settings.temperature
        if reuse is not None and (t == 1.0 or self.settings.text.long_text != "chunks"):
            # softmax(log softmax(z) / T) = softmax(z / T) for one window; not for an average of windows.
            return torch.softmax(reuse.clamp_min(1e-9).log() / t, -1), reuse
        return self._encoder_pass(articles, batch_size, max_batch_tokens)

    def _encoder_pass(self, articles: list[ArticleText], batch_size: int, max_batch_tokens: int | None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model over every input (length-sorted, token-budgeted batches); per article the mean
        over its chunks of softmax(logits / T) and of softmax(logits)."""
        inputs = encode_for_classifier(self.tokenizer, articles, self.settings.text)
        budget = max_batch_tokens or batch_size * self.settings.text.max_length
        t = self.settings.temperature
        sums = torch.zeros((2, len(articles), len(self.labels)), dtype=torch.float32)
        counts = torch.zeros(len(articles), dtype=torch.float32)
        pad_id = self.tokenizer.pad_token_id or 0
        for batch_ids in length_batches([len(ids) for _, ids in inputs], batch_size, budget):
            part = [inputs[k] for k in batch_ids]
            batch = {k: v.to(self.device) for k, v in pad_batch([ids for _, ids in part], pad_id).items()}
            logits = self.model(**batch).logits.float().cpu()
            index = torch.tensor([article for article, _ in part])
            sums[0].index_add_(0, index, torch.softmax(logits / t, dim=-1))
            if t != 1.0:
                sums[1].index_add_(0, index, torch.softmax(logits, dim=-1))
            counts.index_add_(0, index, torch.ones(len(part)))
        means = sums / counts.clamp(min=1).unsqueeze(1)
        return means[0], (means[0] if t == 1.0 else means[1])

    def _recheck_close_answers(self, articles: list[ArticleText], encoder: torch.Tensor, ngram: torch.Tensor,
                               batch_size: int, max_batch_tokens: int | None) -> torch.Tensor:
        """On the int8-checked backend: the encoder rows of articles whose answer *after* the expert
        is close, recomputed in fp32. The backend's own check sees encoder rows only, and an answer
        the expert made close is invisible to it."""
        if not isinstance(self.model, CheckedInt8Model):
            return encoder
        final = self.lexical.combine(encoder, ngram)
        rows = fragile_rows(final, self.model.margin, self.settings.threshold).nonzero().squeeze(1).tolist()
        if rows:
            encoder = encoder.clone()
            with self.model.fp32_pass():
                encoder[rows] = self._encoder_pass([articles[i] for i in rows], batch_size, max_batch_tokens)[0]
        return encoder

    def runtime_counts(self) -> RuntimeCounts:
        """Totals so far: articles seen, first-stage answers, and the int8-checked backend's fp32
        rechecks (None on other backends)."""
        seen, answered = self.first_stage_counts
        backend = self.model.counts() if isinstance(self.model, CheckedInt8Model) else {}
        return RuntimeCounts(seen, answered, backend.get("rows"), backend.get("rechecked"))

    # -- answers -----------------------------------------------------------------------------------
    def predict(self, articles: Article | Sequence[Article], top_k: int | None = None,
                threshold: float | None = None, batch_size: int = 32,
                max_batch_tokens: int | None = None) -> Prediction | list[Prediction]:
        """One article in, one ``Prediction`` out; a list in, a list out (``[]`` for ``[]``).

        An article is a ``str`` (the body), a mapping with ``title`` and/or ``body``, or an
        ``ArticleText``; one with neither is a ValueError naming its index. Below ``threshold``
        (default: the one saved with the model) the answer is the fallback label (``other``);
        ``top_k`` keeps that many labels in ``scores``."""
        _check_predict_arguments(top_k, threshold, batch_size)
        single = is_one_article(articles) or not isinstance(articles, Sequence)
        items = [articles] if single else list(articles)
        prepared = [as_article(a, None if single else i) for i, a in enumerate(items)]
        if not prepared:
            return []
        probs = self.probabilities(prepared, batch_size=batch_size, max_batch_tokens=max_batch_tokens)
        results = [self.decide(row, top_k, threshold) for row in probs]
        return results[0] if single else results

    def decide(self, row: torch.Tensor, top_k: int | None = None, threshold: float | None = None) -> Prediction:
        """The ``Prediction`` for one row of ``probabilities``: what ``predict`` answers for that
        article (the fallback label below ``threshold``)."""
        limit = self.settings.threshold if threshold is None else threshold
        ranked = sorted(zip(self.labels, row.tolist()), key=lambda kv: -kv[1])
        label, score = ranked[0]
        fallback = self.settings.fallback_label
        if score < limit and fallback in self.labels:
            label, score = fallback, dict(ranked)[fallback]
        shown = ranked[:top_k] if top_k else ranked
        return Prediction(label=label, score=float(score), scores={k: float(v) for k, v in shown})

    # -- deprecated routes to a probability (kept for callers outside the package) ----------------
    def model_probabilities(self, articles: Sequence[ArticleText], batch_size: int = 32,
                            max_batch_tokens: int | None = None) -> torch.Tensor:
        """Deprecated: ``probabilities(articles, return_parts=True).encoder``."""
        _deprecated("NewsClassifier.model_probabilities", "NewsClassifier.probabilities(articles, "
                    "return_parts=True).encoder")
        with torch.inference_mode():
            return self._encoder_pass(list(articles), batch_size, max_batch_tokens)[0]

    def calibrated_from_raw(self, raw: torch.Tensor, articles: Sequence[ArticleText],
                            batch_size: int = 32) -> torch.Tensor:
        """Deprecated: ``probabilities(articles, return_parts=True, reuse=raw).encoder``."""
        _deprecated("NewsClassifier.calibrated_from_raw", "NewsClassifier.probabilities(articles, "
                    "return_parts=True, reuse=raw).encoder")
        with torch.inference_mode():
            return self._encoder(list(articles), batch_size, None, raw)[0]

    def route(self, articles: Sequence[ArticleText], model_probabilities=None) -> torch.Tensor:
        """Deprecated: ``probabilities(articles)`` (``model_probabilities`` is ignored)."""
        _deprecated("NewsClassifier.route", "NewsClassifier.probabilities(articles, batch_size, "
                    "max_batch_tokens=...)")
        return self.probabilities(articles)


def _rows_of(reuse: "torch.Tensor | ProbabilityParts | None", rows: list[int]):
    if reuse is None:
        return None
    if isinstance(reuse, ProbabilityParts):
        return ProbabilityParts(reuse.final[rows], reuse.encoder[rows], reuse.encoder_uncalibrated[rows])
    return reuse[rows]
