"""Classifier backends (torch fp32, torch dynamic int8, ONNX Runtime fp32/int8) and ``xinwen export``.

Every backend is wrapped in the same ``NewsClassifier``, so text preparation, calibration and the
``other`` threshold are shared and only the forward pass differs. Exports contain safetensors or
ONNX files, never pickles. ``xinwen export`` records the backend it made in
``xinwen_runtime.json``; ``backend="auto"`` reads it back.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from xinwen.inference.encoders.loading import check_classifier_folder, check_model_source, quantize_int8
from xinwen.inference.settings import BACKENDS, SETTINGS_FILE, ClassifierSettings
from xinwen.inference.text import as_article
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.inference.topic.first_stage import FirstStage
from xinwen.inference.topic.lexical import LEXICAL_JSON, LEXICAL_TENSORS, LexicalExpert
# The runtimes live apart so the classifier can know them without importing this module; they
# are re-exported here, where they were defined before.
from xinwen.inference.topic.runtimes import CheckedInt8Model, OnnxClassifierModel, fragile_rows  # noqa: F401

logger = logging.getLogger(__name__)

RUNTIME_FILE = "xinwen_runtime.json"
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
REPORT_FILE = "export_report.json"
# Fixed probe articles: every export is checked against the fp32 model on these.
PROBES = [
    {"title": "海关总署发布前三季度进出口数据", "body": "前三季度我国货物贸易进出口总值同比增长，其中出口增长较快。"},
    {"title": "高铁新线开通运营", "body": "新建铁路今天开通运营，沿线城市间列车运行时间大幅缩短，客流持续增长。"},
    {"title": "", "body": "某化工厂发生爆炸事故，消防救援人员赶赴现场处置，事故原因正在调查。"},
    {"title": "市政府出台产业扶持政策", "body": "为推动制造业高质量发展，市里发布产业园区招商和企业扶持政策措施。"},
    {"title": "", "body": "周末天气晴好，市民纷纷走出家门到公园游玩。"},
]


class ExportError(ValueError):
    pass


def recorded_backend(path: str | Path) -> str | None:
    runtime = Path(path, RUNTIME_FILE)
    return json.loads(runtime.read_text())["backend"] if runtime.is_file() else None


def load_classifier(path: str | Path, backend: str = "auto", device: str | None = None,
                    first_stage: bool = True) -> NewsClassifier:
    """A ``NewsClassifier`` for ``path`` running on ``backend`` (``auto``: the exported one, else torch).

    A first stage fitted into the folder (``xinwen first-stage``) is used unless ``first_stage=False``."""
    path = Path(check_model_source(path, what="classifier path"))
    chosen = (recorded_backend(path) or "torch") if backend == "auto" else backend
    if chosen not in BACKENDS:
        raise ValueError(f"backend: expected one of {('auto',) + BACKENDS}, got {backend!r}")
    if chosen != "torch" and device not in (None, "cpu"):  # every other backend is a CPU runtime
        raise ValueError(f"backend {chosen!r} runs on the CPU; got device={device!r}. "
                         "fix: use --backend torch on a GPU")
    if chosen == "torch":
        return NewsClassifier.from_pretrained(path, device=device, first_stage=first_stage)
    if chosen == "int8":
        return NewsClassifier.from_pretrained(path, device="cpu", quantize="int8", first_stage=first_stage)
    if chosen == "int8-checked":
        clf = NewsClassifier.from_pretrained(path, device="cpu", first_stage=first_stage)
        clf.model = CheckedInt8Model(clf.model, quantize_int8(clf.model), clf.settings.temperature,
                                     threshold=clf.settings.threshold)
        return clf
    onnx_file = path / ONNX_FILES[chosen]
    if not onnx_file.is_file():
        flags = "--onnx --int8" if chosen == "onnx-int8" else "--onnx"
        raise FileNotFoundError(f"backend {chosen!r}: {onnx_file} does not exist. "
                                f"fix: `xinwen export {path} {flags} --output OUT`, then pass OUT")
    from transformers import AutoConfig, AutoTokenizer

    model = OnnxClassifierModel(onnx_file, AutoConfig.from_pretrained(path))
    return NewsClassifier(model, AutoTokenizer.from_pretrained(path), ClassifierSettings.load(path),
                          torch.device("cpu"), first_stage=FirstStage.load(path) if first_stage else None,
                          lexical=LexicalExpert.load(path))


# -- export --------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    source: str
    output: str
    backend: str
    seconds: float = 0.0
    # On the fixed probe articles: largest |p_export - p_fp32| and labels that changed.
    probe_max_prob_diff: float = 0.0
    probe_label_changes: int = 0
    # With --eval-data: label agreement with fp32 and macro-F1 of both against the gold labels.
    eval: dict[str, Any] = field(default_factory=dict)


class _LogitsOnly(torch.nn.Module):
    # ONNX wants plain tensors in and out, not a ModelOutput.
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _export_onnx(model: torch.nn.Module, file: Path) -> None:
    ids = torch.randint(5, 100, (2, 16))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    torch.onnx.export(_LogitsOnly(model).eval(), (ids, torch.ones_like(ids)), str(file),
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
                      dynamo=True, external_data=False, verbose=False)


def _check_export_request(source: Path, output: Path, eval_data, eval_limit: int | None) -> None:
    """Everything the export needs, checked before any work: a trained classifier to read, a new
    folder to write (a file in the way is the user's, never replaced), readable evaluation data."""
    check_classifier_folder(source, what="export DIR")
    if output.resolve() == source.resolve():
        raise ExportError(f"export: --output {output} is the source folder; choose a new folder")
    if output.exists() and not output.is_dir():
        raise ExportError(f"export: --output {output} is a file, expected a new folder (the file is left as it "
                          "is); choose a folder name")
    if output.exists() and any(output.iterdir()):
        raise ExportError(f"export: --output {output} exists and is not empty; choose a new folder or delete it")
    if eval_data is not None and not Path(eval_data).is_file():
        raise ExportError(f"export: --eval-data {eval_data} does not exist; give a labelled JSONL, CSV or "
                          "Parquet file")
    if eval_limit is not None and eval_limit < 1:
        raise ExportError(f"export: --eval-limit: expected an integer >= 1 (records to use), got {eval_limit}; "
                          "omit it to use every record")


def export_classifier(source: str | Path, output: str | Path, int8: bool = False, onnx: bool = False,
                      eval_data: str | Path | None = None, label_column: str = "label",
                      eval_limit: int | None = None) -> ExportReport:
    """Write a faster copy of a classifier folder and measure what it costs in quality."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from xinwen.inference.encoders.pooling import MeanPooledClassifier, uses_mean_pooling

    started = time.perf_counter()
    source, output = Path(check_model_source(source, what="export DIR")), Path(output)
    if not (int8 or onnx):
        raise ExportError("export: nothing to do; pass --int8, --onnx or both")
    _check_export_request(source, output, eval_data, eval_limit)
    backend = ("onnx-int8" if int8 else "onnx") if onnx else "int8"
    output.mkdir(parents=True, exist_ok=True)

    model = AutoModelForSequenceClassification.from_pretrained(source).eval()
    AutoTokenizer.from_pretrained(source).save_pretrained(output)
    # The lexical expert is part of the decision rule: an export without it would answer differently.
    for name in (SETTINGS_FILE, LEXICAL_JSON, LEXICAL_TENSORS):
        if (source / name).is_file():
            shutil.copy2(source / name, output / name)
    if backend == "int8":
        # Dynamic int8 quantizes weights at load time in under a second, and torch's packed int8
        # weights can only be stored by pickling; so the export keeps fp32 safetensors and records
        # the backend, and loading applies the quantization.
        model.save_pretrained(output)
    else:
        model.config.save_pretrained(output)
        fp32_file = output / ONNX_FILES["onnx"]
        # A head fitted on mean-pooled states: the graph must pool as the torch path does.
        _export_onnx(MeanPooledClassifier(model) if uses_mean_pooling(model) else model, fp32_file)
        if backend == "onnx-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32_file), str(output / ONNX_FILES["onnx-int8"]), weight_type=QuantType.QInt8)
            fp32_file.unlink()
    (output / RUNTIME_FILE).write_text(json.dumps({"backend": backend, "source": str(source)}, indent=2) + "\n")

    report = ExportReport(str(source), str(output), backend)
    reference = NewsClassifier.from_pretrained(source, device="cpu", first_stage=False)
    exported = load_classifier(output, backend=backend, first_stage=False)
    articles = [as_article(p) for p in PROBES]
    p_ref, p_new = reference.probabilities(articles), exported.probabilities(articles)
    report.probe_max_prob_diff = float((p_ref - p_new).abs().max())
    report.probe_label_changes = int((p_ref.argmax(1) != p_new.argmax(1)).sum())
    if backend == "onnx" and report.probe_max_prob_diff > 1e-3:
        raise ExportError(f"export: the ONNX model disagrees with torch on the probe articles "
                          f"(max probability difference {report.probe_max_prob_diff:.2g}, expected < 1e-3)")
    if eval_data is not None:
        report.eval = compare_on_data(reference, exported, eval_data, label_column, eval_limit)
    report.seconds = round(time.perf_counter() - started, 1)
    (output / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n")
    return report


def compare_on_data(reference: NewsClassifier, candidate: NewsClassifier, data: str | Path,
                    label_column: str = "label", limit: int | None = None) -> dict[str, Any]:
    """Label agreement and macro-F1 (fp32 vs candidate) on a labelled JSONL/CSV/Parquet file."""
    from sklearn.metrics import f1_score

    from xinwen.inference.records.readers import Fields, InputRecord, RecordReader

    reader = RecordReader(data, Fields(id=None, keep=(label_column,)))
    records: list[InputRecord] = []
    for raw in reader:
        parsed = reader.parse(raw)
        if isinstance(parsed, InputRecord):
            records.append(parsed)
        if limit and len(records) >= limit:
            break
    if not records:
        raise ExportError(f"--eval-data {data}: no usable records")
    gold = [str(r.passthrough[label_column]) for r in records]
    articles = [r.article for r in records]
    timings, labels = {}, {}
    for name, clf in (("fp32", reference), ("export", candidate)):
        t0 = time.perf_counter()
        probs = clf.probabilities(articles)
        timings[name] = time.perf_counter() - t0
        labels[name] = [clf.labels[i] for i in probs.argmax(1).tolist()]
    known = sorted(set(reference.labels))
    return {
        "data": str(data), "articles": len(records),
        "label_agreement": sum(a == b for a, b in zip(labels["fp32"], labels["export"])) / len(records),
        "macro_f1_fp32": float(f1_score(gold, labels["fp32"], labels=known, average="macro", zero_division=0)),
        "macro_f1_export": float(f1_score(gold, labels["export"], labels=known, average="macro", zero_division=0)),
        "articles_per_s_fp32": len(records) / timings["fp32"],
        "articles_per_s_export": len(records) / timings["export"],
    }
