"""`xinwen eval DIR` for headline models: character-level ROUGE beside the lead baseline.

The report (printed, and written to ``OUTPUT/report.md`` + ``OUTPUT/metrics.json``) gives
ROUGE-1/2/L F1 x100 on characters for the lead baseline (first sentence of the body, clipped to
the median training-title length) and for the model, the paired difference in ROUGE-L with a
bootstrap 95% interval, the editor's checks (faithful numbers and names, echo, unbalanced marks,
dangling endings; ``inference/headline/quality.py``) for model, lead and references, and a few
examples. Evaluation pairs are cleaned exactly like training
pairs and near-duplicates of the model's training items are removed first.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from xinwen.inference.headline.generator import HeadlineGenerator
from xinwen.inference.headline.quality import QUALITY_RATES, check_headline, quality_rates, rates_of
from xinwen.inference.headline.text import lead_headline
from xinwen.training.config.loading import ConfigError, build_dataclass, load_yaml
from xinwen.training.data.files import DataError
from xinwen.training.data.headline import BUILTIN_TRAIN, DuplicateIndex, build_pairs, filters_from, load_headline_splits, read_records

logger = logging.getLogger(__name__)


def load_char_rouge():
    """The project's character-level ROUGE through ``evaluate``, loaded by file path (offline)."""
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    import evaluate

    from xinwen.inference.metrics import char_rouge

    return evaluate.load(char_rouge.__file__)


def _saved_config(model_dir: Path):
    from xinwen.training.config.sections import HeadlineConfig

    path = model_dir / "config.yaml"
    if not path.is_file():
        return None
    problems: list[str] = []
    cfg = build_dataclass(HeadlineConfig, load_yaml(path), problems)
    if problems:
        raise ConfigError(problems, str(path))
    return cfg


def evaluation_pairs(model_dir: Path, data: str | None, max_items: int = 0) -> tuple[list[dict], str]:
    """Cleaned pairs of ``data`` (default: the model's dev split) that do not near-duplicate
    anything the model was trained on. Returns ``(pairs, name)``."""
    cfg = _saved_config(model_dir)
    if cfg is None:
        if data is None:
            raise DataError(f"{model_dir}: no config.yaml (not written by `xinwen train`); pass --data FILE")
        from xinwen.training.config.sections import HeadlineDataSection

        logger.warning("%s has no config.yaml: its training data is unknown, so evaluation pairs are "
                       "not checked for overlap with it", model_dir)
        pairs = build_pairs(read_records(data, HeadlineDataSection()), filters_from(HeadlineDataSection()), data)
        return pairs[: max_items or None], data
    dev_spec = cfg.data.dev or (f"{BUILTIN_TRAIN}:dev" if cfg.data.train == BUILTIN_TRAIN else None)
    try:
        train, dev, _ = load_headline_splits(cfg.data)
    except (DataError, FileNotFoundError) as err:
        raise DataError(f"cannot rebuild the training data of {model_dir} to keep it out of the evaluation "
                        f"set ({err}); restore the files named in {model_dir / 'config.yaml'}") from err
    if data is None or data == dev_spec:
        pairs, name = dev, dev_spec  # already cleaned and deduplicated against train
    else:
        seen = DuplicateIndex()
        for pair in train + dev:  # dev chose the checkpoint: keep it out too
            seen.add(pair)
        pairs, name = build_pairs(read_records(data, cfg.data), filters_from(cfg.data), data, seen), data
    if not pairs:
        raise DataError(f"{name}: no evaluation pairs left after cleaning and removing overlap with training")
    return pairs[: max_items or None], name


def paired_bootstrap(deltas: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = deltas[rng.integers(0, len(deltas), size=(n, len(deltas)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _row(name: str, scores: dict) -> str:
    return f"| {name} | {scores['rouge1']:.2f} | {scores['rouge2']:.2f} | {scores['rougeL']:.2f} |"


def _quality_row(name: str, rates: dict) -> str:
    return f"| {name} | " + " | ".join(f"{100 * rates[k]:.1f}" for k in QUALITY_RATES) + " |"


def _clip(text: str, n: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[:n] + "…"


def evaluate_headline_folder(model_dir, data: str | None = None, output: str | None = None,
                             batch_size: int = 16, max_items: int = 0, examples: int = 6,
                             device: str | None = None, **generation_overrides) -> dict:
    """Score a headline model folder and the lead baseline; write and print the report."""
    model_dir = Path(model_dir)
    out = Path(output) if output else model_dir / "eval"
    pairs, name = evaluation_pairs(model_dir, data, max_items)
    gen = HeadlineGenerator.from_pretrained(model_dir, device=device)
    limit = generation_overrides.get("max_chars", gen.settings.max_chars)
    # The lead gets the model's length limit too, or the comparison favours the longer one.
    lead_chars = min(gen.settings.lead_chars, limit) if limit else gen.settings.lead_chars
    references = [p["target"] for p in pairs]
    bodies = [p["source"] for p in pairs]
    leads = [lead_headline(p["source"], lead_chars) for p in pairs]
    t0 = time.time()
    predictions = gen.generate([{"body": p["source"]} for p in pairs], batch_size=batch_size,
                               **generation_overrides)
    seconds = time.time() - t0

    rouge = load_char_rouge()
    lead_scores = rouge.compute(predictions=leads, references=references)
    model_scores = rouge.compute(predictions=predictions, references=references)
    per_lead = np.array(rouge.compute(predictions=leads, references=references, use_aggregator=False)["rougeL"])
    per_model = np.array(rouge.compute(predictions=predictions, references=references, use_aggregator=False)["rougeL"])
    low, high = paired_bootstrap(per_model - per_lead)
    tokenization = model_scores["tokenization"]
    generation = {k: v for k, v in gen.model.generation_config.to_dict().items()
                  if k in ("num_beams", "length_penalty", "no_repeat_ngram_size", "min_new_tokens", "max_new_tokens")}
    generation.update(generation_overrides)
    for key in ("max_chars", "rerank", "block_echo", "lead_fallback"):  # xinwen's own decoding settings
        generation.setdefault(key, getattr(gen.settings, key))
    model_checks = [check_headline(m, b) for m, b in zip(predictions, bodies)]

    metrics = {
        "data": name, "items": len(pairs), "tokenization": tokenization,
        "lead": {k: lead_scores[k] for k in ("rouge1", "rouge2", "rougeL")}, "lead_chars": lead_chars,
        "model": {k: model_scores[k] for k in ("rouge1", "rouge2", "rougeL")},
        "rougeL_delta": float((per_model - per_lead).mean()), "rougeL_delta_95ci": [low, high],
        "quality": {"reference": quality_rates(references, bodies), "lead": quality_rates(leads, bodies),
                    "model": rates_of(model_checks)},
        "generation": generation, "generation_seconds": round(seconds, 1),
        "articles_per_second": round(len(pairs) / max(seconds, 1e-9), 2),
    }
    _write_report(out, model_dir, pairs, (references, leads, predictions, model_checks),
                  (lead_scores, model_scores), metrics, examples)
    return metrics


def _write_report(out: Path, model_dir: Path, pairs: list[dict], texts: tuple, scores: tuple, metrics: dict,
                  examples: int) -> None:
    """report.md (printed too), metrics.json and predictions.jsonl under ``out``."""
    references, leads, predictions, model_checks = texts
    lead_scores, model_scores = scores
    name, tokenization, generation = metrics["data"], metrics["tokenization"], metrics["generation"]
    lead_chars, (low, high) = metrics["lead_chars"], metrics["rougeL_delta_95ci"]
    lines = [
        f"# Headline evaluation: {model_dir}",
        "",
        f"Data: `{name}`, {len(pairs)} pairs (cleaned like training data; near-duplicates of training items removed).",
        f"Scores: ROUGE F1 x100, {tokenization}.",
        f"Generation: {generation}; {metrics['articles_per_second']} articles/s.",
        "",
        "| system | ROUGE-1 | ROUGE-2 | ROUGE-L |",
        "|---|---|---|---|",
        _row(f"lead baseline (first sentence, {lead_chars} chars)", lead_scores),
        _row("model", model_scores),
        "",
        f"Model - lead, ROUGE-L: {metrics['rougeL_delta']:+.2f} (paired bootstrap 95% CI "
        f"{low:+.2f} .. {high:+.2f})",
        "",
        "Editor's checks, % of headlines (faithful: every number with its unit and every quoted or",
        "Latin-script span is in the body as written; echo: a span repeated back to back; unbalanced",
        "quote or bracket; cut off: ends mid-phrase):",
        "",
        "| headlines | " + " | ".join(QUALITY_RATES) + " |",
        "|---|" + "---:|" * len(QUALITY_RATES),
        *[_quality_row(who, metrics["quality"][who]) for who in ("reference", "lead", "model")],
        "",
        "## Examples",
        "",
    ]
    step = max(1, len(pairs) // max(1, examples))
    for i in list(range(0, len(pairs), step))[:examples]:
        lines += [f"- body: {_clip(pairs[i]['source'], 70)}", f"  - reference: {references[i]}",
                  f"  - lead: {leads[i]}", f"  - model: {predictions[i]}"]
    report = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report, encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "predictions.jsonl").write_text("".join(
        json.dumps({"id": p["id"], "source": p["source"], "reference": r, "lead": lead, "model": m,
                    "model_problems": c.problems()}, ensure_ascii=False) + "\n"
        for p, r, lead, m, c in zip(pairs, references, leads, predictions, model_checks)), encoding="utf-8")
    print(report)  # the CLI report is the one place that prints
    logger.info("wrote %s", out / "report.md")
