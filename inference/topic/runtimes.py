"""The model runtimes a ``NewsClassifier`` can run on besides a plain torch model: ONNX Runtime, and
dynamic int8 with an fp32 recheck of the rows it is unsure about.

Each looks like a transformers classifier to the classifier (``model(**batch).logits``); which
runtime a folder gets is decided in backends.py (``load_classifier``). This module imports no
classifier code, so the classifier can know the checked runtime by its type.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from xinwen.inference.settings import RECHECK_MARGIN


def fragile_rows(probs: torch.Tensor, margin: float, threshold: float = 0.0) -> torch.Tensor:
    """Rows whose answer a small change in probabilities could flip: top-two gap below ``margin``,
    or (with a confidence threshold) a top probability within ``margin`` of it.

    >>> fragile_rows(torch.tensor([[0.5, 0.45, 0.05], [0.9, 0.05, 0.05]]), margin=0.2).tolist()
    [True, False]
    """
    top = probs.topk(min(2, probs.shape[-1]), dim=-1).values
    unsure = (top[:, 0] - top[:, -1]) < margin
    if threshold > 0:
        unsure |= (top[:, 0] - threshold).abs() < margin
    return unsure


class OnnxClassifierModel:
    """Looks like a transformers classifier to ``NewsClassifier``: ``model(**batch).logits``."""

    def __init__(self, file: Path, config: Any, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self.config = config

    def eval(self) -> "OnnxClassifierModel":
        return self

    def to(self, device: Any) -> "OnnxClassifierModel":
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> SimpleNamespace:
        feeds = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(["logits"], feeds)[0]))


class CheckedInt8Model:
    """Dynamic int8 for every row, fp32 again for the rows int8 is unsure about.

    Most articles are far from a decision boundary, where int8's small probability changes
    cannot move the label; only rows whose int8 top-two probability gap (after the model's
    temperature) is below ``margin`` pay for a second, fp32 pass. Counts are kept for reports."""

    def __init__(self, fp32_model, int8_model, temperature: float, margin: float = RECHECK_MARGIN,
                 threshold: float = 0.0):
        self.fp32, self.int8 = fp32_model, int8_model
        self.config = fp32_model.config
        self.temperature, self.margin = temperature, margin
        # With a confidence threshold (below it the answer is the fallback label), a top
        # probability near the threshold is as fragile as a small top-two gap.
        self.threshold = threshold
        self.rows = self.rechecked = 0
        self._fp32_only = False  # set by fp32_pass()

    def eval(self) -> "CheckedInt8Model":
        return self

    def to(self, device: Any) -> "CheckedInt8Model":
        return self

    @contextmanager
    def fp32_pass(self):
        """Every row in fp32 inside the block: the classifier rechecks articles whose final
        answer (after its lexical expert) is fragile, which this row-level check cannot see."""
        self._fp32_only = True
        try:
            yield
        finally:
            self._fp32_only = False

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> SimpleNamespace:
        if self._fp32_only:
            self.rechecked += len(input_ids)  # rows already counted in self.rows by the int8 pass
            return SimpleNamespace(logits=self.fp32(input_ids=input_ids, attention_mask=attention_mask).logits.float())
        logits = self.int8(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        unsure = fragile_rows(torch.softmax(logits / self.temperature, dim=-1), self.margin, self.threshold)
        if unsure.any():
            rows = unsure.nonzero().squeeze(1)
            logits[rows] = self.fp32(input_ids=input_ids[rows], attention_mask=attention_mask[rows]).logits.float()
        self.rows += len(logits)
        self.rechecked += int(unsure.sum())
        return SimpleNamespace(logits=logits)

    def counts(self) -> dict[str, int]:
        """Model inputs run so far (``rows``) and how many of them went through fp32 (``rechecked``),
        for reports (``NewsClassifier.runtime_counts``)."""
        return {"rows": self.rows, "rechecked": self.rechecked}
