"""The distilled first stage: accept-level choice, routing, files, fitting, and its use in `score`."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from scoring_helpers import articles, jsonl_lines, read_jsonl, single_thread  # noqa: F401  (autouse fixture)
from tiny_models import TOPIC_LABELS

from xinwen.inference import NewsAnalyzer, NewsClassifier
from xinwen.inference.topic.first_stage import STAGE_JSON, STAGE_TENSORS, FirstStage, FirstStageSettings
from xinwen.inference.text import as_article, classifier_text
from xinwen.training.cli import main as xinwen
from xinwen.inference.topic.ngram_model import NgramModel
from xinwen.training.topic.first_stage_fit import FirstStageOptions, choose_accept_level, fit_first_stage
from xinwen.training.topic.softmax_regression import softmax_weights


def test_accept_level_stops_where_agreement_would_fall_below_the_target():
    top = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.60, 0.55, 0.50])
    agree = np.array([1, 1, 1, 1, 1, 0, 1, 0], dtype=bool)
    # 5 of 5 agree down to 0.95; adding 0.60 makes 5/6 < 0.9
    assert choose_accept_level(top, agree, agreement=0.9, min_accepted=3) == pytest.approx(0.95)
    # everything agrees: every article is accepted
    assert choose_accept_level(top, np.ones(8, bool), agreement=0.99, min_accepted=3) == pytest.approx(0.50)
    # the most confident answers are already wrong: the stage stays off
    assert choose_accept_level(top, ~agree, agreement=0.9, min_accepted=3) > 1
    # too few held-out articles to show anything
    assert choose_accept_level(top[:2], agree[:2], agreement=0.9, min_accepted=3) > 1


def test_accept_level_does_not_let_a_tie_pull_in_a_disagreeing_article():
    top = np.array([0.99, 0.98, 0.90, 0.90])
    agree = np.array([1, 1, 1, 0], dtype=bool)
    level = choose_accept_level(top, agree, agreement=0.9, min_accepted=2)
    assert agree[top >= level].mean() >= 0.9 and (top >= level).sum() == 2


@pytest.mark.parametrize("present", [[1, 3], [0, 2, 4], [2]])
def test_softmax_weights_give_the_fitted_probabilities_over_all_labels(present):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4)).astype(np.float32)
    target = np.array(present)[rng.integers(0, len(present), 60)]
    weights, bias = softmax_weights(features, target, 5, regularisation_c=1.0)
    logits = features @ weights.T + bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    absent = [k for k in range(5) if k not in present]
    assert probs[:, absent].max() < 1e-9
    if len(present) > 1:  # two present labels: scikit-learn's one-row (binary) form
        expected = LogisticRegression(C=1.0, max_iter=3000).fit(features, target).predict_proba(features)
        assert np.allclose(probs[:, present], expected, atol=1e-5)
    else:
        assert np.allclose(probs[:, present[0]], 1.0)


def _keyword_stage(labels=TOPIC_LABELS, accept=0.9) -> FirstStage:
    # 海关 -> trade and 铁路 -> transport, confidently; anything else is a uniform guess.
    vocabulary = ["海关", "铁路"]
    weights = np.zeros((len(labels), 2), dtype=np.float32)
    weights[labels.index("trade"), 0] = 20.0
    weights[labels.index("transport"), 1] = 20.0
    ngrams = NgramModel(labels, vocabulary, np.ones(2, dtype=np.float32), weights,
                        np.zeros(len(labels), dtype=np.float32), ngram_range=(2, 2))
    return FirstStage(FirstStageSettings(accept=accept), ngrams)


def test_sure_articles_are_answered_by_the_first_stage_and_the_rest_by_the_model(tiny_classifier_dir):
    plain = NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu")
    routed = NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu")
    routed.first_stage = _keyword_stage()
    items = [{"title": "海关数据", "body": "海关发布数据"}, {"title": "学生", "body": "我们的学生在家"},
             {"title": "", "body": "铁路铁路铁路"}]
    prepared = [as_article(a) for a in items]
    got, model_only = routed.probabilities(prepared), plain.probabilities(prepared)
    assert [routed.labels[i] for i in got[[0, 2]].argmax(1).tolist()] == ["trade", "transport"]
    assert got[0].max() > 0.99 and torch.allclose(got[0].sum(), torch.tensor(1.0))
    assert torch.equal(got[1], model_only[1])  # not sure: the transformer's own answer, unchanged
    assert routed.first_stage_counts == [3, 2]
    # the batched scoring path routes the same way
    analyzer = NewsAnalyzer(routed)
    labels = [a["label"] for a in analyzer.analyze(items)]
    assert labels[0] == "trade" and labels[1] == plain.predict(items[1]).label and labels[2] == "transport"


def test_first_stage_files_round_trip_without_pickles(tmp_path, tiny_classifier_dir):
    folder = tmp_path / "clf"
    shutil.copytree(tiny_classifier_dir, folder)
    stage = _keyword_stage()
    stage.save(folder)
    assert {STAGE_JSON, STAGE_TENSORS} <= {p.name for p in folder.iterdir()}
    loaded = NewsClassifier.from_pretrained(folder, device="cpu").first_stage
    texts = ["海关海关", "铁路", "学生"]
    assert np.allclose(loaded.probabilities(texts), stage.probabilities(texts))
    assert NewsClassifier.from_pretrained(folder, device="cpu", first_stage=False).first_stage is None
    assert xinwen(["first-stage", str(folder), "--remove"]) == 0
    assert NewsClassifier.from_pretrained(folder, device="cpu").first_stage is None


def test_a_first_stage_for_other_labels_is_refused(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu")
    with pytest.raises(ValueError, match="refit"):
        NewsClassifier(clf.model, clf.tokenizer, clf.settings, clf.device,
                       first_stage=_keyword_stage(labels=["trade", "transport", "sport", "safety", "other"]))


def test_fitting_learns_the_classifier_answers_and_reports_what_it_measured(tmp_path, tiny_classifier_dir,
                                                                             topic_files):
    folder = tmp_path / "clf"
    shutil.copytree(tiny_classifier_dir, folder)
    train, dev = topic_files
    report = fit_first_stage(FirstStageOptions(model_dir=str(folder), data=str(train), holdout=str(dev),
                                               agreement=0.6, min_accepted=2))
    stage = FirstStage.load(folder)
    assert stage.settings.accept == report["accept"] and stage.settings.report == report
    # the report's figures are what the saved stage does on the held-out articles
    held_out = [as_article(json.loads(line)) for line in dev.read_text(encoding="utf-8").splitlines()]
    teacher = NewsClassifier.from_pretrained(folder, device="cpu", first_stage=False)
    target = teacher.probabilities(held_out).argmax(1).numpy()
    _, accepted = stage.answer(held_out, teacher.labels)
    probs = stage.probabilities([classifier_text(a) for a in held_out])
    agree = probs.argmax(1) == target
    assert report["held_out_answered"] == pytest.approx(float(accepted.float().mean()))
    assert report["held_out_label_agreement_overall"] == pytest.approx(1 - float((accepted.numpy() & ~agree).mean()))
    if accepted.any():
        assert report["held_out_agreement_when_answered"] >= 0.6


def test_score_uses_the_first_stage_says_so_and_can_switch_it_off(tmp_path, tiny_classifier_dir, capsys):
    folder = tmp_path / "clf"
    shutil.copytree(tiny_classifier_dir, folder)
    _keyword_stage().save(folder)
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(jsonl_lines(articles(20))) + "\n", encoding="utf-8")
    rc = xinwen(["score", "--classifier", str(folder), "--input", str(data), "--output", str(tmp_path / "a.jsonl"),
                 "--no-progress", "--threads", "1"])
    said = capsys.readouterr().out
    assert rc == 0 and "first stage: answered" in said
    with_stage = read_jsonl(tmp_path / "a.jsonl")
    rc = xinwen(["score", "--classifier", str(folder), "--input", str(data), "--output", str(tmp_path / "b.jsonl"),
                 "--no-progress", "--threads", "1", "--no-first-stage"])
    without = read_jsonl(tmp_path / "b.jsonl")
    assert rc == 0 and "first stage" not in capsys.readouterr().out
    assert [r["id"] for r in with_stage] == [r["id"] for r in without]
    keyword_rows = [i for i, r in enumerate(articles(20)) if "海关" in r["title"] + r["body"]]
    assert keyword_rows and all(with_stage[i]["label"] == "trade" for i in keyword_rows)
    others = [i for i, r in enumerate(articles(20))
              if "海关" not in r["title"] + r["body"] and "铁路" not in r["title"] + r["body"]]
    assert others and all(with_stage[i] == without[i] for i in others)
