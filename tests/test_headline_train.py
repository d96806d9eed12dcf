"""`xinwen train` / `xinwen eval` for headlines on a tiny random warm start, from JSONL files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import write_jsonl
from tiny_seq2seq import headline_records

from xinwen.training.cli import main

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "headline.yaml"


def headline_files(tmp_path):
    rename = lambda recs: [{"id": r["id"], "headline": r["title"], "text": r["body"]} for r in recs]  # noqa: E731
    train = write_jsonl(tmp_path / "train.jsonl", rename(headline_records(48)))
    dev = write_jsonl(tmp_path / "dev.jsonl", rename(headline_records(8, offset=48)))
    # An evaluation file holding two training items: they must not be scored.
    test = write_jsonl(tmp_path / "test.jsonl", rename(headline_records(6, offset=60) + headline_records(2)))
    return train, dev, test


def headline_overrides(tmp_path, encoder_dir, train, dev, out, **extra):
    base = {
        "model.name_or_path": str(encoder_dir), "model.decoder_layers": 1, "model.freeze_encoder_layers": 2,
        "data.train": str(train), "data.dev": str(dev), "data.title_column": "headline",
        "data.body_column": "text", "text.max_source_length": 48, "text.max_target_length": 12,
        "train.output_dir": str(out), "train.epochs": 2, "train.batch_size": 8, "train.lr": 1e-3,
        "train.head_lr": 1e-3, "generation.max_new_tokens": 8, "generation.num_beams": 2,
        "train.checkpoint_every": 0, "train.eval_batch_size": 8,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_encoder_dir):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("headline_run")
    train, dev, test = headline_files(tmp)
    out = tmp / "run"
    assert main(["train", str(CONFIG), *headline_overrides(tmp, tiny_encoder_dir, train, dev, out), "--no-eval"]) == 0
    return out, test


def test_training_writes_a_generator_folder(trained):
    out, _ = trained
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                 "xinwen.json", "config.yaml", "metrics.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin"))  # safetensors only
    # Resumable state lives apart, and after success none of it stays (train.keep_checkpoints = 0).
    assert not (out / "checkpoints").exists()
    assert (out / "README.md").is_file()  # the model card
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["num_beams"] == 2 and gen["no_repeat_ngram_size"] == 2 and gen["max_new_tokens"] == 8
    settings = json.loads((out / "xinwen.json").read_text())
    assert settings["task"] == "headline" and settings["max_source_length"] == 48
    assert settings["rerank"] is True and settings["max_chars"] == 0  # generation.* defaults, saved
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_pairs"] == 48 and len(metrics["history"]) == 2
    assert "character-level" in metrics["dev_subset"]["tokenization"]


def test_training_lowers_the_loss(trained):
    from xinwen.inference import HeadlineGenerator

    out, _ = trained
    gen = HeadlineGenerator.from_pretrained(out, device="cpu")
    assert gen.model.config.decoder.num_hidden_layers == 1
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert all(0.0 <= h["rougeL"] <= 100.0 for h in history)
    heads = gen.generate([r["body"] for r in headline_records(3, offset=48)])
    assert all(heads)


def test_eval_reports_model_and_lead_without_training_items(trained, capsys):
    out, test = trained
    assert main(["eval", str(out), "--data", str(test), "--output", str(out / "eval_test")]) == 0
    report = capsys.readouterr().out
    assert "character-level" in report and "lead baseline" in report and "| model |" in report
    assert "reference:" in report and "lead:" in report and "model:" in report
    metrics = json.loads((out / "eval_test" / "metrics.json").read_text())
    assert metrics["items"] == 6  # the two copies of training items were removed
    assert set(metrics["model"]) == {"rouge1", "rouge2", "rougeL"}
    assert metrics["lead_chars"] == json.loads((out / "xinwen.json").read_text())["lead_chars"]
    for who in ("reference", "lead", "model"):
        assert set(metrics["quality"][who]) == {"faithful", "echo", "unbalanced", "cut_off"}
        assert all(0.0 <= rate <= 1.0 for rate in metrics["quality"][who].values())
    assert "Editor's checks" in report and "| reference |" in report
    assert metrics["generation"]["rerank"] is True and metrics["generation"]["max_chars"] == 0


def test_eval_length_limit_and_plain_beam_flags(trained):
    out, test = trained
    assert main(["eval", str(out), "--data", str(test), "--output", str(out / "eval_short"),
                 "--max-chars", "4", "--no-rerank"]) == 0
    metrics = json.loads((out / "eval_short" / "metrics.json").read_text())
    assert metrics["generation"]["max_chars"] == 4 and metrics["generation"]["rerank"] is False
    rows = [json.loads(line) for line in (out / "eval_short" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(len(r["model"]) <= 4 for r in rows)
    assert all(isinstance(r["model_problems"], list) for r in rows)


def test_cached_encoder_states_equal_the_encoder_output(tiny_encoder_dir):
    """Training on cached states computes what training on token ids would (frozen parts in eval)."""
    from xinwen.training.config.sections import HeadlineModelSection
    from xinwen.training.encoder_cache import EncoderCache, pad_sources
    from xinwen.training.headline.model import freeze_for_speed, load_seq2seq

    torch.manual_seed(0)
    for frozen in (1, 2):
        cfg = HeadlineModelSection(name_or_path=str(tiny_encoder_dir), decoder_layers=1, freeze_encoder_layers=frozen)
        model, tok, _ = load_seq2seq(cfg, ["海关贸易"])
        freeze_for_speed(model, frozen, True)
        model.eval()
        ids = tok(["海关贸易出口增长", "铁路"])["input_ids"]
        cache = EncoderCache.build(model, cfg)
        assert cache.split_layer == (None if frozen == 2 else 1)
        states = cache.precompute(ids, tok.pad_token_id, 2, "unit")
        batch = pad_sources(states, tok.pad_token_id)
        cached = cache.encode(model, batch["encoder_hidden"], batch["attention_mask"]).last_hidden_state
        direct = model.get_encoder()(**pad_sources(ids, tok.pad_token_id)).last_hidden_state
        mask = batch["attention_mask"].bool()
        torch.testing.assert_close(cached[mask], direct[mask], atol=2e-3, rtol=1e-3)  # float16 cache


def test_bad_config_fails_before_any_model_loads(tmp_path, caplog):
    code = main(["train", str(CONFIG), "generation.min_new_tokens=0", "model.decoder_layers=0",
                 f"train.output_dir={tmp_path / 'x'}"])
    assert code == 2
    assert "generation.min_new_tokens" in caplog.text and "model.decoder_layers" in caplog.text
    assert not (tmp_path / "x").exists()


def test_any_seq2seq_checkpoint_trains_through_the_same_command(tmp_path):
    """A user's AutoModelForSeq2SeqLM folder (a tiny BART here) instead of the warm start."""
    from tiny_seq2seq import save_tiny_bart

    from xinwen.inference import HeadlineGenerator

    torch.set_num_threads(1)
    train, dev, _ = headline_files(tmp_path)
    bart = save_tiny_bart(tmp_path / "bart")
    out = tmp_path / "run"
    extra = {"model.freeze_encoder_layers": 0, "model.freeze_embeddings": "false", "train.epochs": 1}
    assert main(["train", str(CONFIG), *headline_overrides(tmp_path, bart, train, dev, out, **extra), "--no-eval"]) == 0
    gen = HeadlineGenerator.from_pretrained(out, device="cpu")
    assert type(gen.model).__name__ == "BartForConditionalGeneration"
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BartForConditionalGeneration"]
    heads = gen.generate([r["body"] for r in headline_records(2, offset=48)])
    assert len(heads) == 2 and all(heads)


def test_extra_training_files_join_the_training_pairs(tmp_path):
    from xinwen.training.config.sections import load_config
    from xinwen.training.data.headline import load_headline_splits

    train, dev, _ = headline_files(tmp_path)
    extra = write_jsonl(tmp_path / "paper.jsonl", [{"id": r["id"], "headline": r["title"], "text": r["body"]}
                                                   for r in headline_records(12, offset=100)])
    overrides = headline_overrides(tmp_path, "unused", train, dev, tmp_path / "out")
    alone, _, _ = load_headline_splits(load_config(CONFIG, overrides).data)
    both, dev_pairs, _ = load_headline_splits(load_config(CONFIG, [*overrides, f"data.extra_train=[{extra}]"]).data)
    assert len(both) > len(alone) and {p["id"] for p in both} - {p["id"] for p in alone} <= {f"h{i}" for i in range(100, 112)}
    assert dev_pairs  # dev is still deduplicated against the larger training set


def test_a_missing_extra_training_file_is_named(tmp_path):
    from xinwen.training.config.loading import ConfigError
    from xinwen.training.config.sections import load_config

    train, dev, _ = headline_files(tmp_path)
    overrides = headline_overrides(tmp_path, "unused", train, dev, tmp_path / "out")
    with pytest.raises(ConfigError, match=r"data.extra_train\[0\].*nosuch.jsonl"):
        load_config(CONFIG, [*overrides, "data.extra_train=[nosuch.jsonl]"])


@pytest.mark.parametrize("rate", [0.3, None])
def test_the_decoder_input_dropout_key_reaches_the_model(tmp_path, tiny_encoder_dir, rate):
    from xinwen.training.config.sections import load_config
    from xinwen.training.headline.train import HeadlineSetup, load_headline_data
    from xinwen.training.loop import KEEPS_TRAIN_MODE

    train, dev, _ = headline_files(tmp_path)
    overrides = headline_overrides(tmp_path, tiny_encoder_dir, train, dev, tmp_path / "run",
                                   **{"model.decoder_input_dropout": "null" if rate is None else rate})
    cfg = load_config(CONFIG, overrides)
    model = HeadlineSetup(cfg, load_headline_data(cfg)[0])._load_model()
    dropout = model.decoder.bert.embeddings.dropout
    assert getattr(dropout, KEEPS_TRAIN_MODE, False) is (rate is not None)
    if rate is not None:
        assert dropout.p == rate
