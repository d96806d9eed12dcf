"""`xinwen train` for the headline task: fine-tune a seq2seq model, save a generator folder.

setup -> train -> finalize: ``HeadlineSetup.build`` supplies the model, batches, loss and dev
evaluation to the shared loop (training/loop.py), which trains; ``finalize_headline`` saves the
best epoch's weights with the tokenizer, generation settings, metrics and a model card.

Output folder (``train.output_dir``): ``save_pretrained`` weights (safetensors), tokenizer,
``generation_config.json``, ``xinwen.json`` (how text reaches the model), the resolved
``config.yaml`` and ``metrics.json``; resumable state under ``checkpoints/`` only.
"""
from __future__ import annotations

import json
import logging
import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from xinwen.inference.encoders.loading import check_model_source
from xinwen.inference.headline.copy_model import load_seq2seq_model
from xinwen.inference.headline.generator import HeadlineGenerator, HeadlineSettings, generation_settings
from xinwen.inference.headline.text import encoder_text, lead_headline
from xinwen.inference.metrics.char_rouge import char_rouge
from xinwen.training.config.sections import HeadlineConfig
from xinwen.training.encoder_cache import EncoderCache, pad_sources
from xinwen.training.data.headline import load_headline_splits, median_title_chars
from xinwen.training.headline.model import (freeze_for_speed, keep_decoder_input_dropout, load_seq2seq,
                                             truncate_encoder)
from xinwen.training.loop import LengthBucketSampler, Task, TrainingRun, run_training
from xinwen.training.model_card import write_model_card
from xinwen.training.run_folder import RunFolder, data_fingerprint

logger = logging.getLogger(__name__)

NEW_PARAMETER_NAMES = ("crossattention", "cls.predictions", "enc_to_dec_proj", "copy_head")


def generation_config(cfg: HeadlineConfig, model_config):
    from transformers import GenerationConfig

    g = cfg.generation
    start = model_config.decoder_start_token_id
    return GenerationConfig(
        num_beams=g.num_beams, length_penalty=g.length_penalty, no_repeat_ngram_size=g.no_repeat_ngram_size,
        min_new_tokens=g.min_new_tokens, max_new_tokens=g.max_new_tokens, repetition_penalty=g.repetition_penalty,
        early_stopping=True, do_sample=False,
        decoder_start_token_id=start, bos_token_id=model_config.bos_token_id,
        eos_token_id=model_config.eos_token_id, pad_token_id=model_config.pad_token_id,
    )


def headline_settings(cfg: HeadlineConfig, lead_chars: int) -> HeadlineSettings:
    """What xinwen.json records beside the weights: how text reaches the model and the
    generation choices transformers' GenerationConfig has no field for."""
    g = cfg.generation
    return HeadlineSettings(max_source_length=cfg.text.max_source_length, prefix=cfg.text.prefix,
                            lead_chars=lead_chars, max_chars=g.max_chars, rerank=g.rerank,
                            block_echo=g.block_echo, lead_fallback=g.lead_fallback)


def encode_targets(tokenizer, targets: list[str], max_length: int, start_id: int) -> list[list[int]]:
    """Label ids per target, ending with the end token. A leading start token is dropped when it
    is also the decoder start (BERT-style tokenizers add ``<s>``): it would be predicted twice."""
    ids = tokenizer(text_target=targets, max_length=max_length, truncation=True, verbose=False)["input_ids"]
    return [seq[1:] if seq and seq[0] == start_id else seq for seq in ids]


@dataclass
class HeadlineData:
    """The pairs of one run, read once; setup and finalize both use them."""

    train_pairs: list[dict]  # after train.max_train_items
    dev_pairs: list[dict]
    dev_eval: list[dict]  # the dev pairs scored each epoch (train.max_eval_items)

    @property
    def references(self) -> list[str]:
        return [p["target"] for p in self.dev_eval]


def load_headline_data(cfg: HeadlineConfig) -> tuple[HeadlineData, str]:
    """The run's pairs and the fingerprint of the records they come from."""
    train_pairs, dev_pairs, _ = load_headline_splits(cfg.data)
    fingerprint = data_fingerprint(train_pairs, dev_pairs)
    if cfg.train.max_train_items and len(train_pairs) > cfg.train.max_train_items:
        train_pairs = random.Random(cfg.train.seed).sample(train_pairs, cfg.train.max_train_items)
    return HeadlineData(train_pairs, dev_pairs, dev_pairs[: cfg.train.max_eval_items or None]), fingerprint


def train_headline(cfg: HeadlineConfig, overwrite: bool = False) -> dict:
    """Train ``cfg`` into ``cfg.train.output_dir`` and return its metrics: refuse a folder holding
    another run (unless ``overwrite``), resume this run's newest checkpoint, or return at once when
    it is finished."""
    t0, cpu0 = time.time(), _cpu_seconds()
    check_model_source(cfg.model.name_or_path)  # a wrong path fails before the folder is claimed
    data, fingerprint = load_headline_data(cfg)
    folder = RunFolder.claim(cfg, fingerprint, overwrite)
    if folder.finished:
        logger.info("%s already holds this run, finished; nothing to train (--overwrite retrains it)", folder.path)
        return json.loads((folder.path / "metrics.json").read_text())
    setup = HeadlineSetup(cfg, data)
    run = run_training(cfg.train, setup.build, run_name="headline")
    if not run.accelerator.is_main_process:  # one writer: the main process finalizes, the others are done
        return {}
    files_before = folder.listing()
    metrics = finalize_headline(cfg, data, setup, run, time.time() - t0, _cpu_seconds() - cpu0)
    folder.finish(cfg.train.keep_checkpoints, files_before)
    return metrics


class HeadlineSetup:
    """Builds the headline task for the loop; keeps the tokenizer and text settings for finalize."""

    def __init__(self, cfg: HeadlineConfig, data: HeadlineData):
        self.cfg, self.data = cfg, data

    def build(self, accelerator, resuming: bool) -> Task:
        """Model, batches, loss and evaluation; called by the loop after it seeded."""
        cfg, data = self.cfg, self.data
        model = self._load_model()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.generator = HeadlineGenerator(model, self.tokenizer, self.settings, torch.device("cpu"))
        model.to(accelerator.device)
        self.generator.device = accelerator.device
        train_ids = self.generator.encode([p["source"] for p in data.train_pairs])
        self.dev_ids = self.generator.encode([p["source"] for p in data.dev_eval])
        start_id = model.generation_config.decoder_start_token_id
        labels = encode_targets(self.tokenizer, [p["target"] for p in data.train_pairs],
                                cfg.text.max_target_length, start_id)
        self.cache = EncoderCache.build(model, cfg.model) if cfg.model.cache_frozen_encoder else None
        train_sources, self.dev_sources = train_ids, self.dev_ids
        if self.cache is not None:
            train_sources = self.cache.precompute(train_ids, self.pad_id, cfg.train.eval_batch_size, "train")
            self.dev_sources = self.cache.precompute(self.dev_ids, self.pad_id, cfg.train.eval_batch_size, "dev")
        pairs = PairCollator(train_sources, labels, self.pad_id, start_id, source_ids=train_ids)
        sampler = LengthBucketSampler([len(src) for src in train_sources], cfg.train.batch_size,
                                      cfg.train.batch_size * 16, cfg.train.seed)
        return Task(model, _parameter_groups(model, cfg), sampler, pairs.collate, self.compute_loss,
                    self.evaluate)

    def _load_model(self):
        """The seq2seq model (warm-started or a checkpoint), frozen where configured."""
        cfg, pairs = self.cfg, self.data.train_pairs
        corpus = [encoder_text(p["source"], cfg.text.prefix) for p in pairs] + [p["target"] for p in pairs]
        model, self.tokenizer, warm = load_seq2seq(cfg.model, corpus)
        if warm and cfg.model.encoder_layers:
            truncate_encoder(model, cfg.model.encoder_layers)
        if cfg.model.attention_dropout is not None:
            _set_attention_dropout(model, cfg.model.attention_dropout)
        freeze_for_speed(model, cfg.model.freeze_encoder_layers, cfg.model.freeze_embeddings)
        if cfg.model.decoder_input_dropout is not None:
            keep_decoder_input_dropout(model, cfg.model.decoder_input_dropout)
        model.generation_config = generation_config(cfg, model.config)
        self.settings = headline_settings(cfg, median_title_chars(pairs))
        return model

    def compute_loss(self, m, batch: dict) -> torch.Tensor:
        labels = batch.pop("labels")
        if "encoder_hidden" in batch:
            batch["encoder_outputs"] = self.cache.encode(m, batch.pop("encoder_hidden"), batch["attention_mask"],
                                                         batch.pop("source_ids", None))
        logits = m(**batch).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=-100, label_smoothing=self.cfg.train.label_smoothing)

    def evaluate(self, m) -> dict:
        """Character ROUGE of the dev subset's headlines (beam train.dev_num_beams)."""
        with torch.inference_mode():
            ids = _generate_dev(m, self.generator, self.cache, self.dev_sources, self.pad_id, self.cfg, self.dev_ids)
        preds = [self.generator.decode(seq, p["source"]) for seq, p in zip(ids, self.data.dev_eval)]
        scores = char_rouge(preds, self.data.references)
        return {"score": scores["rougeL"], "rouge1": scores["rouge1"], "rouge2": scores["rouge2"],
                "rougeL": scores["rougeL"]}


class PairCollator:
    """Pads a batch of (source, headline) items. Sources are token ids or cached encoder states."""

    def __init__(self, sources: list, labels: list[list[int]], pad_id: int, start_id: int,
                 source_ids: list[list[int]] | None = None):
        # source_ids: the token ids behind cached states (a copy head scatters onto them).
        self.sources, self.labels, self.source_ids = sources, labels, source_ids
        self.pad_id, self.start_id = pad_id, start_id

    def collate(self, idx: list[int]) -> dict[str, torch.Tensor]:
        batch = pad_sources([self.sources[i] for i in idx], self.pad_id)
        if "encoder_hidden" in batch and self.source_ids is not None:
            batch["source_ids"] = pad_sources([self.source_ids[i] for i in idx], self.pad_id)["input_ids"]
        width = max(len(self.labels[i]) for i in idx)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        dec_in = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
        for row, i in enumerate(idx):
            seq = torch.tensor(self.labels[i], dtype=torch.long)
            labels[row, : len(seq)] = seq
            dec_in[row, 0] = self.start_id
            dec_in[row, 1 : len(seq)] = seq[:-1]
        batch["labels"] = labels
        batch["decoder_input_ids"] = dec_in
        batch["decoder_attention_mask"] = (labels != -100).long()
        return batch


def _parameter_groups(model, cfg: HeadlineConfig) -> list[dict]:
    """Pretrained weights at train.lr, the new cross-attention and heads at train.head_lr."""
    def is_new(name: str) -> bool:
        return any(k in name for k in NEW_PARAMETER_NAMES)

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = ({"params": [p for n, p in trainable if not is_new(n)], "lr": cfg.train.lr},
              {"params": [p for n, p in trainable if is_new(n)], "lr": cfg.train.head_lr})
    return [g for g in groups if g["params"]]


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def finalize_headline(cfg: HeadlineConfig, data: HeadlineData, setup: HeadlineSetup, run: TrainingRun,
                      train_seconds: float, train_cpu: float) -> dict:
    """Save the best epoch's weights (apart from the resumable checkpoints) with the tokenizer,
    generation and text settings, metrics.json (dev subset beside the lead baseline) and a card."""
    out = Path(cfg.train.output_dir)
    best = load_seq2seq_model(run.best_dir).eval()
    best.generation_config = run.task.model.generation_config
    best.save_pretrained(out, safe_serialization=True)
    setup.tokenizer.save_pretrained(out)
    setup.settings.save(out)
    lead = char_rouge([lead_headline(p["source"], setup.settings.lead_chars) for p in data.dev_eval],
                      data.references)
    weights = out / "model.safetensors"
    state = run.state
    metrics = {
        "dev_subset": {"items": len(data.dev_eval), "num_beams": cfg.generation.dev_num_beams,
                       "model": state.history[state.best_epoch - 1] if state.best_epoch > 0 else None,
                       "lead": {k: lead[k] for k in ("rouge1", "rouge2", "rougeL")},
                       "tokenization": lead["tokenization"]},
        "best_epoch": state.best_epoch, "history": state.history, "training_log": state.training_log,
        "train_pairs": len(data.train_pairs), "dev_pairs": len(data.dev_pairs),
        "lead_chars": setup.settings.lead_chars,
        "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu, 1),
        "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in best.parameters()),
        "weights_mb": round(weights.stat().st_size / 2**20, 1) if weights.is_file() else None,
        "vocab_size": len(setup.tokenizer),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    write_model_card(out, "headline", cfg, metrics)
    logger.info("saved %s: best epoch %d, dev ROUGE-L %.2f (lead %.2f; greedy, %d pairs), %.0f s wall, %.0f s CPU",
                out, state.best_epoch, state.best_score, lead["rougeL"], len(data.dev_eval), train_seconds, train_cpu)
    return metrics


def _generate_dev(m, generator: HeadlineGenerator, cache, sources: list, pad_id: int, cfg,
                  source_ids: list[list[int]]) -> list[list[int]]:
    """Dev generation with the per-epoch beam width, from cached encoder states when there are."""
    beams = cfg.generation.dev_num_beams
    if cache is None:
        generator.model = m
        return generator.generate_ids(sources, batch_size=cfg.train.eval_batch_size, num_beams=beams)
    config = generation_settings(m.generation_config, {"num_beams": beams})
    order = sorted(range(len(sources)), key=lambda k: len(sources[k]))
    results: list[list[int]] = [[] for _ in sources]
    device = next(m.parameters()).device
    for s in range(0, len(order), cfg.train.eval_batch_size):
        chunk = order[s : s + cfg.train.eval_batch_size]
        batch = pad_sources([sources[k] for k in chunk], pad_id)
        mask = batch["attention_mask"].to(device)
        ids = pad_sources([source_ids[k] for k in chunk], pad_id)["input_ids"].to(device)
        enc = cache.encode(m, batch["encoder_hidden"].to(device), mask, ids)
        out = m.generate(encoder_outputs=enc, attention_mask=mask, generation_config=config)
        for row, k in enumerate(chunk):
            results[k] = out[row].tolist()
    return results


def _set_attention_dropout(model, p: float) -> None:
    for cfg in (model.config, getattr(model.config, "encoder", None), getattr(model.config, "decoder", None)):
        if cfg is None:
            continue
        for name in ("attention_probs_dropout_prob", "attention_dropout"):
            if hasattr(cfg, name):
                setattr(cfg, name, p)
    for module in model.modules():
        # BERT-style attention modules keep their rate in an nn.Dropout they pass to SDPA.
        dropout = getattr(module, "dropout", None)
        if type(module).__name__.endswith("Attention") and isinstance(dropout, torch.nn.Dropout):
            dropout.p = p
