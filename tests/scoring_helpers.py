"""Shared pieces for the scoring tests: a job runner and file makers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import topic_records

from xinwen.inference.records.readers import Fields
from xinwen.inference.scoring.job import ScoreOptions, ScoreSummary, run_score_job


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models run fastest on one thread, and a busy 2-core machine makes two threads wait on
    each other; import this fixture into a test module to use it there."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def score(analyzer, classifier_dir: Path, input_path: Path, output_path: Path, **options) -> ScoreSummary:
    fields = options.pop("fields", Fields())
    options.setdefault("progress", False)
    opts = ScoreOptions(input=input_path, output=output_path, classifier=str(classifier_dir), fields=fields,
                        **options)
    return run_score_job(opts, analyzer=analyzer)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def articles(n: int) -> list[dict]:
    """n valid articles with unique ids, cycling through the tiny topic records."""
    base = topic_records(6)
    return [{**base[i % len(base)], "id": f"a{i:04d}"} for i in range(n)]


def jsonl_lines(records: list[dict]) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in records]
