"""Every bad-input class gives an error naming the file/row/key, what was expected and a fix."""
import pytest

from tiny_models import topic_records, write_jsonl
from xinwen.training.config.sections import load_config
from xinwen.training.data.files import DataError, load_labelled
from xinwen.training.data.topic import load_topic_splits

LABELS = ["industry_policy", "transport", "trade", "safety", "other"]


def test_unknown_label_names_row_and_fix(tmp_path):
    recs = topic_records(1)
    recs[2]["label"] = "sports"
    path = write_jsonl(tmp_path / "t.jsonl", recs)
    with pytest.raises(DataError, match=r"t.jsonl:3: label 'sports' is not in data.labels.*add the label"):
        load_labelled(path, "title", "body", "label", "id", LABELS)


def test_empty_split(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match="no rows"):
        load_labelled(path, "title", "body", "label", "id", LABELS)


def test_missing_column_lists_found_columns_and_config_key(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("headline,text\n标题,正文\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no column\(s\) \['label'\].*found \['headline', 'text'\].*data.label_column"):
        load_labelled(path, "headline", "text", "label", None, LABELS)


def test_malformed_jsonl_row_names_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"title": "a", "body": "b", "label": "other"}\n{"title": "a", body\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"t.jsonl:2: malformed JSON"):
        load_labelled(path, "title", "body", "label", None, LABELS)


def test_malformed_csv_row_is_reported_with_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('title,body,label\n标题,正文,other\n"unterminated,正文,other\n', encoding="utf-8")
    with pytest.raises(DataError, match="t.csv"):
        load_labelled(path, "title", "body", "label", None, LABELS)


def test_non_text_and_empty_fields(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"title": "t", "body": 5, "label": "other"}])
    with pytest.raises(DataError, match=r"t.jsonl:1: field 'body' must be text"):
        load_labelled(path, "title", "body", "label", None, LABELS)
    path = write_jsonl(tmp_path / "e.jsonl", [{"title": "", "body": " ", "label": "other"}])
    with pytest.raises(DataError, match=r"e.jsonl:1: article has neither a title nor a body"):
        load_labelled(path, "title", "body", "label", None, LABELS)


def test_unsupported_extension_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unsupported extension"):
        (tmp_path / "x.txt").write_text("a")
        load_labelled(tmp_path / "x.txt", "title", "body", "label", None, LABELS)
    with pytest.raises(DataError, match="does not exist"):
        load_labelled(tmp_path / "nope.jsonl", "title", "body", "label", None, LABELS)


def test_builtin_labels_must_cover_annotations():
    cfg = load_config(None, ["data.labels=[safety, other]"])
    with pytest.raises(DataError, match="lacks label"):
        load_topic_splits(cfg)


def test_wrong_model_path_fails_fast_in_training(tmp_path, topic_files):
    from xinwen.training.topic.train import train_topic

    train, dev = topic_files
    cfg = load_config(None, [f"model.name_or_path={tmp_path}/no/such/model", f"data.train={train}",
                             f"data.dev={dev}", f"train.output_dir={tmp_path}/out"])
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        train_topic(cfg)
