"""The lexical expert: a character n-gram model multiplied into the encoder's probabilities."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xinwen.inference import NewsClassifier
from xinwen.inference.topic.backends import export_classifier, load_classifier
from xinwen.inference.topic.lexical import LEXICAL_JSON, LEXICAL_TENSORS, LexicalExpert, LexicalSettings
from xinwen.inference.topic.ngram_model import NgramModel
from xinwen.inference.text import as_article
from xinwen.training.config.sections import ConfigError, load_config
from xinwen.training.topic.lexical_fit import fit_tfidf
from xinwen.training.topic.train import train_topic
from xinwen.training.topic.evaluate import evaluate_topic_folder, tfidf_baseline

LABELS = ["industry_policy", "transport", "trade", "safety", "other"]


def _keyword_expert(weight: float, temperature: float = 1.0, labels=LABELS) -> LexicalExpert:
    # 海关 -> trade, strongly; every other text gets a flat distribution.
    weights = np.zeros((len(labels), 1), dtype=np.float32)
    weights[labels.index("trade") if "trade" in labels else 0, 0] = 30.0
    ngrams = NgramModel(labels, ["海关"], np.ones(1, dtype=np.float32), weights,
                        np.zeros(len(labels), dtype=np.float32), ngram_range=(2, 2))
    return LexicalExpert(LexicalSettings(weight=weight, temperature=temperature), ngrams)


def test_the_product_of_experts_follows_its_formula():
    encoder = torch.tensor([[0.5, 0.1, 0.1, 0.1, 0.2], [0.05, 0.05, 0.1, 0.1, 0.7]])
    articles = [as_article({"title": "海关", "body": "海关数据"}), as_article("学生在家")]
    expert = _keyword_expert(weight=0.5, temperature=2.0)
    lexical = expert.probabilities(articles, LABELS)
    assert lexical[0].argmax() == LABELS.index("trade") and torch.allclose(lexical[1], torch.full((5,), 0.2))
    fused = expert.combine(encoder, lexical)
    expected = torch.softmax((encoder.log() + 0.5 * lexical.clamp_min(1e-9).log()) / 2.0, -1)
    assert torch.allclose(fused, expected, atol=1e-6)
    assert fused[0].argmax() == LABELS.index("trade")  # the keyword overrules a weak encoder
    # A flat lexical answer leaves the encoder's ranking; weight 0 and T 1 leave its numbers.
    assert fused[1].argmax() == encoder[1].argmax()
    flat = _keyword_expert(weight=0.0)
    assert torch.allclose(flat.combine(encoder, flat.probabilities(articles, LABELS)), encoder, atol=1e-6)
    # Probabilities come back in the model's label order, whatever the expert's order.
    shuffled = _keyword_expert(weight=0.5, labels=list(reversed(LABELS)))
    assert torch.allclose(shuffled.probabilities(articles, LABELS), lexical, atol=1e-6)


def test_every_inference_path_applies_the_saved_expert(tiny_classifier_dir, tmp_path):
    import shutil

    folder = tmp_path / "clf"
    shutil.copytree(tiny_classifier_dir, folder)
    _keyword_expert(weight=1.0).save(folder)
    assert {LEXICAL_JSON, LEXICAL_TENSORS} <= {p.name for p in folder.iterdir()}
    articles = [as_article({"title": "海关", "body": "海关数据"}), as_article("学生在家"), as_article("铁路")]
    with_expert = NewsClassifier.from_pretrained(folder, device="cpu")
    alone = NewsClassifier.from_pretrained(folder, device="cpu", lexical=False)
    assert alone.lexical is None and with_expert.lexical.settings.weight == 1.0
    encoder = alone.probabilities(articles)
    expert = with_expert.lexical
    expected = expert.combine(encoder, expert.probabilities(articles, with_expert.labels))
    assert torch.allclose(with_expert.probabilities(articles), expected, atol=1e-6)
    assert torch.allclose(with_expert.probabilities(articles, batch_size=1, max_batch_tokens=8), expected, atol=1e-5)
    parts = with_expert.probabilities(articles, return_parts=True)
    assert torch.allclose(parts.encoder, encoder, atol=1e-6) and torch.allclose(parts.final, expected, atol=1e-6)
    assert with_expert.predict({"title": "海关", "body": "海关数据"}).label == "trade"
    assert not torch.allclose(expected, encoder)

    # An export carries the expert: the exported classifier applies it to its own encoder.
    out = tmp_path / "int8"
    export_classifier(folder, out, int8=True)
    assert (out / LEXICAL_JSON).is_file() and (out / LEXICAL_TENSORS).is_file()
    exported = load_classifier(out)
    exported_parts = exported.probabilities(articles, return_parts=True)
    assert torch.allclose(exported.probabilities(articles),
                          exported.lexical.combine(exported_parts.encoder, exported_parts.ngram), atol=1e-6)
    assert exported.predict({"title": "海关", "body": "海关数据"}).label == "trade"


def test_an_expert_with_other_labels_is_refused(tiny_classifier_dir, tmp_path):
    import shutil

    folder = tmp_path / "clf"
    shutil.copytree(tiny_classifier_dir, folder)
    _keyword_expert(weight=0.5, labels=["a", "b", "c", "d", "e"]).save(folder)
    with pytest.raises(ValueError, match="lexical expert labels.*xinwen lexical DIR --weight 0"):
        NewsClassifier.from_pretrained(folder, device="cpu")


def test_training_fits_the_expert_and_eval_reports_both(tiny_encoder_dir, topic_files, tmp_path):
    from test_train_topic import tiny_config

    train, dev = topic_files
    out = tmp_path / "run"
    result = train_topic(tiny_config(tiny_encoder_dir, train, dev, out, "train.epochs=1", "lexical.weight=0.7"))
    metrics = result.metrics
    saved = json.loads((out / LEXICAL_JSON).read_text(encoding="utf-8"))
    assert saved["weight"] == 0.7 and saved["temperature"] > 0 and saved["report"]["class_weight"] == "balanced"
    assert metrics["lexical"]["dev_macro_f1_with_lexical"] == metrics["dev"]["macro_f1"]
    assert metrics["lexical"]["dev_macro_f1_encoder_alone"] == metrics["dev_encoder_alone"]["macro_f1"]
    assert isinstance(result.fitted_baseline, NgramModel)  # same settings as the eval baseline

    results = evaluate_topic_folder(str(out), data=str(dev))
    assert set(results["systems"]) == {"xinwen", "encoder_alone", "tfidf_char_lr"}
    assert results["lexical_weight"] == 0.7
    # Right after training the eval reads the baseline off the saved expert (the same fit) instead
    # of running a second n-gram pass: the column must equal a fresh fit's.
    import xinwen.training.topic.evaluate as topic_eval

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the baseline was recomputed instead of read off the saved expert")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(topic_eval, "tfidf_baseline", no_second_pass)
        reused = evaluate_topic_folder(str(out), data=str(dev), fitted_baseline=result.fitted_baseline)
    assert reused["systems"]["tfidf_char_lr"] == results["systems"]["tfidf_char_lr"]
    assert "encoder_alone = the encoder without it" in (out / "eval" / "report.md").read_text(encoding="utf-8")
    # Right after training the eval reuses training's dev probabilities (no encoder pass) and
    # reports what a fresh pass reports.
    on_dev = evaluate_topic_folder(str(out), baseline=False)
    assert result.dev_probabilities is not None
    import xinwen.inference.topic.classifier as classifier_module

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(classifier_module.NewsClassifier, "_encoder_pass",
                      lambda *a, **k: (_ for _ in ()).throw(AssertionError("encoder pass despite reuse")))
        after_training = evaluate_topic_folder(str(out), baseline=False, dev_probabilities=result.dev_probabilities)
    assert after_training["systems"] == on_dev["systems"]
    # The report's xinwen column is what NewsClassifier predicts.
    clf = NewsClassifier.from_pretrained(out, device="cpu")
    recs = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines()]
    pred = [p.label for p in clf.predict([{"title": r["title"], "body": r["body"]} for r in recs])]
    from xinwen.training.topic.metrics import classification_report

    assert classification_report([r["label"] for r in recs], pred, clf.labels)["macro_f1"] == pytest.approx(
        results["systems"]["xinwen"]["macro_f1"])

    # Weight 0: the encoder alone, no files, and retraining removes a stale expert.
    train_topic(tiny_config(tiny_encoder_dir, train, dev, out, "train.epochs=1", "lexical.weight=0",
                            "train.resume=false"), overwrite=True)
    assert not (out / LEXICAL_JSON).exists() and NewsClassifier.from_pretrained(out).lexical is None
    assert set(evaluate_topic_folder(str(out), data=str(dev))["systems"]) == {"xinwen", "tfidf_char_lr"}
    assert not (out / "eval" / "confusion_encoder_alone.png").exists()  # no stale plot from the earlier run

    # `xinwen lexical` fits one into a trained folder, refuses a bad weight, and removes it at 0.
    from xinwen.training.cli import main as xinwen

    (out / "first_stage.json").write_text("{}")  # stands for a first stage distilled from the old answers
    assert xinwen(["lexical", str(out), "--weight", "0.25"]) == 0
    assert NewsClassifier.from_pretrained(out).lexical.settings.weight == 0.25
    assert not (out / "first_stage.json").exists()
    for bad in ("-1", "nan"):  # refused by the flag's parser, before the folder is read
        with pytest.raises(SystemExit) as refused:
            xinwen(["lexical", str(out), "--weight", bad])
        assert refused.value.code == 2
    assert (out / LEXICAL_JSON).is_file()  # a refused command changes nothing
    assert xinwen(["lexical", str(out), "--weight", "0"]) == 0 and not (out / LEXICAL_JSON).exists()
    assert xinwen(["lexical", str(tmp_path)]) == 2  # no config.yaml: not a trained folder


def test_the_baseline_is_a_plain_tfidf_logistic_regression(topic_files):
    """The stored n-gram model (float32, our own softmax arrays) answers like scikit-learn's own
    pipeline with the same settings, the reference the baseline used to be."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from xinwen.inference.text import classifier_text
    from xinwen.training.data.files import load_labelled

    train, dev = topic_files
    recs = load_labelled(str(train), "title", "body", "label", "id", LABELS)
    dev_recs = load_labelled(str(dev), "title", "body", "label", "id", LABELS)
    texts = lambda rs: [classifier_text(as_article(r)) for r in rs]  # noqa: E731
    reference = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2),
                              LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000))
    reference.fit(texts(recs), [r["label"] for r in recs])
    fitted = fit_tfidf(recs, LABELS)
    assert np.allclose(fitted.probabilities(texts(dev_recs)),
                       reference.predict_proba(texts(dev_recs))[:, [list(reference.classes_).index(l) for l in LABELS]],
                       atol=1e-3)
    assert tfidf_baseline(recs, LABELS, fitted)(dev_recs) == list(reference.predict(texts(dev_recs)))


def test_bad_lexical_settings_name_the_key():
    with pytest.raises(ConfigError, match="lexical.weight"):
        load_config(None, ["lexical.weight=-1"])
    with pytest.raises(ConfigError, match="lexical.ngram_max"):
        load_config(None, ["lexical.ngram_max=9"])
    with pytest.raises(ConfigError, match="lexical.regularisation_c"):
        load_config(None, ["lexical.regularisation_c=0"])


def test_int8_checked_rechecks_answers_the_expert_made_fragile(tiny_classifier_dir, tmp_path, monkeypatch):
    """The backend's own check sees encoder rows only; with an expert the classifier also sends
    articles whose final probabilities are close back through fp32."""
    import shutil

    from xinwen.inference.topic import runtimes

    folder = tmp_path / "clf"
    shutil.copytree(tiny_classifier_dir, folder)
    _keyword_expert(weight=1.0).save(folder)
    articles = [as_article({"title": "海关", "body": "海关数据"}), as_article("学生在家"), as_article("铁路工人")]
    reference = NewsClassifier.from_pretrained(folder, device="cpu").probabilities(articles)
    # The backend's own row check off: only the classifier's check of final answers remains.
    monkeypatch.setattr(runtimes, "fragile_rows", lambda probs, margin, threshold=0.0: torch.zeros(len(probs), dtype=torch.bool))
    checked = load_classifier(folder, backend="int8-checked")
    checked.model.margin = 2.0  # every final answer counts as fragile (gaps are at most 1)
    assert torch.allclose(checked.probabilities(articles), reference, atol=1e-6)
    assert checked.model.rechecked == checked.model.rows == len(articles)
    checked.model.margin = 0.0  # none does: int8 throughout, no second pass
    checked.probabilities(articles)
    assert checked.model.rechecked == len(articles) and checked.model.rows == 2 * len(articles)


def test_broken_expert_files_name_the_file_and_the_fix(tiny_classifier_dir, tmp_path):
    import shutil

    folder = tmp_path / "clf"
    shutil.copytree(tiny_classifier_dir, folder)
    _keyword_expert(weight=0.5).save(folder)
    saved = json.loads((folder / LEXICAL_JSON).read_text(encoding="utf-8"))
    (folder / LEXICAL_JSON).write_text(json.dumps({**saved, "weight": -2}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"lexical.json: lexical weight.*fix: refit it with `xinwen lexical"):
        NewsClassifier.from_pretrained(folder, device="cpu")
    (folder / LEXICAL_JSON).write_text(json.dumps(saved), encoding="utf-8")
    (folder / LEXICAL_TENSORS).unlink()
    with pytest.raises(ValueError, match=r"unreadable n-gram model.*xinwen lexical"):
        NewsClassifier.from_pretrained(folder, device="cpu")
