"""`xinwen train` for the headline task: fine-tune a seq2seq model, save a generator folder.

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
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from xinwen.inference.headline.copy_model import load_seq2seq_model
from xinwen.inference.headline.generator import HeadlineGenerator, HeadlineSettings, generation_settings
from xinwen.inference.headline.text import encoder_text, lead_headline
from xinwen.inference.metrics.char_rouge import char_rouge
from xinwen.training.config.sections import HeadlineConfig
from xinwen.training.config.loading import save_yaml
from xinwen.training.headline.encoder_cache import EncoderCache, pad_sources
from xinwen.training.data.headline import load_headline_splits, median_title_chars
from xinwen.training.headline.model import freeze_for_speed, load_seq2seq, truncate_encoder
from xinwen.training.loop import frozen_modules_eval, length_bucketed_batches, make_accelerator, train_loop

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


def encode_targets(tokenizer, targets: list[str], max_length: int, start_id: int) -> list[list[int]]:
    """Label ids per target, ending with the end token. A leading start token is dropped when it
    is also the decoder start (BERT-style tokenizers add ``<s>``): it would be predicted twice."""
    ids = tokenizer(text_target=targets, max_length=max_length, truncation=True, verbose=False)["input_ids"]
    return [seq[1:] if seq and seq[0] == start_id else seq for seq in ids]


class PairBatches:
    """Shuffled batches of similar source length, deterministic in (seed, epoch) so a resumed
    run replays the same batches. Sources are token ids or cached encoder states."""

    def __init__(self, sources: list, labels: list[list[int]], batch_size: int, seed: int,
                 pad_id: int, start_id: int, source_ids: list[list[int]] | None = None):
        # source_ids: the token ids behind cached states (a copy head scatters onto them).
        self.sources, self.labels, self.source_ids = sources, labels, source_ids
        self.batch_size, self.seed, self.pad_id, self.start_id = batch_size, seed, pad_id, start_id

    def batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 1000 + epoch)
        order = list(range(len(self.labels)))
        rng.shuffle(order)
        lengths = [len(src) for src in self.sources]
        return length_bucketed_batches(order, lengths, self.batch_size, self.batch_size * 16, rng)

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

    def loader(self, epoch: int) -> DataLoader:
        return DataLoader(self.batches(epoch), batch_size=None, collate_fn=self.collate)


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def train_headline(cfg: HeadlineConfig) -> dict:
    t0, cpu0 = time.time(), _cpu_seconds()
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, out / "config.yaml")
    train_pairs, dev_pairs, _ = load_headline_splits(cfg.data)
    if cfg.train.max_train_items and len(train_pairs) > cfg.train.max_train_items:
        train_pairs = random.Random(cfg.train.seed).sample(train_pairs, cfg.train.max_train_items)
    dev_eval = dev_pairs[: cfg.train.max_eval_items or None]
    prefix = cfg.text.prefix

    corpus = [encoder_text(p["source"], prefix) for p in train_pairs] + [p["target"] for p in train_pairs]
    set_seed(cfg.train.seed)  # before new cross-attention and copy head are built: same seed, same start
    model, tokenizer, warm = load_seq2seq(cfg.model, corpus)
    if warm and cfg.model.encoder_layers:
        truncate_encoder(model, cfg.model.encoder_layers)
    if cfg.model.attention_dropout is not None:
        _set_attention_dropout(model, cfg.model.attention_dropout)
    freeze_for_speed(model, cfg.model.freeze_encoder_layers, cfg.model.freeze_embeddings)
    model.generation_config = generation_config(cfg, model.config)
    start_id = model.generation_config.decoder_start_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    settings = HeadlineSettings(max_source_length=cfg.text.max_source_length, prefix=prefix,
                                lead_chars=median_title_chars(train_pairs))
    generator = HeadlineGenerator(model, tokenizer, settings, torch.device("cpu"))

    accelerator = make_accelerator(cfg.train)
    model.to(accelerator.device)
    generator.device = accelerator.device
    train_ids = generator.encode([p["source"] for p in train_pairs])
    dev_ids = generator.encode([p["source"] for p in dev_eval])
    labels = encode_targets(tokenizer, [p["target"] for p in train_pairs], cfg.text.max_target_length, start_id)

    cache = EncoderCache.build(model, cfg.model) if cfg.model.cache_frozen_encoder else None
    if cache is not None:
        train_sources = cache.precompute(train_ids, pad_id, cfg.train.eval_batch_size, "train")
        dev_sources = cache.precompute(dev_ids, pad_id, cfg.train.eval_batch_size, "dev")
    else:
        train_sources, dev_sources = train_ids, dev_ids
    batches = PairBatches(train_sources, labels, cfg.train.batch_size, cfg.train.seed, pad_id, start_id,
                          source_ids=train_ids)

    new = [p for n, p in model.named_parameters() if p.requires_grad and any(k in n for k in NEW_PARAMETER_NAMES)]
    old = [p for n, p in model.named_parameters() if p.requires_grad and not any(k in n for k in NEW_PARAMETER_NAMES)]
    groups = [g for g in ({"params": old, "lr": cfg.train.lr}, {"params": new, "lr": cfg.train.head_lr}) if g["params"]]
    smoothing = cfg.train.label_smoothing
    references = [p["target"] for p in dev_eval]

    def compute_loss(m, batch):
        labels_ = batch.pop("labels")
        if "encoder_hidden" in batch:
            batch["encoder_outputs"] = cache.encode(m, batch.pop("encoder_hidden"), batch["attention_mask"],
                                                    batch.pop("source_ids", None))
        logits = m(**batch).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels_.reshape(-1),
                               ignore_index=-100, label_smoothing=smoothing)

    def evaluate(m) -> dict:
        m.eval()
        with torch.inference_mode():
            ids = _generate_dev(m, generator, cache, dev_sources, pad_id, cfg, dev_ids)
        preds = [generator.decode(seq, p["source"]) for seq, p in zip(ids, dev_eval)]
        scores = char_rouge(preds, references)
        m.train()
        frozen_modules_eval(m)
        return {"score": scores["rougeL"], "rouge1": scores["rouge1"], "rouge2": scores["rouge2"],
                "rougeL": scores["rougeL"]}

    model.train()
    frozen_modules_eval(model)
    state = train_loop(cfg.train, accelerator, model, groups, batches.loader, compute_loss, evaluate,
                       steps_per_epoch=len(batches.batches(0)))
    train_seconds, train_cpu = time.time() - t0, _cpu_seconds() - cpu0

    # Final model = best epoch's weights, saved apart from the resumable checkpoints.
    best = load_seq2seq_model(out / "checkpoints" / "best").eval()
    best.generation_config = model.generation_config
    best.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    settings.save(out)
    lead = char_rouge([lead_headline(p["source"], settings.lead_chars) for p in dev_eval], references)
    weights = out / "model.safetensors"
    metrics = {
        "dev_subset": {"items": len(dev_eval), "num_beams": cfg.generation.dev_num_beams,
                       "model": state.history[state.best_epoch - 1] if state.best_epoch > 0 else None,
                       "lead": {k: lead[k] for k in ("rouge1", "rouge2", "rougeL")},
                       "tokenization": lead["tokenization"]},
        "best_epoch": state.best_epoch, "history": state.history,
        "train_pairs": len(train_pairs), "dev_pairs": len(dev_pairs), "lead_chars": settings.lead_chars,
        "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu, 1),
        "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in best.parameters()),
        "weights_mb": round(weights.stat().st_size / 2**20, 1) if weights.is_file() else None,
        "vocab_size": len(tokenizer),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    logger.info("saved %s: best epoch %d, dev ROUGE-L %.2f (lead %.2f; greedy, %d pairs), %.0f s wall, %.0f s CPU",
                out, state.best_epoch, state.best_score, lead["rougeL"], len(dev_eval), train_seconds, train_cpu)
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
