"""The headline model under its own model_type: the Auto classes load it with its copy head after
``import xinwen``, refuse it loudly without xinwen, and folders saved before still load."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from tiny_models import save_tiny_encoder, tiny_tokenizer

from xinwen.inference.headline.copy_model import MODEL_TYPE, CopyEncoderDecoderModel, load_seq2seq_model


@pytest.fixture(scope="module")
def copy_folder(tmp_path_factory):
    from transformers import AutoModel

    from xinwen.training.headline.model import warm_start_encoder_decoder

    root = tmp_path_factory.mktemp("copy")
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    encoder = AutoModel.from_pretrained(save_tiny_encoder(root / "encoder"))
    model = warm_start_encoder_decoder(encoder, decoder_layers=1, copy_attention=True)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root / "model"


def _logits(model, ids) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(input_ids=ids, decoder_input_ids=ids[:, :2]).logits


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_saved_folder_carries_its_own_model_type(copy_folder):
    assert json.loads((copy_folder / "config.json").read_text())["model_type"] == MODEL_TYPE


def test_auto_class_loads_the_copy_model_with_its_head(copy_folder):
    from transformers import AutoModelForSeq2SeqLM

    auto = AutoModelForSeq2SeqLM.from_pretrained(copy_folder)
    assert type(auto) is CopyEncoderDecoderModel
    ids = tiny_tokenizer()(["海关贸易出口"], return_tensors="pt")["input_ids"]
    torch.testing.assert_close(_logits(auto, ids), _logits(load_seq2seq_model(copy_folder), ids))


def test_import_xinwen_before_transformers_registers_it(copy_folder):
    # A fresh interpreter: xinwen first, transformers after (the registration waits for it).
    done = _run("import sys, xinwen\nassert 'torch' not in sys.modules\n"
                "from transformers import AutoModelForSeq2SeqLM\n"
                f"print(type(AutoModelForSeq2SeqLM.from_pretrained({str(copy_folder)!r})).__name__)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("CopyEncoderDecoderModel")


def test_without_xinwen_loading_fails_loudly(copy_folder):
    done = _run("from transformers import AutoModelForSeq2SeqLM\n"
                f"AutoModelForSeq2SeqLM.from_pretrained({str(copy_folder)!r})")
    assert done.returncode != 0
    assert MODEL_TYPE in done.stderr  # transformers names the type it does not know


def test_folder_saved_as_plain_encoder_decoder_still_loads_through_xinwen(copy_folder, tmp_path):
    import shutil

    old = shutil.copytree(copy_folder, tmp_path / "old")
    data = json.loads((old / "config.json").read_text())
    data["model_type"] = "encoder-decoder"  # how folders were saved before the registration
    (old / "config.json").write_text(json.dumps(data))
    loaded = load_seq2seq_model(old)
    assert type(loaded) is CopyEncoderDecoderModel
    ids = tiny_tokenizer()(["铁路运输"], return_tensors="pt")["input_ids"]
    torch.testing.assert_close(_logits(loaded, ids), _logits(load_seq2seq_model(copy_folder), ids))
    loaded.save_pretrained(tmp_path / "resaved")  # re-saving upgrades the folder
    assert json.loads((tmp_path / "resaved" / "config.json").read_text())["model_type"] == MODEL_TYPE
