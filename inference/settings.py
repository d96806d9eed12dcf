"""Settings saved beside a model folder (``xinwen.json``) that decide how text reaches it.

The training config's ``text`` section is this same dataclass, so train and serve cannot drift.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

SETTINGS_FILE = "xinwen.json"

# The labels of the bundled topic task (configs/topic.yaml, builtin:inews-topics); defined once.
TOPIC_LABELS = ("industry_policy", "transport", "trade", "safety", "other")


DEFAULT_MAX_CHUNKS = 64


@dataclass
class TextSettings:
    max_length: int = 160
    # Text beyond max_length: "head" cuts, "head_tail" keeps start and end (Sun et al. 2019),
    # "chunks" scores overlapping windows (each led by the title) and averages probabilities.
    long_text: Literal["head", "head_tail", "chunks"] = "head_tail"
    tail_fraction: float = 0.25
    chunk_stride: int = 32
    # "chunks" reads at most this many windows per article (the first ones; 0 = as many as the
    # article needs). The cap bounds the cost of one huge record: a near-1 MiB article is ~3,900
    # 128-token windows for an e5-small-sized model, measured ~0.6 s each on one thread of a
    # 2-core machine at load 10 (~40 min); 64 windows took 50 s there (a quiet machine with both
    # cores is faster; not measured). 64 windows of 128 tokens cover ~7,000 characters: 99% of the
    # bundled articles read exactly what they read uncapped; longer ones are read up to there.
    max_chunks: int = DEFAULT_MAX_CHUNKS
    # e5 was trained with "query: " for symmetric tasks such as classification.
    prefix: str = "query: "

    def __post_init__(self):
        if not 16 <= self.max_length <= 4096:
            raise ValueError(f"text.max_length: expected 16..4096, got {self.max_length}")
        if not 0.0 <= self.tail_fraction < 1.0:
            raise ValueError(f"text.tail_fraction: expected 0 <= x < 1, got {self.tail_fraction}")
        if self.long_text not in ("head", "head_tail", "chunks"):
            raise ValueError(f"text.long_text: expected head, head_tail or chunks, got {self.long_text!r}")
        for name in ("chunk_stride", "max_chunks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"text.{name}: expected an integer >= 0, got {value!r}")


@dataclass
class ClassifierSettings:
    task: str = "topic"
    text: TextSettings = field(default_factory=TextSettings)
    # Temperature fitted on dev after training (Guo et al. 2017); probabilities = softmax(z / T).
    temperature: float = 1.0
    fallback_label: str = "other"
    threshold: float = 0.0

    def save(self, folder: str | Path) -> None:
        Path(folder, SETTINGS_FILE).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, folder: str | Path) -> "ClassifierSettings":
        path = Path(folder, SETTINGS_FILE)
        if not path.is_file():  # a plain HF classifier folder: use neutral defaults
            return cls(text=TextSettings(prefix=""))
        data = json.loads(path.read_text())
        saved = {k: v for k, v in data.pop("text", {}).items() if k in {f.name for f in fields(TextSettings)}}
        if saved.get("max_chunks") == 0 and saved.get("long_text", "head_tail") != "chunks":
            # Written when 0 (no cap) was the default: a folder that does not read chunks never
            # chose it, so `--long-text chunks` on it gets the cap a new folder would have.
            saved["max_chunks"] = DEFAULT_MAX_CHUNKS
        text = TextSettings(**saved)
        known = {f.name for f in fields(cls)}
        return cls(text=text, **{k: v for k, v in data.items() if k in known})


# Classifier runtimes (``xinwen score --backend``); kept here, beside the settings, so the CLI can
# list them without importing torch.
BACKENDS = ("torch", "int8", "int8-checked", "onnx", "onnx-int8")

# int8-checked scoring backend: rows whose int8 top-two probability gap is below this are
# recomputed in fp32; label flips under dynamic int8 happen where classes are close
# (docs/benchmarks_scoring.md). Also how near a confidence threshold a top probability counts
# as fragile, there and for the first stage's answers.
RECHECK_MARGIN = 0.2
