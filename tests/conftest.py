import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import save_tiny_classifier, save_tiny_encoder, topic_records, write_jsonl  # noqa: E402


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny_clf"))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    return save_tiny_encoder(tmp_path_factory.mktemp("tiny_enc"))


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    """A HeadlineGenerator on a tiny random seq2seq folder, shared by the headline API tests."""
    import torch
    from tiny_seq2seq import save_tiny_seq2seq

    from xinwen.inference import HeadlineGenerator

    torch.set_num_threads(1)
    return HeadlineGenerator.from_pretrained(save_tiny_seq2seq(tmp_path_factory.mktemp("tiny_s2s")), device="cpu")


@pytest.fixture()
def topic_files(tmp_path):
    recs = topic_records()
    train = write_jsonl(tmp_path / "train.jsonl", recs)
    dev = write_jsonl(tmp_path / "dev.jsonl", topic_records(2))
    return train, dev
