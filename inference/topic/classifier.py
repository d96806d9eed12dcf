"""NewsClassifier: topic of a Chinese news article, with calibrated probabilities.

>>> clf = NewsClassifier.from_pretrained("runs/topic")            # doctest: +SKIP
>>> clf.predict({"title": "海关总署发布前三季度进出口数据", "body": "..."}).label  # doctest: +SKIP
'trade'
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from xinwen.inference.encoders.loading import load_classifier_model, pick_device
from xinwen.inference.settings import ClassifierSettings, TextSettings
from xinwen.inference.text import Article, ArticleText, as_article, chunk_ids, classifier_text, head_tail_ids


@dataclass
class Prediction:
    label: str
    score: float
    # label -> calibrated probability, highest first (only the top_k when top_k is given)
    scores: dict[str, float] = field(default_factory=dict)


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


def pad_batch(sequences: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted, so padding is small).

    A batch holds at most ``max_batch_tokens`` padded tokens and ``8 * batch_size`` rows: full-length
    inputs come ``batch_size`` at a time, short ones in proportionally larger batches, so every
    batch costs about the same and none is mostly padding."""
    order = sorted(range(len(lengths)), key=lambda k: (lengths[k], k))
    batches: list[list[int]] = []
    current: list[int] = []
    for k in order:
        width = lengths[k]  # ascending order: the newest item is the widest in its batch
        if current and ((len(current) + 1) * width > max_batch_tokens or len(current) >= 8 * batch_size):
            batches.append(current)
            current = []
        current.append(k)
    if current:
        batches.append(current)
    return batches


def override_text_settings(clf, long_text: str | None = None, max_length: int | None = None) -> None:
    """Change how much of each article ``clf`` reads (``xinwen eval``/``score`` --long-text and
    --max-length), checked against the model's position table. Raises ValueError naming the flag."""
    overrides = {k: v for k, v in (("long_text", long_text), ("max_length", max_length)) if v is not None}
    if not overrides:
        return
    positions = getattr(getattr(clf.model, "config", None), "max_position_embeddings", None)
    if max_length is not None and isinstance(positions, int) and max_length > positions:
        raise ValueError(f"--max-length {max_length}: this model reads at most {positions} tokens per window; "
                         f"use a smaller value, or --long-text chunks for longer articles")
    try:
        clf.settings.text = replace(clf.settings.text, **overrides)  # validated by TextSettings
    except ValueError as err:
        raise ValueError(f"--long-text/--max-length: {err}") from None


def fragile_rows(probs: torch.Tensor, margin: float, threshold: float = 0.0) -> torch.Tensor:
    """Rows whose answer a small change in probabilities could flip: top-two gap below ``margin``,
    or (with a confidence threshold) a top probability within ``margin`` of it."""
    top = probs.topk(min(2, probs.shape[-1]), dim=-1).values
    unsure = (top[:, 0] - top[:, -1]) < margin
    if threshold > 0:
        unsure |= (top[:, 0] - threshold).abs() < margin
    return unsure


class NewsClassifier:
    def __init__(self, model, tokenizer, settings: ClassifierSettings, device: torch.device, first_stage=None,
                 lexical=None):
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
        # [articles seen, articles answered by the first stage], for reports.
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
        from xinwen.inference.topic.first_stage import FirstStage
        from xinwen.inference.topic.lexical import LexicalExpert

        dev = pick_device(device)
        model, tokenizer = load_classifier_model(path, dev, quantize=quantize, trust_remote_code=trust_remote_code)
        stage = FirstStage.load(path) if first_stage else None
        expert = LexicalExpert.load(path) if lexical else None
        return cls(model, tokenizer, ClassifierSettings.load(path), dev, first_stage=stage, lexical=expert)

    def probabilities(self, articles: Sequence[ArticleText], batch_size: int = 32) -> torch.Tensor:
        """Calibrated class probabilities, one row per article (chunks averaged). ``batch_size``
        inputs of full length run together; shorter ones are packed up to 8x as many under the
        same token budget."""
        return self.route(articles, lambda part: self.model_probabilities(part, batch_size))

    def route(self, articles: Sequence[ArticleText],
              model_probabilities: Callable[[Sequence[ArticleText]], torch.Tensor]) -> torch.Tensor:
        """Probabilities from the first stage where it is sure, from ``model_probabilities`` (times
        the lexical expert, when the folder has one) elsewhere."""
        if self.lexical is not None:
            encoder_probabilities = model_probabilities

            def model_probabilities(part):
                return self._times_lexical(part, encoder_probabilities)

        if self.first_stage is None or not articles:
            return model_probabilities(articles)
        probs, accepted = self.first_stage.answer(articles, self.labels, self.settings.threshold)
        rest = (~accepted).nonzero().squeeze(1).tolist()
        if rest:
            probs[rest] = model_probabilities([articles[i] for i in rest])
        self.first_stage_counts[0] += len(articles)
        self.first_stage_counts[1] += len(articles) - len(rest)
        return probs

    def _times_lexical(self, articles: Sequence[ArticleText],
                       encoder_probabilities: Callable[[Sequence[ArticleText]], torch.Tensor]) -> torch.Tensor:
        """The encoder's probabilities times the lexical expert's (inference/topic/lexical.py)."""
        encoder = encoder_probabilities(articles)
        lexical = self.lexical.probabilities(articles, self.labels)
        final = self.lexical.combine(encoder, lexical)
        # The int8-checked backend rechecks encoder rows whose own answer is close; an answer the
        # expert made close is invisible to it, so those articles go through fp32 here.
        fp32_pass = getattr(self.model, "fp32_pass", None)
        if fp32_pass is not None:
            rows = fragile_rows(final, self.model.margin, self.settings.threshold).nonzero().squeeze(1).tolist()
            if rows:
                encoder, final = encoder.clone(), final.clone()  # inference tensors are read-only here
                with fp32_pass():
                    encoder[rows] = encoder_probabilities([articles[i] for i in rows])
                final[rows] = self.lexical.combine(encoder[rows], lexical[rows])
        return final

    def calibrated_from_raw(self, raw: torch.Tensor, articles: Sequence[ArticleText],
                            batch_size: int = 32) -> torch.Tensor:
        """``model_probabilities`` at the saved temperature, from ``raw`` ones computed at T = 1 for
        the same ``articles`` (training and eval compute those once for both uses)."""
        if self.settings.text.long_text == "chunks" and self.settings.temperature != 1.0:
            # Averaged over chunks, softmax(z / T) is not softmax(log(mean softmax(z)) / T).
            return self.model_probabilities(articles, batch_size)
        return torch.softmax(raw.clamp_min(1e-9).log() / self.settings.temperature, -1)

    @torch.inference_mode()
    def model_probabilities(self, articles: Sequence[ArticleText], batch_size: int = 32,
                            max_batch_tokens: int | None = None) -> torch.Tensor:
        """The encoder's own calibrated probabilities, one row per article: softmax(logits / T),
        chunks averaged (no first stage, no lexical expert). Inputs run in length-sorted batches of
        at most ``max_batch_tokens`` padded tokens (default ``batch_size * text.max_length``)."""
        inputs = encode_for_classifier(self.tokenizer, articles, self.settings.text)
        budget = max_batch_tokens or batch_size * self.settings.text.max_length
        sums = torch.zeros((len(articles), len(self.labels)), dtype=torch.float32)
        counts = torch.zeros(len(articles), dtype=torch.float32)
        pad_id = self.tokenizer.pad_token_id or 0
        for batch_ids in length_batches([len(ids) for _, ids in inputs], batch_size, budget):
            part = [inputs[k] for k in batch_ids]
            batch = {k: v.to(self.device) for k, v in pad_batch([ids for _, ids in part], pad_id).items()}
            logits = self.model(**batch).logits.float().cpu()
            probs = torch.softmax(logits / self.settings.temperature, dim=-1)
            index = torch.tensor([article for article, _ in part])
            sums.index_add_(0, index, probs)
            counts.index_add_(0, index, torch.ones(len(part)))
        return sums / counts.clamp(min=1).unsqueeze(1)

    def predict(self, articles: Article | Sequence[Article], top_k: int | None = None,
                threshold: float | None = None, batch_size: int = 32) -> Prediction | list[Prediction]:
        """One article in, one ``Prediction`` out; a list in, a list out (``[]`` for ``[]``).

        Below ``threshold`` (default: the one saved with the model) the answer is the fallback
        label (``other``)."""
        single = isinstance(articles, (str, dict)) or not isinstance(articles, Sequence)
        items = [articles] if single else list(articles)
        prepared = [as_article(a, None if single else i) for i, a in enumerate(items)]
        if not prepared:
            return []
        probs = self.probabilities(prepared, batch_size=batch_size)
        results = [self._to_prediction(row, top_k, threshold) for row in probs]
        return results[0] if single else results

    def _to_prediction(self, row: torch.Tensor, top_k: int | None, threshold: float | None) -> Prediction:
        limit = self.settings.threshold if threshold is None else threshold
        ranked = sorted(zip(self.labels, row.tolist()), key=lambda kv: -kv[1])
        label, score = ranked[0]
        fallback = self.settings.fallback_label
        if score < limit and fallback in self.labels:
            label, score = fallback, dict(ranked)[fallback]
        shown = ranked[:top_k] if top_k else ranked
        return Prediction(label=label, score=float(score), scores={k: float(v) for k, v in shown})
