"""`xinwen eval` for topic models: the model beside a char n-gram TF-IDF + LR baseline."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from xinwen.inference.topic.classifier import NewsClassifier, override_text_settings
from xinwen.inference.topic.ngram_model import NgramModel
from xinwen.inference.text import as_article, classifier_text
from xinwen.training.topic.metrics import classification_report, expected_calibration_error, plot_confusion
from xinwen.training.config.sections import TopicConfig, load_config
from xinwen.training.config.loading import ConfigError
from xinwen.training.data.files import DataError, check_saved_data, load_labelled
from xinwen.training.topic.lexical_fit import fit_tfidf
from xinwen.training.data.fewshot import fewshot_data
from xinwen.training.data.topic import dev_spec, load_records, load_topic_splits

logger = logging.getLogger(__name__)


def tfidf_baseline(train: list[dict], labels: list[str], fitted: NgramModel | None = None):
    """Character 1-3-gram TF-IDF + balanced logistic regression (the classical reference).

    ``fitted``: the same model already fitted on ``train``, to save fitting it twice."""
    model = fitted or fit_tfidf(train, labels)
    order = [model.labels.index(label) for label in labels]

    def predict(recs: list[dict]) -> list[str]:
        probs = model.probabilities([classifier_text(as_article(r, i)) for i, r in enumerate(recs)])[:, order]
        return [labels[i] for i in probs.argmax(1)]

    return predict


def _same_ngram_model(a: NgramModel | None, b: NgramModel) -> bool:
    return (a is not None and a.labels == b.labels and a.vocabulary == b.vocabulary
            and np.array_equal(a.weights, b.weights) and np.array_equal(a.bias, b.bias))


def spec_records(spec: str, split: str, cfg: TopicConfig, labelled: bool = True) -> list[dict]:
    """Records of ``spec``: ``builtin:NAME[@SPLIT]`` (``split`` when none is named) or a data file,
    read with the config's columns (and its labels when ``labelled``)."""
    if spec.startswith("builtin:"):
        name, _, chosen = spec.partition("@")
        return load_records(name, chosen or split, cfg)
    d = cfg.data
    if not labelled:
        return load_labelled(spec, d.title_column, d.body_column, None, d.id_column, None)
    return load_labelled(spec, d.title_column, d.body_column, d.label_column, d.id_column, d.labels)


def _eval_records(cfg: TopicConfig, data: str | None) -> tuple[str, list[dict]]:
    if data is None:
        spec = dev_spec(cfg)
        if spec is None:
            raise DataError("this folder was trained without a dev split (recipe: fewshot); "
                            "pass the labelled articles to evaluate on: xinwen eval DIR --data FILE")
        return f"dev ({spec})", spec_records(spec, "dev", cfg)
    return data, spec_records(data, "dev", cfg)


def training_records(cfg: TopicConfig) -> list[dict]:
    """The records a folder's model learnt from: the baseline trains on the same ones."""
    if cfg.recipe == "fewshot":
        data = fewshot_data(cfg)
        return data.examples + data.descriptions if data.examples else []  # zero-shot: nothing to fit TF-IDF on
    return load_topic_splits(cfg)[0]


def render_markdown(results: dict) -> str:
    labels = results["labels"]
    systems = results["systems"]
    head = "| | " + " | ".join(systems) + " |\n|---|" + "---|" * len(systems) + "\n"
    rows = ["| accuracy | " + " | ".join(f"{systems[s]['accuracy']:.3f}" for s in systems) + " |",
            "| **macro-F1** | " + " | ".join(f"**{systems[s]['macro_f1']:.3f}**" for s in systems) + " |"]
    for lab in labels:
        rows.append(f"| F1 {lab} (n={systems[next(iter(systems))]['per_class'][lab]['support']}) | " +
                    " | ".join(f"{systems[s]['per_class'][lab]['f1']:.3f}" for s in systems) + " |")
    cal = results.get("calibration")
    tail = ""
    if cal:
        tail = (f"\nCalibration (temperature {cal['temperature']:.2f}): ECE {cal['ece_uncalibrated']:.3f} "
                f"uncalibrated -> {cal['ece_calibrated']:.3f} calibrated.\n")
    text = results.get("text")
    reading = f", reading {text['long_text']} windows of {text['max_length']} tokens" if text else ""
    weight = results.get("lexical_weight") or 0.0
    parts = ("" if not weight else
             f"xinwen = the encoder's probabilities times the character n-gram expert's to the power {weight:g} "
             "(inference/topic/lexical.py); encoder_alone = the encoder without it.\n\n")
    return (f"Evaluation on {results['data']} ({results['n']} articles{reading})\n\n" + parts + head
            + "\n".join(rows) + "\n" + tail)


def evaluate_topic_folder(model_dir: str, data: str | None = None, output: str | None = None,
                          baseline: bool = True, dev_probabilities: torch.Tensor | None = None,
                          long_text: str | None = None, max_length: int | None = None,
                          fitted_baseline: NgramModel | None = None) -> dict:
    """Report on ``data`` (default: the config's dev split). ``dev_probabilities`` (the encoder's,
    uncalibrated, from training) skips recomputing its dev predictions right after training.
    ``long_text`` / ``max_length`` override how much of each article the model reads (the saved
    settings otherwise), to measure that trade-off on one's own data before scoring with it.
    With a lexical expert in the folder the report also shows the encoder alone.
    ``fitted_baseline``: the TF-IDF baseline already fitted on the folder's training records
    (training passes its expert's n-gram model when it has the baseline's settings); when it is
    the folder's saved expert, the expert's probabilities give the baseline column directly."""
    # Just over 60 lines, most of them the docstring: one pass, top to bottom, from folder to report.
    folder = Path(model_dir)
    cfg_path = folder / "config.yaml"
    cfg = load_config(cfg_path) if cfg_path.is_file() else TopicConfig()
    if data is None:
        check_saved_data(folder, {"data.dev": cfg.data.dev},
                         "run from the directory the model was trained in, or pass --data FILE")
    # The folder is checked (by loading it) before anything is created in it: a mistyped or
    # wrong folder must not be left holding an empty eval/.
    clf = NewsClassifier.from_pretrained(folder, first_stage=False)  # the model itself is evaluated
    name, records = _eval_records(cfg, data)
    out = Path(output) if output else folder / "eval"
    out.mkdir(parents=True, exist_ok=True)
    labels = list(cfg.data.labels)
    gold = [r["label"] for r in records]

    try:
        override_text_settings(clf, long_text, max_length)
    except ValueError as err:
        raise ConfigError([str(err)], "xinwen eval") from None
    if long_text is not None or max_length is not None:
        dev_probabilities = None  # computed with the saved settings
    labels = clf.labels if set(clf.labels) == set(labels) else labels
    articles = [as_article(r, i) for i, r in enumerate(records)]
    reuse = dev_probabilities if data is None and dev_probabilities is not None and \
        len(dev_probabilities) == len(records) else None
    parts = clf.probabilities(articles, return_parts=True, reuse=reuse)  # what NewsClassifier.predict reads
    gold_idx = np.array([clf.labels.index(g) for g in gold])

    def report(probs: torch.Tensor) -> dict:
        return classification_report(gold, [clf.labels[i] for i in probs.argmax(1).tolist()], labels)

    systems = {"xinwen": report(parts.final)}
    if clf.lexical is None:
        uncalibrated, final_t = parts.encoder_uncalibrated, clf.settings.temperature
    else:
        uncalibrated, final_t = torch.softmax(parts.product_logits, -1), clf.lexical.settings.temperature
        systems["encoder_alone"] = report(parts.encoder)
    results = {"data": name, "n": len(records), "labels": labels, "systems": systems,
               "text": {"long_text": clf.settings.text.long_text, "max_length": clf.settings.text.max_length},
               "lexical_weight": clf.lexical.settings.weight if clf.lexical else 0.0,
               "calibration": {"temperature": final_t,
                               "ece_uncalibrated": expected_calibration_error(uncalibrated.numpy(), gold_idx),
                               "ece_calibrated": expected_calibration_error(parts.final.numpy(), gold_idx)}}
    if baseline:
        if parts.ngram is not None and _same_ngram_model(fitted_baseline, clf.lexical.ngrams):
            # Right after training with the baseline's settings the saved expert is that very fit:
            # its probabilities on these records are already computed.
            predicted = [clf.labels[i] for i in parts.ngram.argmax(1).tolist()]
        else:
            predicted = _baseline_answers(cfg, labels, fitted_baseline, records)
        if predicted is not None:
            systems["tfidf_char_lr"] = classification_report(gold, predicted, labels)
    write_report(results, out)
    return results


def _baseline_answers(cfg: TopicConfig, labels: list[str], fitted: NgramModel | None,
                      records: list[dict]) -> list[str] | None:
    """TF-IDF + LR trained on the folder's own training records; None for a zero-shot folder."""
    train = training_records(cfg)
    if not train:
        logger.info("no TF-IDF baseline: the model was trained from label descriptions alone")
        return None
    return tfidf_baseline(train, labels, fitted)(records)


def write_report(results: dict, out: Path) -> None:
    """report.json, report.md and one confusion plot per system into ``out``; the table to stdout."""
    systems = results["systems"]
    for stale in out.glob("confusion_*.png"):  # e.g. encoder_alone after retraining without the expert
        if stale.stem.removeprefix("confusion_") not in systems:
            stale.unlink()
    for sys_name, rep in systems.items():
        plot_confusion(rep, f"{sys_name} on {results['data']}", out / f"confusion_{sys_name}.png")
    (out / "report.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    text = render_markdown(results)
    (out / "report.md").write_text(text, encoding="utf-8")
    print(text)  # the report is the command's output
    logger.info("report written to %s", out)
