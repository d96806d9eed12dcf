"""xinwen export and the scoring backends; the `xinwen score` / `xinwen export` commands."""
from __future__ import annotations

import json

import pytest
import torch
from scoring_helpers import articles, jsonl_lines, read_jsonl, single_thread  # noqa: F401  (autouse fixture)

from xinwen.inference.topic.backends import PROBES, ExportError, export_classifier, load_classifier
from xinwen.inference.text import as_article
from xinwen.training.cli import main as xinwen


@pytest.fixture()
def labelled(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text("\n".join(jsonl_lines(articles(12))) + "\n", encoding="utf-8")
    return path


def _no_pickles(folder) -> bool:
    return not [p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]


def test_int8_export_is_safetensors_measured_and_picked_up_by_score(tmp_path, tiny_classifier_dir, labelled):
    out = tmp_path / "int8"
    report = export_classifier(tiny_classifier_dir, out, int8=True, eval_data=labelled)
    assert (out / "model.safetensors").is_file() and _no_pickles(out)
    assert json.loads((out / "xinwen_runtime.json").read_text())["backend"] == "int8"
    saved = json.loads((out / "export_report.json").read_text())
    assert saved["backend"] == "int8" and saved["eval"]["articles"] == 12
    assert 0.0 <= report.eval["label_agreement"] <= 1.0 and "macro_f1_export" in report.eval
    assert report.probe_max_prob_diff < 0.2

    clf = load_classifier(out)  # backend "auto" reads xinwen_runtime.json
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in clf.model.modules())
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
                   for m in load_classifier(out, backend="torch").model.modules())

    rc = xinwen(["score", "--classifier", str(out), "--input", str(labelled), "--output", str(tmp_path / "s.jsonl"),
                 "--keep", "label", "--no-progress", "--threads", "1"])
    assert rc == 0 and len(read_jsonl(tmp_path / "s.jsonl")) == 12


def test_export_and_backend_errors_say_what_to_do(tmp_path, tiny_classifier_dir):
    with pytest.raises(FileNotFoundError, match=r"model.onnx does not exist.*xinwen export .* --onnx"):
        load_classifier(tiny_classifier_dir, backend="onnx")
    with pytest.raises(ValueError, match="backend: expected one of"):
        load_classifier(tiny_classifier_dir, backend="tensorrt")
    with pytest.raises(ExportError, match="nothing to do"):
        export_classifier(tiny_classifier_dir, tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f.txt").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_classifier(tiny_classifier_dir, tmp_path / "full", int8=True)


def test_score_command_reports_bad_arguments_and_inputs(tmp_path, tiny_classifier_dir, caplog):
    base = ["score", "--classifier", str(tiny_classifier_dir), "--no-progress"]
    assert xinwen(base + ["--input", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "does not exist" in caplog.text
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(jsonl_lines(articles(2))) + "\n", encoding="utf-8")
    assert xinwen(base + ["--input", str(source), "--output", str(tmp_path / "o.txt")]) == 2
    assert "unsupported extension '.txt'" in caplog.text
    assert xinwen(base + ["--input", str(source), "--output", str(tmp_path / "o.jsonl"), "--resume",
                          "--overwrite"]) == 2
    assert "pick one" in caplog.text


@pytest.mark.slow
def test_onnx_export_matches_torch(tmp_path, tiny_classifier_dir, labelled):
    out = tmp_path / "onnx"
    report = export_classifier(tiny_classifier_dir, out, onnx=True, eval_data=labelled)
    assert (out / "model.onnx").is_file() and _no_pickles(out) and not (out / "model.safetensors").exists()
    assert report.probe_max_prob_diff < 1e-4 and report.eval["label_agreement"] == 1.0
    onnx, torch_clf = load_classifier(out), load_classifier(tiny_classifier_dir)
    items = [as_article(r) for r in articles(5)]
    assert (onnx.probabilities(items) - torch_clf.probabilities(items)).abs().max() < 1e-4


def test_int8_checked_recomputes_exactly_the_unsure_rows_in_fp32(tiny_classifier_dir):
    from xinwen.inference.topic.classifier import encode_for_classifier, pad_batch

    articles = [as_article(p) for p in PROBES] * 2
    fp32 = load_classifier(tiny_classifier_dir, backend="torch").probabilities(articles)
    int8 = load_classifier(tiny_classifier_dir, backend="int8").probabilities(articles)
    checked = load_classifier(tiny_classifier_dir, backend="int8-checked")
    assert not torch.allclose(int8, fp32, atol=1e-6)  # quantization does change the numbers here

    checked.model.margin = 1.0  # every row is "unsure": all fp32
    torch.testing.assert_close(checked.probabilities(articles), fp32, atol=1e-5, rtol=0)
    assert checked.model.rechecked == checked.model.rows >= len(articles)

    checked.model.margin, checked.model.rows, checked.model.rechecked = 0.0, 0, 0  # never unsure: all int8
    torch.testing.assert_close(checked.probabilities(articles), int8, atol=1e-6, rtol=0)
    assert checked.model.rechecked == 0 and checked.model.rows >= len(articles)

    # One padded batch, the gap threshold at the median: half the rows go back to fp32.
    ids = [x for _, x in encode_for_classifier(checked.tokenizer, articles, checked.settings.text)]
    batch = pad_batch(ids, checked.tokenizer.pad_token_id or 0)
    with torch.inference_mode():
        ref = checked.model.fp32(**batch).logits
        quant = checked.model.int8(**batch).logits
        top = torch.softmax(quant / checked.settings.temperature, -1).topk(2, dim=-1).values
        gap = top[:, 0] - top[:, 1]
        checked.model.margin, checked.model.rows, checked.model.rechecked = float(gap.median()), 0, 0
        mixed = checked.model(**batch).logits
    unsure = gap < checked.model.margin
    assert 0 < checked.model.rechecked == int(unsure.sum()) < len(ids)
    torch.testing.assert_close(mixed[unsure], ref[unsure], atol=1e-4, rtol=0)
    torch.testing.assert_close(mixed[~unsure], quant[~unsure], atol=1e-6, rtol=0)


def test_score_with_int8_checked_reports_its_fp32_rechecks(tmp_path, tiny_classifier_dir, labelled, capsys, caplog):
    rc = xinwen(["score", "--classifier", str(tiny_classifier_dir), "--backend", "int8-checked", "--input",
                 str(labelled), "--output", str(tmp_path / "s.jsonl"), "--no-progress", "--threads", "1"])
    assert rc == 0 and len(read_jsonl(tmp_path / "s.jsonl")) == 12
    said = capsys.readouterr().out + caplog.text
    assert "int8-checked:" in said and "recomputed in fp32" in said
