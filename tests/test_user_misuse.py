"""A new user's ordinary mistakes, as found by probing the installed wheel from an empty directory:
each gets a clear error (exit 2 on the CLI) naming the flag, key, file or article, and nothing
the user owns is created, replaced or deleted. Tiny random models only."""
from __future__ import annotations

import logging

import pytest
import torch
from tiny_models import topic_records, write_jsonl

from xinwen.inference import HeadlineGenerator, NewsClassifier
from xinwen.inference.encoders.loading import ModelFolderError, check_model_source, pick_device
from xinwen.inference.topic.first_stage import remove_first_stage
from xinwen.training.cli import main
from xinwen.training.config.loading import ConfigError, load_yaml
from xinwen.training.config.sections import load_config
from xinwen.training.data.files import DataError, load_labelled


# -- configs ---------------------------------------------------------------------------------------
def test_a_config_that_is_not_utf8_is_a_config_error(tmp_path, caplog):
    path = tmp_path / "mine.yaml"
    path.write_bytes(b"\xff\xfe\x00train: 1")
    with pytest.raises(ConfigError, match="not UTF-8.*save it as UTF-8"):
        load_yaml(path)
    assert main(["train", str(path), "--print-config"]) == 2
    assert "mine.yaml" in caplog.text


def test_a_wrong_type_names_the_key_and_a_valid_example(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  epochs: two\n  lr: [1]\ntext:\n  long_text: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = err.value.problems
    assert any(p.startswith("train.epochs: expected int, got 'two'") and "e.g. train.epochs=" in p for p in problems)
    assert any(p.startswith("train.lr:") and "e.g. train.lr=" in p for p in problems)
    assert any(p.startswith("text.long_text:") and "e.g. text.long_text=head_tail" in p for p in problems)


def test_train_without_a_config_asks_for_the_config_only(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "required: config" in err and "overrides" not in err.split("error:")[1]


def test_an_output_dir_that_is_a_file_is_refused_and_kept(tmp_path, tiny_encoder_dir, topic_files, caplog):
    train, dev = topic_files
    mine = tmp_path / "notes.txt"
    mine.write_text("mine", encoding="utf-8")
    code = main(["train", "topic", f"model.name_or_path={tiny_encoder_dir}", "model.prune_vocab=false",
                 f"data.train={train}", f"data.dev={dev}", f"train.output_dir={mine}", "--overwrite"])
    assert code == 2
    assert "train.output_dir" in caplog.text and "is a file" in caplog.text
    assert mine.read_text(encoding="utf-8") == "mine"


def test_a_training_row_without_a_label_says_the_field_is_missing(tmp_path):
    recs = topic_records(1)
    del recs[1]["label"]
    recs[3]["label"] = None
    path = write_jsonl(tmp_path / "t.jsonl", recs)
    with pytest.raises(DataError) as err:
        load_labelled(path, "title", "body", "label", "id", ["industry_policy", "transport", "trade", "safety", "other"])
    assert "t.jsonl:2: no label (field 'label' is missing, null or blank); expected one of" in str(err.value)
    assert "t.jsonl:4: no label" in str(err.value) and "label None" not in str(err.value)


# -- model folders on the CLI ----------------------------------------------------------------------
def test_eval_of_a_bare_encoder_is_exit_2_and_creates_nothing(tiny_encoder_dir, tmp_path, caplog):
    before = sorted(p.name for p in tiny_encoder_dir.iterdir())
    assert main(["eval", str(tiny_encoder_dir)]) == 2
    assert "holds no trained classifier" in caplog.text
    assert sorted(p.name for p in tiny_encoder_dir.iterdir()) == before  # no empty eval/ left in it
    missing = tmp_path / "runz"
    assert main(["eval", str(missing)]) == 2
    assert not missing.exists()


def test_eval_output_that_is_a_file_is_refused(tiny_classifier_dir, tmp_path, caplog):
    mine = tmp_path / "report.txt"
    mine.write_text("mine", encoding="utf-8")
    assert main(["eval", str(tiny_classifier_dir), "--output", str(mine)]) == 2
    assert "--output" in caplog.text and "is a file" in caplog.text
    assert mine.read_text(encoding="utf-8") == "mine"


def test_headline_flags_on_a_topic_model_are_exit_2(tiny_classifier_dir, caplog):
    assert main(["eval", str(tiny_classifier_dir), "--max-chars", "12"]) == 2
    assert "--max-chars/--no-rerank apply to headline models" in caplog.text


@pytest.mark.parametrize("flags, says", [
    (["--output", "FILE"], "is a file"),
    (["--eval-limit", "0"], "--eval-limit"),
    (["--eval-data", "nosuch.jsonl"], "--eval-data"),
])
def test_export_checks_its_request_before_any_work(tiny_classifier_dir, tmp_path, caplog, flags, says):
    mine = tmp_path / "mine.bin"
    mine.write_text("mine", encoding="utf-8")
    out = tmp_path / "out"
    flags = [str(mine) if f == "FILE" else f for f in flags]
    if "--output" not in flags:
        flags += ["--output", str(out)]
    assert main(["export", str(tiny_classifier_dir), "--int8", *flags]) == 2
    assert says in caplog.text
    assert mine.read_text(encoding="utf-8") == "mine" and not out.exists()


def test_export_of_a_bare_encoder_is_exit_2(tiny_encoder_dir, tmp_path, caplog):
    assert main(["export", str(tiny_encoder_dir), "--int8", "--output", str(tmp_path / "out")]) == 2
    assert "holds no trained classifier" in caplog.text and not (tmp_path / "out").exists()


def test_removing_a_first_stage_that_is_not_there_says_so(tmp_path, caplog):
    assert remove_first_stage(tmp_path) is False
    with caplog.at_level(logging.INFO):
        assert main(["first-stage", str(tmp_path), "--remove"]) == 0
    assert "holds no first stage" in caplog.text and "removed the first stage" not in caplog.text


# -- the Python API --------------------------------------------------------------------------------
@pytest.mark.parametrize("path, error, says", [
    (None, TypeError, "expected a folder path"),
    (5, TypeError, "got int"),
    ("", FileNotFoundError, "the path is empty"),
    ("FILE", FileNotFoundError, "is a file"),
])
def test_from_pretrained_on_what_is_no_folder(tmp_path, path, error, says):
    if path == "FILE":
        path = tmp_path / "articles.jsonl"
        path.write_text("{}\n", encoding="utf-8")
    with pytest.raises(error, match=says):
        NewsClassifier.from_pretrained(path)
    with pytest.raises(error, match=says):
        check_model_source(path, what="x")


def test_a_bad_device_is_named(tiny_classifier_dir):
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda'.*'potato'"):
        NewsClassifier.from_pretrained(tiny_classifier_dir, device="potato")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is visible"):
            pick_device("cuda")
    assert pick_device("cpu") == torch.device("cpu")


def test_predict_refuses_bytes_whole_and_names_a_mapping_without_title_or_body(tiny_classifier_dir):
    clf = NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu")
    with pytest.raises(TypeError, match="article is bytes.*decode it first"):
        clf.predict("海关新闻".encode("utf-8"))
    with pytest.raises(TypeError, match="article at index 1 is bytes"):
        clf.predict(["海关", b"x"])
    with pytest.raises(ValueError, match=r"no 'title' or 'body' key, only \['headline', 'text'\]"):
        clf.predict({"text": "正文", "headline": "标题"})
    assert clf.predict([]) == []


def test_headline_generator_refuses_a_classifier_or_encoder_folder(tiny_classifier_dir, tiny_encoder_dir):
    with pytest.raises(ModelFolderError, match="holds a topic classifier"):
        HeadlineGenerator.from_pretrained(tiny_classifier_dir)
    with pytest.raises(ModelFolderError, match="holds no headline generator"):
        HeadlineGenerator.from_pretrained(tiny_encoder_dir)


@pytest.mark.parametrize("overrides, says", [
    ({"num_beams": 0}, "num_beams: expected an integer >= 1, got 0"),
    ({"num_beams": "2"}, "num_beams: expected an integer >= 1, got '2'"),
    ({"max_new_tokens": -5}, "max_new_tokens: expected an integer >= 1"),
    ({"max_new_tokens": 10**9}, "max_new_tokens: expected at most 127"),
    ({"num_return_sequences": 2}, "one headline per article"),
])
def test_generate_checks_its_generation_settings(tiny_generator, overrides, says):
    with pytest.raises(ValueError, match=says):
        tiny_generator.generate("海关总署今天发布进出口数据", **overrides)


def test_generate_reaches_the_longest_allowed_headline(tiny_generator):
    longest = tiny_generator.model.config.decoder.max_position_embeddings - 1
    ids = tiny_generator.generate_ids(tiny_generator.encode(["海关总署今天发布进出口数据"]), num_beams=1,
                                      max_new_tokens=longest, min_new_tokens=longest)
    assert len(ids[0]) == longest + 1  # the start token and every new one


@pytest.mark.parametrize("command", [["eval"], ["lexical"], ["first-stage"]])
def test_relative_data_paths_of_a_folder_run_elsewhere_name_the_config(tmp_path, monkeypatch, caplog, command):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("task: topic\ndata:\n  train: train.jsonl\n  dev: dev.jsonl\n",
                                        encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main([*command, str(folder)]) == 2
    assert f"{folder / 'config.yaml'} names" in caplog.text and "data.dev='dev.jsonl'" in caplog.text
    assert "run from the directory the model was trained in" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml"]


def test_training_into_a_folder_of_the_users_files_is_refused_not_overwritten(tmp_path, tiny_encoder_dir,
                                                                                topic_files, caplog):
    from test_train_topic import tiny_config

    from xinwen.training.run_folder import RunFolder

    train, dev = topic_files
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "README.md").write_text("# My project\n", encoding="utf-8")
    (project / "notes.txt").write_text("mine", encoding="utf-8")
    cfg = tiny_config(tiny_encoder_dir, train, dev, project)
    with pytest.raises(ConfigError, match=r"holds files training would replace: \['README.md'\].*--overwrite"):
        RunFolder.claim(cfg, "fingerprint")
    assert (project / "README.md").read_text(encoding="utf-8") == "# My project\n"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "notes.txt"]
    only_mine = tmp_path / "notes_only"
    only_mine.mkdir()
    (only_mine / "notes.txt").write_text("mine", encoding="utf-8")
    assert RunFolder.claim(tiny_config(tiny_encoder_dir, train, dev, only_mine), "fp").finished is False
    assert RunFolder.claim(cfg, "fingerprint", overwrite=True).finished is False  # asked for: allowed
    assert (project / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_an_unknown_option_before_the_command_is_named(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--bogus", "train", "topic"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized option --bogus" in err and "xinwen COMMAND --help" in err
    assert "required" not in err  # not "the following arguments are required: command"


@pytest.mark.parametrize("weight", ["50", "-0.5", "nan", "half"])
def test_lexical_weight_out_of_range_is_refused_before_any_work(tmp_path, capsys, weight):
    with pytest.raises(SystemExit) as done:
        main(["lexical", str(tmp_path), "--weight", weight])
    assert done.value.code == 2
    assert f"argument --weight: expected a number from 0 (no expert) to 4, got '{weight}'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_xinwens_own_options_still_work_before_the_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--verb", "--version"])  # an abbreviation, as argparse allows
    assert done.value.code == 0 and capsys.readouterr().out.startswith("xinwen ")


def test_the_top_level_option_list_is_the_parsers():
    from xinwen.training.cli import TOP_LEVEL_OPTIONS, build_parser

    assert set(TOP_LEVEL_OPTIONS) == {o for action in build_parser()._actions for o in action.option_strings}
