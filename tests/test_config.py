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
    assert first.startswith(f"# xinwen train {path.stem} ")


def test_dotted_overrides_are_parsed_as_yaml_and_typed():
    cfg = load_config(CONFIGS / "topic.yaml", ["train.lr=3e-5", "train.epochs=1", "data.labels=[a, b, other]"])
    assert cfg.train.lr == pytest.approx(3e-5)
    assert cfg.train.epochs == 1
    assert cfg.data.labels == ["a", "b", "other"]


def test_choices_that_mean_off_survive_yaml_reading_them_as_false():
    # YAML 1.1 reads a bare `no` as False: `train.mixed_precision=no` was refused as "got False".
    cfg = load_config(CONFIGS / "topic.yaml", ["train.mixed_precision=no", "train.class_weighting=off"])
    assert cfg.train.mixed_precision == "no" and cfg.train.class_weighting == "none"
    with pytest.raises(ConfigError, match="train.head_init"):
        load_config(CONFIGS / "topic.yaml", ["train.head_init=no"])


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


def _problems(overrides, path=CONFIGS / "topic.yaml") -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    return err.value.problems


def _only(problems: list[str], key: str) -> str:
    hits = [p for p in problems if p.startswith(key + ":")]
    assert len(hits) == 1, (key, problems)
    return hits[0]


@pytest.mark.parametrize("override, expected", [
    ("train.lr=-1e-4", "(0, 1)"), ("train.head_lr=-1e-3", "(0, 1)"), ("train.head_lr=0", "(0, 1)"),
    ("train.lr=.nan", "(0, 1)"),
    ("train.label_smoothing=2", "[0, 1)"), ("train.label_smoothing=1", "[0, 1)"),
    ("train.warmup_ratio=5", "[0, 1]"), ("train.weight_decay=-5", ">= 0"),
    ("train.checkpoint_every=-1", ">= 0"), ("train.keep_checkpoints=-1", ">= 0"),
    ("train.epochs=0", ">= 1"), ("train.batch_size=0", ">= 1"), ("train.grad_accum=0", ">= 1"),
    ("train.eval_batch_size=0", ">= 1"), ("train.early_stopping_patience=0", ">= 1"),
    ("train.max_steps=-1", ">= 0"), ("train.max_train_items=-1", ">= 0"), ("train.seed=-1", "[0, 4294967296)"),
    ("train.prior_correction=-1", ">= 0"), ("train.output_dir=", "non-empty"), ("train.output_dir=' '", "non-empty"),
])
def test_train_ranges_name_key_expected_got_and_an_example(override, expected):
    key, _, raw = override.partition("=")
    message = _only(_problems([override]), key)
    assert expected in message and "got" in message
    if "non-empty" not in expected:
        assert f"e.g. {key}=" in message  # the fix: a valid value


def test_zero_means_what_the_comments_say():
    cfg = load_config(CONFIGS / "topic.yaml", ["train.checkpoint_every=0", "train.keep_checkpoints=0",
                                               "train.max_steps=0", "train.warmup_ratio=0", "train.weight_decay=0"])
    assert cfg.train.checkpoint_every == 0 and cfg.train.keep_checkpoints == 0


@pytest.mark.parametrize("override, key", [
    ("text.chunk_stride=-4", "text.chunk_stride"), ("text.chunk_stride=128", "text.chunk_stride"),
    ("text.max_chunks=-1", "text.max_chunks"), ("text.max_length=8", "text.max_length"),
    ("text.tail_fraction=1", "text.tail_fraction"), ("threshold=1", "threshold"),
    ("model.freeze_layers=-1", "model.freeze_layers"), ("model.attention_dropout=1", "model.attention_dropout"),
    ("model.name_or_path=", "model.name_or_path"), ("data.fallback_per_epoch=-1", "data.fallback_per_epoch"),
    ("data.label_column=", "data.label_column"), ("data.train=builtin:inews", "data.train"),
    ("data.labels=[a, a, other]", "data.labels"), ("lexical.min_df=0", "lexical.min_df"),
    ("lexical.weight=50", "lexical.weight"),
])
def test_topic_ranges_and_cross_field_rules(override, key):
    assert "got" in _only(_problems([override]), key)


def test_title_and_body_must_be_different_columns():
    _only(_problems(["data.train=a.jsonl", "data.dev=b.jsonl", "data.body_column=title"]), "data.title_column / data.body_column")


@pytest.mark.parametrize("override, key", [
    ("generation.num_beams=0", "generation.num_beams"), ("generation.dev_num_beams=0", "generation.dev_num_beams"),
    ("generation.min_new_tokens=0", "generation.min_new_tokens"),
    ("generation.min_new_tokens=40", "generation.min_new_tokens"),
    ("generation.repetition_penalty=0", "generation.repetition_penalty"),
    ("generation.no_repeat_ngram_size=-1", "generation.no_repeat_ngram_size"),
    ("model.decoder_layers=0", "model.decoder_layers"), ("model.encoder_layers=-1", "model.encoder_layers"),
    ("model.freeze_encoder_layers=-2", "model.freeze_encoder_layers"),
    ("data.min_title_overlap=1.5", "data.min_title_overlap"), ("data.min_title_cjk=100", "data.min_title_cjk"),
    ("data.max_title_chars=0", "data.max_title_chars"), ("data.train=builtin:inews-topics", "data.train"),
    ("text.max_source_length=8", "text.max_source_length"), ("text.max_target_length=1000", "text.max_target_length"),
    ("train.label_smoothing=-0.1", "train.label_smoothing"),
    ("model.decoder_input_dropout=1", "model.decoder_input_dropout"),
])
def test_headline_ranges_and_cross_field_rules(override, key):
    assert "got" in _only(_problems([override], CONFIGS / "headline.yaml"), key)


def test_type_range_and_cross_field_errors_are_reported_together():
    problems = _problems(["train.epochs=many", "train.head_lr=-1", "data.labels=[a, b]", "text.chunk_stride=-4",
                          "text.tail_fraction=2", "generation.x=1"])
    assert len(problems) == 6, problems
    for key in ("train.epochs", "train.head_lr", "data.fallback_label", "text.chunk_stride", "text.tail_fraction"):
        _only(problems, key)
    # A section with a bad field still hands its good fields to the cross-field rules.
    problems = _problems(["generation.num_beams=0", "generation.min_new_tokens=40"], CONFIGS / "headline.yaml")
    assert [p.split(":")[0] for p in problems] == ["generation.num_beams", "generation.min_new_tokens"]


def test_a_partial_train_section_keeps_the_tasks_own_defaults(tmp_path):
    path = tmp_path / "h.yaml"
    path.write_text("task: headline\ntrain:\n  epochs: 1\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.train.epochs == 1
    assert (cfg.train.output_dir, cfg.train.class_weighting, cfg.train.max_eval_items) == ("runs/headline", "none", 300)
