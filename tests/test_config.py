from pathlib import Path

import pytest

from xinwen.training.config.sections import HeadlineConfig, TopicConfig, load_config
from xinwen.training.config.loading import ConfigError, parse_overrides

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_starts_with_its_command(path):
    cfg = load_config(path)
    assert isinstance(cfg, (TopicConfig, HeadlineConfig))
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# xinwen train configs/" + path.name)


def test_dotted_overrides_are_parsed_as_yaml_and_typed():
    cfg = load_config(CONFIGS / "topic.yaml", ["train.lr=3e-5", "train.epochs=1", "data.labels=[a, b, other]"])
    assert cfg.train.lr == pytest.approx(3e-5)
    assert cfg.train.epochs == 1
    assert cfg.data.labels == ["a", "b", "other"]


def test_all_problems_are_reported_at_once_with_key_names():
    with pytest.raises(ConfigError) as err:
        load_config(CONFIGS / "topic.yaml", ["train.lrr=1", "text.long_text=sideways", "train.epochs=many"])
    message = str(err.value)
    assert "train.lrr" in message and "valid keys in train" in message
    assert "text.long_text" in message and "head_tail" in message
    assert "train.epochs" in message and "expected int" in message
    assert len(err.value.problems) == 3


def test_cross_field_checks_name_the_key():
    with pytest.raises(ConfigError, match="data.fallback_label"):
        load_config(None, ["data.labels=[a, b]"])
    with pytest.raises(ConfigError, match="data.dev"):
        load_config(None, ["data.train=my.jsonl"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["train.epochs"])


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
