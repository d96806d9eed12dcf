"""The confusion PNG: row-normalised colours (a rare label's diagonal is as dark as a common one's),
a colour bar, and the counts in the cells."""
from __future__ import annotations

import numpy as np
import pytest

from xinwen.training.topic.metrics import classification_report, plot_confusion


def test_rare_label_cells_are_coloured_by_share_and_show_counts(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gold = ["other"] * 95 + ["trade"] * 5
    pred = ["other"] * 95 + ["trade"] * 4 + ["other"]
    report = classification_report(gold, pred, ["trade", "other"])
    seen = {}
    monkeypatch.setattr(plt, "close", lambda fig: seen.setdefault("fig", fig))
    plot_confusion(report, "dev", tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 1000
    fig = seen["fig"]
    matrix_ax = fig.axes[0]
    shown = np.asarray(matrix_ax.images[0].get_array())
    assert shown[0, 0] == pytest.approx(0.8) and shown[1, 1] == pytest.approx(1.0)  # rows, not raw counts
    assert len(fig.axes) == 2  # the colour bar
    texts = {t.get_text() for t in matrix_ax.texts}
    assert {"4\n80%", "1\n20%", "95\n100%"} <= texts


def test_temperature_fits_on_logits_made_in_inference_mode():
    import torch

    from xinwen.training.topic.metrics import fit_temperature

    torch.manual_seed(0)
    with torch.inference_mode():  # how NewsClassifier.probabilities returns them
        gold = torch.randint(0, 3, (64,))
        logits = torch.nn.functional.one_hot(gold, 3).float() * 8 + torch.randn(64, 3)
        wrong = (gold + 1) % 3
        gold = torch.where(torch.arange(64) % 4 == 0, wrong, gold)  # a quarter confidently wrong
    assert 1.0 < fit_temperature(logits, gold) < 20.0  # over-confident logits: T > 1
