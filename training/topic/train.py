"""`xinwen train` for the topic task: fine-tune an encoder, calibrate, save a pipeline-ready folder."""
from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from xinwen.inference.topic.classifier import NewsClassifier, encode_for_classifier, pad_batch
from xinwen.inference.topic.first_stage import remove_first_stage
from xinwen.inference.topic.lexical import remove_lexical
from xinwen.inference.encoders.loading import check_model_source
from xinwen.inference.settings import ClassifierSettings, TextSettings
from xinwen.inference.text import as_article, classifier_text
from xinwen.training.topic.metrics import classification_report, expected_calibration_error, fit_temperature
from xinwen.training.config.sections import TopicConfig
from xinwen.training.config.loading import save_yaml
from xinwen.training.topic.head_init import linear_probe_init
from xinwen.training.topic.lexical_fit import fit_lexical_expert, same_fit_as_baseline
from xinwen.training.loop import latest_checkpoint, length_bucketed_batches, make_accelerator, train_loop
from xinwen.training.data.topic import load_topic_splits
from xinwen.training.vocab_pruning import prune_vocabulary

logger = logging.getLogger(__name__)


def _freeze(model, n_layers: int, embeddings: bool) -> None:
    base = model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if embeddings and hasattr(base, "embeddings"):
        base.embeddings.requires_grad_(False)
    if n_layers:
        if layers is None:
            logger.warning("model.freeze_layers ignored: %s has no encoder.layer list", type(base).__name__)
            return
        for layer in layers[:n_layers]:
            layer.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("trainable parameters: %.1fM of %.1fM", trainable / 1e6,
                sum(p.numel() for p in model.parameters()) / 1e6)


def _class_weights(labels: list[int], n: int, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n).astype(np.float64) + 1.0
    w = (1.0 / np.sqrt(counts)) if mode == "sqrt_inverse" else (1.0 / counts)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


class EpochBatches:
    """All topic items (and all ``always`` items) + a fresh sample of the fallback class each
    epoch, in length buckets.

    Deterministic in (seed, epoch) so a resumed run replays exactly the same batches."""

    def __init__(self, encoded: list[list[int]], labels: list[int], fallback: int, per_epoch: int,
                 batch_size: int, seed: int, pad_id: int, always: list[bool] | None = None):
        self.encoded, self.labels, self.fallback = encoded, labels, fallback
        self.always = always or [False] * len(labels)
        self.per_epoch, self.batch_size, self.seed, self.pad_id = per_epoch, batch_size, seed, pad_id

    def indices(self, epoch: int) -> list[int]:
        rng = random.Random(self.seed * 1000 + epoch)
        rest = [i for i, y in enumerate(self.labels) if y != self.fallback or self.always[i]]
        pool = [i for i, y in enumerate(self.labels) if y == self.fallback and not self.always[i]]
        if self.per_epoch and len(pool) > self.per_epoch:
            pool = rng.sample(pool, self.per_epoch)
        chosen = rest + pool
        rng.shuffle(chosen)
        return chosen

    def batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 1000 + epoch + 1)
        chosen = self.indices(epoch)
        lengths = [len(ids) for ids in self.encoded]
        return length_bucketed_batches(chosen, lengths, self.batch_size, self.batch_size * 32, rng)

    def loader(self, epoch: int) -> DataLoader:
        def collate(idx):
            batch = pad_batch([self.encoded[i] for i in idx], self.pad_id)
            batch["labels"] = torch.tensor([self.labels[i] for i in idx])
            return batch

        # A batch_sampler (not batch_size=None) so accelerate can shard it across processes and
        # skip already-trained batches on resume.
        # Its own generator: creating a DataLoader iterator draws a seed, and drawing it from the
        # global RNG would shift the dropout masks of a resumed run.
        return DataLoader(range(len(self.labels)), batch_sampler=self.batches(epoch), collate_fn=collate,
                          generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))


def train_topic(cfg: TopicConfig) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    t0 = time.time()
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, out / "config.yaml")
    train_recs, dev_recs = load_topic_splits(cfg)
    labels = list(cfg.data.labels)
    label2id = {lab: i for i, lab in enumerate(labels)}

    set_seed(cfg.train.seed)  # before the new head is initialised: same seed, same start
    source = check_model_source(cfg.model.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code)
    extra_kwargs = {}
    if cfg.model.attention_dropout is not None:
        extra_kwargs["attention_probs_dropout_prob"] = cfg.model.attention_dropout
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
        trust_remote_code=cfg.model.trust_remote_code, **extra_kwargs,
    )
    train_articles = [as_article(r, i) for i, r in enumerate(train_recs)]
    if cfg.model.prune_vocab:
        texts = [classifier_text(a, cfg.text.prefix) for a in train_articles]
        model, tokenizer = prune_vocabulary(model, tokenizer, texts)
    tokenizer.model_max_length = cfg.text.max_length
    _freeze(model, cfg.model.freeze_layers, cfg.model.freeze_embeddings)

    # Training reads one window per article; "chunks" applies at prediction time.
    train_text = TextSettings(**{**cfg.text.__dict__, "long_text": "head" if cfg.text.long_text == "head" else "head_tail"})
    encoded = [ids for _, ids in encode_for_classifier(tokenizer, train_articles, train_text)]
    y = [label2id[r["label"]] for r in train_recs]
    fallback = label2id[cfg.data.fallback_label]
    always = [str(r.get("id", "")).startswith("extra-") for r in train_recs]
    batches = EpochBatches(encoded, y, fallback, cfg.data.fallback_per_epoch, cfg.train.batch_size,
                           cfg.train.seed, tokenizer.pad_token_id or 0, always)
    expected = Counter(y[i] for i in batches.indices(0))
    weights = _class_weights([k for k, c in expected.items() for _ in range(c)], len(labels), cfg.train.class_weighting)
    adjust = cfg.train.prior_correction * _prior_shift(y, always, expected, weights, len(labels))
    logger.info("logit adjustment for the corpus prior: %s",
                {lab: round(float(a), 2) for lab, a in zip(labels, adjust)})
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.train.label_smoothing)

    head_names = ("classifier", "pooler", "score")
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(head_names) and ".pooler." not in n]
    head = [p for n, p in model.named_parameters() if p.requires_grad and (n.startswith(head_names) or ".pooler." in n)]
    groups = [{"params": body, "lr": cfg.train.lr}, {"params": head, "lr": cfg.train.head_lr}]

    settings = ClassifierSettings(text=cfg.text, fallback_label=cfg.data.fallback_label, threshold=cfg.threshold)
    gold_dev = [r["label"] for r in dev_recs]

    dev_articles = [as_article(r, i) for i, r in enumerate(dev_recs)]
    dev_probs_by_epoch: dict[int, torch.Tensor] = {}

    def evaluate(m) -> dict:
        m.eval()
        clf = NewsClassifier(m, tokenizer, settings, next(m.parameters()).device)
        probs = clf.probabilities(dev_articles, batch_size=cfg.train.eval_batch_size)  # T = 1 here
        probs = torch.softmax(probs.clamp_min(1e-9).log() + adjust, dim=-1)  # the saved decision rule
        dev_probs_by_epoch[len(dev_probs_by_epoch)] = probs
        rep = classification_report(gold_dev, [labels[i] for i in probs.argmax(-1).tolist()], labels)
        m.train()
        _set_frozen_eval(m, cfg.model.freeze_layers)
        return {"score": rep["macro_f1"], "macro_f1": rep["macro_f1"], "accuracy": rep["accuracy"]}

    def compute_loss(m, batch):
        target = batch.pop("labels")
        return loss_fn(m(**batch).logits.float(), target)

    accelerator = make_accelerator(cfg.train)
    resuming = cfg.train.resume and latest_checkpoint(out / "checkpoints") is not None
    if cfg.train.head_init == "linear_probe" and not resuming:  # a resumed run loads its trained head
        model.to(accelerator.device)  # the probe's forward pass on the GPU when there is one
        linear_probe_init(model, encoded, y, batches.indices(0), weights, tokenizer.pad_token_id or 0,
                          batch_size=cfg.train.eval_batch_size)
    if loss_fn.weight is not None:
        loss_fn.to(accelerator.device)
    model.train()
    _set_frozen_eval(model, cfg.model.freeze_layers)
    state = train_loop(cfg.train, accelerator, model, groups, batches.loader, compute_loss, evaluate,
                       steps_per_epoch=len(batches.batches(0)))

    # Final model = best epoch's weights, calibrated on dev, saved apart from checkpoints.
    best = AutoModelForSequenceClassification.from_pretrained(out / "checkpoints" / "best").eval()
    with torch.no_grad():
        _output_layer(best).bias += adjust
    clf = NewsClassifier(best, tokenizer, settings, torch.device("cpu"))
    # Reuse the best epoch's dev probabilities when this process computed them (no resume past it).
    epochs_seen_here = state.epoch - len(dev_probs_by_epoch)
    cached = dev_probs_by_epoch.get(state.best_epoch - 1 - epochs_seen_here)
    probs = cached if cached is not None else clf.probabilities(dev_articles, batch_size=cfg.train.eval_batch_size)
    logits = probs.clamp_min(1e-9).log()
    gold_idx = torch.tensor([label2id[g] for g in gold_dev])
    temperature = fit_temperature(logits, gold_idx)
    ece_before = expected_calibration_error(torch.softmax(logits, -1).numpy(), gold_idx.numpy())
    ece_after = expected_calibration_error(torch.softmax(logits / temperature, -1).numpy(), gold_idx.numpy())
    settings.temperature = temperature
    pred = [labels[i] for i in logits.argmax(-1).tolist()]
    encoder_report = classification_report(gold_dev, pred, labels)

    best.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    settings.save(out)
    remove_first_stage(out)  # one distilled from an earlier model in this folder no longer applies
    remove_lexical(out)
    dev_report, lexical = encoder_report, None
    if cfg.lexical.weight > 0:
        encoder_dev = clf.calibrated_from_raw(probs, dev_articles, cfg.train.eval_batch_size)
        lexical, fused = fit_lexical_expert(cfg.lexical, train_recs, labels, dev_articles, encoder_dev, gold_dev)
        dev_report = classification_report(gold_dev, [labels[i] for i in fused.argmax(-1).tolist()], labels)
        lexical.save(out)
    metrics = {
        "dev": dev_report, "dev_encoder_alone": encoder_report, "best_epoch": state.best_epoch,
        "history": state.history, "lexical": lexical.settings.report if lexical else None,
        "temperature": temperature, "dev_ece_before_calibration": ece_before,
        "dev_ece_after_calibration": ece_after, "train_records": len(train_recs),
        "train_seconds": round(time.time() - t0, 1), "vocab_size": best.config.vocab_size,
        "parameters": sum(p.numel() for p in best.parameters()),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    metrics["_dev_probabilities"] = probs  # for the report that follows; not written to JSON
    if lexical is not None and same_fit_as_baseline(cfg.lexical):
        metrics["_baseline"] = lexical.ngrams  # the eval's TF-IDF baseline is this same fit
    logger.info("saved %s: dev macro-F1 %.4f (encoder alone %.4f), accuracy %.4f, T=%.2f, ECE %.3f -> %.3f "
                "(%.0fs)", out, dev_report["macro_f1"], encoder_report["macro_f1"], dev_report["accuracy"],
                temperature, ece_before, ece_after, time.time() - t0)
    return metrics


def _prior_shift(y: list[int], always: list[bool], per_epoch: Counter, weights: torch.Tensor | None,
                 n: int) -> torch.Tensor:
    """log(corpus prior) - log(effective training prior), per class.

    The corpus prior counts the annotated corpus only (the project-written articles are
    deliberately balanced); the training prior is what one epoch shows the loss: sampled counts
    times class weights."""
    corpus = np.bincount([c for c, a in zip(y, always) if not a], minlength=n).astype(np.float64) + 1.0
    seen = np.array([per_epoch.get(k, 0) for k in range(n)], dtype=np.float64) + 1.0
    if weights is not None:
        seen *= weights.numpy()
    return torch.tensor(np.log(corpus / corpus.sum()) - np.log(seen / seen.sum()), dtype=torch.float32)


def _output_layer(model) -> torch.nn.Linear:
    """The final linear layer of a sequence-classification model (holds the class biases)."""
    for name in ("classifier", "score"):
        layer = getattr(model, name, None)
        layer = getattr(layer, "out_proj", layer)
        if isinstance(layer, torch.nn.Linear) and layer.bias is not None:
            return layer
    raise ValueError(f"{type(model).__name__}: no classifier layer with a bias; set train.prior_correction=0")


def _set_frozen_eval(model, n_layers: int) -> None:
    """Frozen layers run without dropout: they are feature extractors, not being trained."""
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if layers is not None:
        for layer in layers[:n_layers]:
            layer.eval()
    if hasattr(model.base_model, "embeddings") and not any(
        p.requires_grad for p in model.base_model.embeddings.parameters()
    ):
        model.base_model.embeddings.eval()
