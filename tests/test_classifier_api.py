import pytest
import torch

from xinwen.inference.topic.classifier import NewsClassifier, Prediction, encode_for_classifier
from xinwen.inference.settings import TextSettings
from xinwen.inference.text import as_article


def test_one_in_one_out_list_in_list_out(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    one = clf.predict("海关进口贸易")
    assert isinstance(one, Prediction) and one.label in clf.labels
    assert abs(sum(one.scores.values()) - 1.0) < 1e-5
    many = clf.predict([{"title": "铁路", "body": "高铁列车"}, "事故"])
    assert isinstance(many, list) and len(many) == 2
    assert clf.predict([]) == []


def test_non_string_names_its_index(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    with pytest.raises(TypeError, match="index 2 must be a str or a mapping"):
        clf.predict(["一", "二", 3])
    with pytest.raises(TypeError, match="index 1: field 'title' must be a string, got int"):
        clf.predict(["一", {"title": 7, "body": "二"}])


def test_top_k_and_threshold_fall_back_to_other(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    pred = clf.predict("海关进口贸易", top_k=2)
    assert len(pred.scores) == 2 and list(pred.scores.values())[0] >= list(pred.scores.values())[1]
    assert clf.predict("海关进口贸易", threshold=0.99).label == "other"


def test_temperature_changes_confidence_not_ranking(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    base = clf.predict("海关进口贸易")
    clf.settings.temperature = 0.05
    sharp = clf.predict("海关进口贸易")
    assert sharp.label == base.label and sharp.score > base.score


def test_long_articles_are_chunked_not_cut(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    long_body = "铁路高铁列车航班机场" * 40
    inputs = encode_for_classifier(clf.tokenizer, [as_article({"title": "标题", "body": long_body})],
                                   clf.settings.text)
    assert len(inputs) > 1 and all(len(ids) <= clf.settings.text.max_length for _, ids in inputs)
    covered = sum(len(ids) for _, ids in inputs)
    assert covered >= len(long_body)  # every body character reached the model at least once
    head = TextSettings(max_length=32, prefix="", long_text="head")
    assert len(encode_for_classifier(clf.tokenizer, [as_article(long_body)], head)) == 1


def test_folder_loads_with_transformers_pipeline(tiny_classifier_dir):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(tiny_classifier_dir))
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    clf.settings.text = TextSettings(max_length=32, prefix="", long_text="head")
    out = pipe("海关进口贸易")
    assert out[0]["label"] == clf.predict("海关进口贸易").label


def test_int8_quantized_classifier_agrees(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    q = NewsClassifier.from_pretrained(tiny_classifier_dir, quantize="int8")
    texts = ["海关进口贸易", "铁路高铁", "事故火灾救援"]
    a = clf.probabilities([as_article(t) for t in texts])
    b = q.probabilities([as_article(t) for t in texts])
    assert torch.allclose(a, b, atol=0.05)


def test_wrong_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        NewsClassifier.from_pretrained(tmp_path / "missing" / "model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        NewsClassifier.from_pretrained(tmp_path / "empty")


def test_an_article_is_a_title_and_or_a_body(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    title_only = clf.predict({"title": "海关进口贸易"})
    assert title_only.label in clf.labels
    # The same words as a body give the same answer: a title-only article is read, not refused.
    assert title_only.scores == pytest.approx(clf.predict("海关进口贸易").scores, abs=1e-6)
    for empty in ("", "  \u3000\n", {"title": "", "body": ""}, {"title": None}, {}):
        with pytest.raises(ValueError, match="article has neither a title nor a body with text"):
            clf.predict(empty)
    with pytest.raises(ValueError, match=r"index 1 has neither a title nor a body.*expected a non-empty 'title'"):
        clf.predict(["铁路", {"body": " "}])


@pytest.mark.parametrize("kwargs,message", [
    ({"top_k": 0}, "top_k: expected None or an integer >= 1, got 0"),
    ({"top_k": -2}, "top_k"), ({"top_k": 1.5}, "top_k"), ({"top_k": True}, "top_k"),
    ({"threshold": 5}, "threshold: expected None or a probability between 0 and 1, got 5"),
    ({"threshold": -0.1}, "threshold"), ({"threshold": float("nan")}, "threshold"),
    ({"batch_size": 0}, "batch_size: expected an integer >= 1"),
])
def test_bad_arguments_name_the_argument(tiny_classifier_dir, kwargs, message):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        clf.predict("海关", **kwargs)


def test_top_k_one_and_threshold_bounds_are_accepted(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir)
    assert len(clf.predict("海关", top_k=1).scores) == 1
    assert clf.predict("海关", threshold=1.0).label == "other" and clf.predict("海关", threshold=0).label
