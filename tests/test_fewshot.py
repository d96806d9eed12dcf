"""The few-shot recipe (recipe: fewshot) on a tiny random encoder: pairs, head, zero-shot, misuse."""
import json
import random

import numpy as np
import pytest
import torch

from xinwen.inference.text import as_article
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.training.cli import main
from xinwen.training.config.loading import ConfigError
from xinwen.training.config.sections import load_config
from xinwen.training.topic.fewshot.head import cross_validated_c, prototype_head
from xinwen.training.topic.fewshot.batches import balanced_batches
from xinwen.training.data.topic import draw_per_label
from xinwen.training.topic.fewshot.recipe import train_fewshot

from tiny_models import topic_records, write_jsonl

DESCRIPTIONS = {"industry_policy": "产业政策规划园区", "transport": "铁路高铁列车航班", "trade": "海关贸易出口进口",
                "safety": "事故安全火灾爆炸", "other": "我们学生年家电"}


def fewshot_overrides(encoder, out, *extra) -> list[str]:
    return ["recipe=fewshot", f"model.name_or_path={encoder}", "model.freeze_layers=1", "model.prune_vocab=false",
            "data.extra_articles=false", "text.max_length=32", "text.chunk_stride=8", "text.prefix=''",
            "train.epochs=1", "train.batch_size=8", "train.checkpoint_every=0", "fewshot.lr=1e-3",
            "lexical.weight=0", f"train.output_dir={out}", *extra]


def test_batches_hold_a_few_examples_of_every_label():
    labels = [0, 0, 0, 0, 1, 1, 1, 2]
    batches = balanced_batches(labels, steps=5, batch_size=6, rng=random.Random(0))
    assert len(batches) == 5
    for batch in batches:
        assert len(batch) == len(set(batch)) == 5  # 2 of label 0, 2 of label 1, the one of label 2
        assert sorted(labels[i] for i in batch) == [0, 0, 1, 1, 2]
    assert batches != balanced_batches(labels, steps=5, batch_size=6, rng=random.Random(1))


def test_pair_loss_is_zero_when_labels_are_orthogonal_and_one_per_wrong_pair():
    from xinwen.training.topic.fewshot.contrastive import pair_loss

    perfect = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert float(pair_loss(perfect, torch.tensor([0, 0, 1]))) == pytest.approx(0.0)
    # all three identical: the 4 ordered cross-label pairs (of 6) are off by 1
    same = torch.tensor([[1.0, 0.0]] * 3)
    assert float(pair_loss(same, torch.tensor([0, 0, 1]))) == pytest.approx(4 / 6)


def test_cross_validation_picks_a_c_and_handles_single_examples():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (6, 4)) + [3, 0, 0, 0], rng.normal(0, 1, (6, 4)) - [3, 0, 0, 0]])
    y = np.array([0] * 6 + [1] * 6)
    c, f1 = cross_validated_c(x, y)
    assert f1 is not None and f1 > 0.8
    assert cross_validated_c(x[:7], y[:7]) [1] is None  # one example of label 1: no fold possible


def test_prototype_head_gives_cosine_over_temperature():
    d = np.eye(3, dtype=np.float32)
    weight, bias = prototype_head(d, 0.05)
    article = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    assert np.allclose(article @ weight.T + bias, [12.0, 16.0, 0.0])


def test_draw_per_label_is_seeded_and_capped():
    recs = topic_records(6)
    drawn = draw_per_label(recs, 2, seed=3)
    assert len(drawn) == 10 and drawn == draw_per_label(recs, 2, seed=3) and drawn != draw_per_label(recs, 2, seed=4)
    assert [r for r in recs if r in drawn] == drawn  # file order kept


def test_trains_a_mean_pooled_folder_that_loads_everywhere(tiny_encoder_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", topic_records(6))
    out = tmp_path / "fs"
    cfg = load_config(None, fewshot_overrides(tiny_encoder_dir, out, f"data.train={train}",
                                              "data.examples_per_label=4"))
    train_fewshot(cfg)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["recipe"] == "fewshot" and saved["train_records"] == 20 and saved["head"] == "logistic_regression"
    assert json.loads((out / "config.json").read_text())["xinwen_pooling"] == "mean"
    clf = NewsClassifier.from_pretrained(out)
    assert type(clf.model).__name__ == "MeanPooledClassifier"
    records = topic_records(6)
    predicted = [p.label for p in clf.predict([{"title": r["title"], "body": r["body"]} for r in records])]
    accuracy = np.mean([p == r["label"] for p, r in zip(predicted, records)])
    assert accuracy >= 0.8, predicted  # the words decide the label; chance is 0.2
    # int8 and the mean-pooled wrapper together give the same labels on this easy data
    int8 = NewsClassifier.from_pretrained(out, quantize="int8")
    assert [p.label for p in int8.predict([{"title": r["title"], "body": r["body"]} for r in records])] == predicted
    # ONNX: the exported graph pools as the torch path does (export refuses a graph that disagrees)
    from xinwen.inference.topic.backends import export_classifier, load_classifier

    report = export_classifier(out, tmp_path / "onnx", onnx=True)
    assert report.probe_max_prob_diff < 1e-4
    onnx = load_classifier(tmp_path / "onnx", backend="onnx")
    assert [p.label for p in onnx.predict([{"title": r["title"], "body": r["body"]} for r in records])] == predicted


def test_mean_pooled_logits_are_the_head_on_the_normalised_mean(tiny_encoder_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from xinwen.inference.encoders.pooling import POOLING_KEY, MeanPooledClassifier

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_dir, num_labels=3).eval()
    setattr(model.config, POOLING_KEY, "mean")
    ids = torch.tensor([[5, 6, 7, 1], [8, 9, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    wrapped = MeanPooledClassifier(model)
    with torch.no_grad():
        logits = wrapped(input_ids=ids, attention_mask=mask).logits
        first = model.base_model(input_ids=ids[:1, :3]).last_hidden_state.mean(1)
        expected = model.classifier(torch.nn.functional.normalize(first, dim=-1))
    torch.testing.assert_close(logits[:1], expected, atol=1e-5, rtol=1e-4)  # padding does not count


def test_descriptions_alone_give_a_zero_shot_classifier(tiny_encoder_dir, tmp_path):
    out = tmp_path / "zs"
    overrides = fewshot_overrides(tiny_encoder_dir, out, "data.train=null") + [
        f"data.label_descriptions.{label}={text}" for label, text in DESCRIPTIONS.items()]
    train_fewshot(load_config(None, overrides))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["head"] == "description_prototypes" and saved["train_records"] == 0
    assert saved["descriptions"] == sorted(DESCRIPTIONS)
    clf = NewsClassifier.from_pretrained(out)
    # An article that is its label's description scores that label first (cosine 1).
    for label, text in DESCRIPTIONS.items():
        assert clf.predict({"title": "", "body": text}).label == label


def test_a_label_without_examples_is_learnt_from_its_description(tiny_encoder_dir, tmp_path):
    recs = [r for r in topic_records(6) if r["label"] != "trade"]
    train = write_jsonl(tmp_path / "train.jsonl", recs)
    out = tmp_path / "mixed"
    train_fewshot(load_config(None, fewshot_overrides(tiny_encoder_dir, out, f"data.train={train}",
                                                      f"data.label_descriptions.trade={DESCRIPTIONS['trade']}")))
    saved = json.loads((out / "metrics.json").read_text())
    assert "trade" not in saved["examples_per_label"] and saved["descriptions"] == ["trade"]
    clf = NewsClassifier.from_pretrained(out)
    # Learnt from its description alone: the description itself is read as trade. A label with no
    # row at all would get the head's "absent" bias and never be predicted.
    assert clf.predict({"title": "", "body": DESCRIPTIONS["trade"]}).label == "trade"
    from xinwen.training.topic.evaluate import training_records

    baseline_rows = training_records(load_config(str(out / "config.yaml")))  # what `xinwen eval` fits TF-IDF on
    assert [r["body"] for r in baseline_rows if r["label"] == "trade"] == [DESCRIPTIONS["trade"]]


def test_labels_come_from_the_file_when_data_labels_is_empty(tiny_encoder_dir, tmp_path):
    recs = [dict(r, label={"trade": "贸易", "transport": "交通"}.get(r["label"], "其他")) for r in topic_records(4)]
    train = write_jsonl(tmp_path / "mine.jsonl", recs)
    out = tmp_path / "mine"
    train_fewshot(load_config(None, fewshot_overrides(tiny_encoder_dir, out, f"data.train={train}", "data.labels=[]",
                                                      "data.fallback_label=其他")))
    assert sorted(NewsClassifier.from_pretrained(out).labels) == sorted(["贸易", "交通", "其他"])


@pytest.mark.parametrize("overrides, key", [
    (["data.train=null"], "data.label_descriptions"),  # zero-shot needs every label described
    (["lexical.weight=0.5"], "lexical.weight"),
    (["data.label_descriptions.energy=能源"], "data.label_descriptions"),  # not a label
    (["model.prune_vocab=true"], "model.prune_vocab"),  # keys the recipe cannot honour are named
    (["data.extra_articles=true"], "data.extra_articles"),
    (["train.head_init=linear_probe"], "train.head_init"),
    (["train.lr=1e-5"], "fewshot.lr"),  # full-recipe keys it never reads are refused, naming what to use
    (["data.fallback_per_epoch=10"], "data.fallback_per_epoch"),
])
def test_misconfigured_fewshot_runs_are_refused_with_the_key(tiny_encoder_dir, tmp_path, overrides, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, fewshot_overrides(tiny_encoder_dir, tmp_path / "x", *overrides))
    assert key in str(err.value)


def test_the_full_recipe_trains_on_each_description_as_one_more_example(tmp_path):
    from xinwen.training.data.topic import load_topic_splits

    records = [r for r in topic_records(3) if r["label"] != "trade"]  # trade: no article at all
    train = write_jsonl(tmp_path / "train.jsonl", records)
    cfg = load_config(None, [f"data.train={train}", f"data.dev={train}", "data.examples_per_label=1",
                             f"data.label_descriptions.trade={DESCRIPTIONS['trade']}"])
    fit, dev = load_topic_splits(cfg)
    described = [r for r in fit if r["label"] == "trade"]
    assert [(r["id"], r["body"]) for r in described] == [("description:trade", DESCRIPTIONS["trade"])]
    assert len(fit) == 4 + 1  # drawn 1 per label, then the description added
    assert not [r for r in dev if r["id"].startswith("description:")]  # nothing is scored against a description
    with pytest.raises(ConfigError, match="energy"):
        load_config(None, ["data.label_descriptions.energy=能源"])  # not a label of data.labels


def test_cli_trains_the_bundled_fewshot_config_on_a_file(tiny_encoder_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", topic_records(4))
    out = tmp_path / "cli"
    code = main(["train", "fewshot", f"data.train={train}", "data.examples_per_label=0",
                 *fewshot_overrides(tiny_encoder_dir, out)[1:]])
    assert code == 0 and (out / "model.safetensors").is_file()
    card = (out / "README.md").read_text()  # the model card speaks of this recipe, not the full one
    assert "head: logistic regression, C=" in card and "No dev data was scored" in card
    assert "best epoch" not in card and "n-gram" not in card and "web news" not in card


def test_a_missing_training_file_exits_2_naming_it_before_the_encoder_loads(tmp_path, caplog):
    missing = tmp_path / "no" / "such.jsonl"
    code = main(["train", "fewshot", f"data.train={missing}", "model.name_or_path=/no/encoder/either",
                 f"train.output_dir={tmp_path / 'y'}"])
    assert code == 2 and str(missing) in caplog.text and "/no/encoder/either" not in caplog.text
    assert not (tmp_path / "y").exists()


def test_eval_of_a_fewshot_folder_asks_for_data_and_trains_the_baseline_on_its_examples(tiny_encoder_dir, tmp_path):
    from xinwen.training.topic.evaluate import evaluate_topic_folder

    train = write_jsonl(tmp_path / "train.jsonl", topic_records(6))
    held_out = write_jsonl(tmp_path / "held_out.jsonl", topic_records(3))
    out = tmp_path / "fs"
    assert main(["train", "fewshot", *fewshot_overrides(tiny_encoder_dir, out)[1:], f"data.train={train}",
                 "data.examples_per_label=3"]) == 0
    assert main(["eval", str(out)]) == 2  # no dev split in a few-shot config: --data is needed
    results = evaluate_topic_folder(str(out), data=str(held_out))
    assert set(results["systems"]) == {"xinwen", "tfidf_char_lr"}

    zero = tmp_path / "zs"
    train_fewshot(load_config(None, fewshot_overrides(tiny_encoder_dir, zero, "data.train=null") + [
        f"data.label_descriptions.{label}={text}" for label, text in DESCRIPTIONS.items()]))
    assert set(evaluate_topic_folder(str(zero), data=str(held_out))["systems"]) == {"xinwen"}  # nothing to fit TF-IDF on


def test_a_file_record_without_a_label_is_named_when_labels_come_from_the_file(tiny_encoder_dir, tmp_path):
    from xinwen.training.data.files import DataError

    recs = topic_records(2)
    recs[3] = {k: v for k, v in recs[3].items() if k != "label"}
    train = write_jsonl(tmp_path / "mine.jsonl", recs)
    cfg = load_config(None, fewshot_overrides(tiny_encoder_dir, tmp_path / "x", f"data.train={train}", "data.labels=[]"))
    with pytest.raises(DataError, match=r"mine.jsonl:4: no label"):
        train_fewshot(cfg)
    assert not (tmp_path / "x").exists()  # refused before the output folder is claimed


@pytest.mark.parametrize("bad, expected", [(3, r"mine.jsonl:2: label 3 is int, expected text"),
                                           ("  ", r"mine.jsonl:2: no label")])
def test_a_label_that_is_no_text_is_named_with_its_line(tiny_encoder_dir, tmp_path, bad, expected):
    from xinwen.training.data.files import DataError

    recs = topic_records(2)
    recs[1]["label"] = bad
    train = write_jsonl(tmp_path / "mine.jsonl", recs)
    cfg = load_config(None, fewshot_overrides(tiny_encoder_dir, tmp_path / "x", f"data.train={train}", "data.labels=[]"))
    with pytest.raises(DataError, match=expected):
        train_fewshot(cfg)


def test_labels_from_the_file_are_stripped_of_spaces(tiny_encoder_dir, tmp_path):
    from xinwen.training.data.fewshot import labels_of_file

    recs = [dict(r, label=f" {r['label']} ") if i % 2 else r for i, r in enumerate(topic_records(2))]
    train = write_jsonl(tmp_path / "mine.jsonl", recs)
    labels, _ = labels_of_file(load_config(None, fewshot_overrides(tiny_encoder_dir, tmp_path / "x",
                                                                   f"data.train={train}", "data.labels=[]")))
    assert sorted(labels) == sorted({r["label"] for r in topic_records(2)})


def test_a_fallback_outside_the_builtin_labels_is_refused_when_labels_come_from_it(tiny_encoder_dir, tmp_path):
    from xinwen.training.data.files import DataError

    cfg = load_config(None, fewshot_overrides(tiny_encoder_dir, tmp_path / "x", "data.train=builtin:inews-topics",
                                              "data.labels=[]", "data.fallback_label=misc"))
    with pytest.raises(DataError, match="data.fallback_label.*misc"):
        train_fewshot(cfg)


def test_a_multi_process_launch_is_refused(tiny_encoder_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    train = write_jsonl(tmp_path / "train.jsonl", topic_records(2))
    with pytest.raises(ConfigError, match="single process"):
        train_fewshot(load_config(None, fewshot_overrides(tiny_encoder_dir, tmp_path / "x", f"data.train={train}")))
    assert not (tmp_path / "x").exists()


def test_the_full_recipe_started_from_a_fewshot_folder_drops_its_mean_pooling(tiny_encoder_dir, tmp_path):
    from xinwen.inference.encoders.pooling import POOLING_KEY
    from xinwen.training.topic.encoder_setup import classifier_from_encoder

    train = write_jsonl(tmp_path / "train.jsonl", topic_records(2))
    fewshot_folder = tmp_path / "fs"
    train_fewshot(load_config(None, fewshot_overrides(tiny_encoder_dir, fewshot_folder, f"data.train={train}")))
    assert json.loads((fewshot_folder / "config.json").read_text())[POOLING_KEY] == "mean"
    model, _ = classifier_from_encoder(load_config(None, [f"model.name_or_path={fewshot_folder}"]),
                                       ["industry_policy", "transport", "trade", "safety", "other"])
    assert getattr(model.config, POOLING_KEY, None) is None
    model.save_pretrained(tmp_path / "full")
    assert POOLING_KEY not in json.loads((tmp_path / "full" / "config.json").read_text())


def test_freezing_every_layer_is_refused_before_training(tiny_encoder_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", topic_records(2))
    cfg = load_config(None, fewshot_overrides(tiny_encoder_dir, tmp_path / "x", f"data.train={train}",
                                              "model.freeze_layers=2"))  # the tiny encoder has 2 layers
    with pytest.raises(ConfigError, match="model.freeze_layers"):
        train_fewshot(cfg)
    assert not (tmp_path / "x").exists()  # the output folder is not claimed by a run that cannot train


def test_the_ngram_expert_is_saved_beside_the_head_and_used_by_the_classifier(tiny_encoder_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", topic_records(6))
    out = tmp_path / "ngram"
    train_fewshot(load_config(None, fewshot_overrides(tiny_encoder_dir, out, f"data.train={train}",
                                                      "fewshot.ngram_weight=0.5")))
    assert json.loads((out / "metrics.json").read_text())["ngram_weight"] == 0.5
    with_expert, alone = NewsClassifier.from_pretrained(out), NewsClassifier.from_pretrained(out, lexical=False)
    assert with_expert.lexical is not None and with_expert.lexical.settings.weight == 0.5
    articles = [as_article(r, i) for i, r in enumerate(topic_records(1))]
    assert not torch.allclose(with_expert.probabilities(articles), alone.probabilities(articles))


def test_the_ngram_weight_is_cross_validated_on_the_examples_when_null(tiny_encoder_dir, tmp_path):
    from xinwen.training.topic.fewshot.ngram import WEIGHT_GRID

    train = write_jsonl(tmp_path / "train.jsonl", topic_records(6))
    out = tmp_path / "cv"
    train_fewshot(load_config(None, fewshot_overrides(tiny_encoder_dir, out, f"data.train={train}",
                                                      "fewshot.ngram_weight=null")))
    saved = json.loads((out / "metrics.json").read_text())
    assert sorted(float(w) for w in saved["ngram_weight_scores"]) == sorted(WEIGHT_GRID)
    best = max(WEIGHT_GRID, key=lambda w: (saved["ngram_weight_scores"][str(w)], -w))
    assert saved["ngram_weight"] == best
    assert (out / "lexical.json").is_file() == (best > 0)
