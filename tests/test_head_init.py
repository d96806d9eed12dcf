"""LP-FT head initialisation: the head starts as a logistic regression on frozen pooled features."""
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from xinwen.inference.topic.classifier import encode_for_classifier
from xinwen.inference.settings import TextSettings
from xinwen.inference.text import as_article
from xinwen.training.topic.head_init import linear_probe_init, pooled_features
from tiny_models import TOPIC_LABELS, topic_records


def _model_and_data(encoder_dir, labels=TOPIC_LABELS):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(encoder_dir, num_labels=len(TOPIC_LABELS))
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    recs = [r for r in topic_records(8) if r["label"] in labels]
    articles = [as_article(r, i) for i, r in enumerate(recs)]
    encoded = [ids for _, ids in encode_for_classifier(tokenizer, articles, TextSettings(max_length=32, prefix=""))]
    y = [TOPIC_LABELS.index(r["label"]) for r in recs]
    return model, encoded, y


def _head_accuracy(model, encoded, y):
    features = torch.from_numpy(pooled_features(model, encoded, list(range(len(y))), pad_id=0))
    with torch.no_grad():
        pred = model.classifier(features).argmax(-1).numpy()
    return float((pred == np.array(y)).mean()), pred


def test_probe_head_reproduces_the_logistic_regression(tiny_encoder_dir):
    from sklearn.linear_model import LogisticRegression

    model, encoded, y = _model_and_data(tiny_encoder_dir)
    random_accuracy, _ = _head_accuracy(model, encoded, y)
    before = {n: p.clone() for n, p in model.named_parameters() if not n.startswith("classifier")}
    assert linear_probe_init(model, encoded, y, list(range(len(y))), None, pad_id=0)
    accuracy, pred = _head_accuracy(model, encoded, y)
    features = pooled_features(model, encoded, list(range(len(y))), pad_id=0)
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(features, y).predict(features)
    assert (pred == reference).all()
    assert accuracy > random_accuracy
    # Only the head moved; the encoder is left for fine-tuning.
    for name, param in model.named_parameters():
        if name in before:
            assert torch.equal(param, before[name]), name


def test_two_present_classes_get_opposite_rows_and_absent_ones_are_never_chosen(tiny_encoder_dir):
    model, encoded, y = _model_and_data(tiny_encoder_dir, labels=("trade", "safety"))
    assert linear_probe_init(model, encoded, y, list(range(len(y))), None, pad_id=0)
    trade, safety = TOPIC_LABELS.index("trade"), TOPIC_LABELS.index("safety")
    weight = model.classifier.weight.detach()
    assert torch.allclose(weight[trade], -weight[safety])
    _, pred = _head_accuracy(model, encoded, y)
    assert set(pred.tolist()) <= {trade, safety}


def test_class_weights_shift_the_probe_toward_the_upweighted_class(tiny_encoder_dir):
    model, encoded, y = _model_and_data(tiny_encoder_dir)
    assert linear_probe_init(model, encoded, y, list(range(len(y))), None, pad_id=0)
    plain = model.classifier.bias.detach().clone()
    weights = torch.ones(len(TOPIC_LABELS))
    weights[TOPIC_LABELS.index("trade")] = 20.0
    assert linear_probe_init(model, encoded, y, list(range(len(y))), weights, pad_id=0)
    shifted = model.classifier.bias.detach() - plain
    assert shifted.argmax().item() == TOPIC_LABELS.index("trade")


def test_unsupported_head_is_left_alone(tiny_encoder_dir):
    model, encoded, y = _model_and_data(tiny_encoder_dir)
    model.classifier = torch.nn.Sequential(torch.nn.Linear(32, len(TOPIC_LABELS)))
    before = model.classifier[0].weight.clone()
    assert not linear_probe_init(model, encoded, y, list(range(len(y))), None, pad_id=0)
    assert torch.equal(model.classifier[0].weight, before)


def test_training_starts_from_the_probe_head(tiny_encoder_dir, topic_files, tmp_path, monkeypatch):
    """With learning rates too small to move anything, the saved model is its starting point: the
    probe head already separates the tiny topics, a random head does not."""
    from test_train_topic import tiny_config
    from xinwen.training.topic import train as topic_module

    calls = []

    def counting(*args, **kwargs):
        calls.append(len(args[3]))  # the items the probe is fitted on
        return linear_probe_init(*args, **kwargs)

    monkeypatch.setattr(topic_module, "linear_probe_init", counting)
    train, dev = topic_files
    frozen = ("train.epochs=1", "train.lr=1e-9", "train.head_lr=1e-9", "train.prior_correction=0")
    accuracy = {}
    for head_init in ("random", "linear_probe"):
        metrics = topic_module.train_topic(tiny_config(tiny_encoder_dir, train, dev, tmp_path / head_init,
                                                       *frozen, f"train.head_init={head_init}"))
        accuracy[head_init] = metrics.metrics["dev_encoder_alone"]["accuracy"]  # the head itself
    assert calls == [30]  # once, on the first epoch's 30 training items
    assert accuracy["linear_probe"] >= 0.8 and accuracy["random"] <= 0.4, accuracy


def test_resumed_run_skips_the_probe(tiny_encoder_dir, topic_files, tmp_path, monkeypatch):
    """A resumed run loads its trained head from the checkpoint: fitting a probe would be wasted."""
    from test_train_topic import tiny_config
    from xinwen.training.loop import TrainingLoop
    from xinwen.training.topic import train as topic_module

    class Interrupted(BaseException):
        """Stands for a kill: nothing in the training code catches it."""

    save = TrainingLoop.save_checkpoint

    def save_then_stop(self):
        save(self)
        raise Interrupted

    train, dev = topic_files
    cfg = tiny_config(tiny_encoder_dir, train, dev, tmp_path / "run", "train.epochs=2", "train.checkpoint_every=3",
                      "train.head_init=linear_probe", "lexical.weight=0")
    calls = []
    monkeypatch.setattr(topic_module, "linear_probe_init", lambda *a, **k: calls.append("first run"))
    monkeypatch.setattr(TrainingLoop, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        topic_module.train_topic(cfg)
    assert calls == ["first run"]
    monkeypatch.setattr(TrainingLoop, "save_checkpoint", save)
    monkeypatch.setattr(topic_module, "linear_probe_init", lambda *a, **k: calls.append("resumed run"))
    topic_module.train_topic(cfg)
    assert calls == ["first run"] and (tmp_path / "run" / "model.safetensors").is_file()
