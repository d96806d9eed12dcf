"""The `xinwen` command's package-level surface: --version, bundled configs by name, --print-config,
clear exits on bad names and configs, log records free of colour codes."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

import xinwen
from xinwen.training.cli import main
from xinwen.training.config.loading import bundled_configs, resolve_config
from xinwen.training.config.sections import load_config

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"xinwen {xinwen.__version__}"


def test_bundled_configs_are_the_shipped_ones_and_all_load():
    bundled = bundled_configs()
    assert sorted(bundled) == sorted(p.stem for p in REPO_CONFIGS.glob("*.yaml"))
    for name, path in bundled.items():
        assert load_config(path).task in ("topic", "headline"), name


def test_configs_lists_names_and_prints_one(capsys):
    assert main(["configs"]) == 0
    listing = capsys.readouterr().out
    assert "topic " in listing and "headline " in listing
    assert main(["configs", "topic"]) == 0
    assert capsys.readouterr().out == bundled_configs()["topic"].read_text(encoding="utf-8")


def test_a_name_that_is_no_config_lists_the_valid_ones(caplog):
    assert main(["train", "topics"]) == 2
    valid = sorted(bundled_configs())
    assert {"fewshot", "headline", "topic"} <= set(valid)
    assert str(valid) in caplog.text and "topics" in caplog.text
    assert main(["configs", "nope"]) == 2


def test_a_path_still_works_and_wins_over_a_name(tmp_path, monkeypatch):
    local = tmp_path / "topic"
    local.write_text("task: headline\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert resolve_config("topic") == Path("topic")  # the file in the working directory
    assert resolve_config(str(REPO_CONFIGS / "topic.yaml")) == REPO_CONFIGS / "topic.yaml"


def test_print_config_shows_every_default_and_trains_nothing(tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert main(["train", "headline", "--print-config", "train.epochs=1", f"train.output_dir={out_dir}"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# resolved from ") and "train.epochs=1" in printed.splitlines()[0]
    resolved = yaml.safe_load(printed)
    assert resolved["train"]["epochs"] == 1
    assert resolved["train"]["keep_checkpoints"] == 0 and resolved["generation"]["repetition_penalty"] == 1.0
    assert not out_dir.exists()
    # The printed config is a config: it loads back to the same values.
    (tmp_path / "resolved.yaml").write_text(printed, encoding="utf-8")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == load_config(resolve_config("headline"), ["train.epochs=1", f"train.output_dir={out_dir}"])


def test_every_config_problem_exits_2_at_once(caplog, tmp_path):
    assert main(["train", "topic", "train.lr=-1", "train.epochs=x", "data.labels=[a, b]",
                 f"train.output_dir={tmp_path / 'run'}"]) == 2
    for key in ("train.lr", "train.epochs", "data.fallback_label"):
        assert key in caplog.text
    assert not (tmp_path / "run").exists()


def test_log_records_lose_colour_codes_when_logging_to_a_file(caplog):
    factory = logging.getLogRecordFactory()
    try:
        assert main(["configs"]) == 0  # sets up logging; pytest's stderr is no terminal
        logging.getLogger("transformers.modeling_utils").warning("\x1b[1m%s LOAD REPORT\x1b[0m", "\x1b[31mBert")
        assert caplog.records[-1].getMessage() == "Bert LOAD REPORT"
    finally:
        logging.setLogRecordFactory(factory)
