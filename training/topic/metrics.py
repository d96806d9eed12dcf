"""Classification figures: accuracy, macro-F1, per-class P/R/F1, confusion matrix, ECE, temperature."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def classification_report(gold: list[str], pred: list[str], labels: list[str]) -> dict:
    p, r, f, support = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    return {
        "n": len(gold),
        "accuracy": float(np.mean([g == q for g, q in zip(gold, pred)])) if gold else 0.0,
        "macro_f1": float(np.mean(f)),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(support[i])} for i, lab in enumerate(labels)},
        "confusion_matrix": {"labels": labels, "rows_gold_cols_pred":
                             confusion_matrix(gold, pred, labels=labels).tolist()},
    }


def expected_calibration_error(probs: np.ndarray, gold_idx: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == gold_idx
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def fit_temperature(logits: torch.Tensor, gold_idx: torch.Tensor) -> float:
    """Single temperature minimising dev NLL; optimised in log space so it stays positive."""
    # A plain copy: logits made under torch.inference_mode() cannot take part in autograd.
    logits, gold_idx = logits.detach().clone().float(), gold_idx.detach().clone()
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), gold_idx)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def plot_confusion(report: dict, title: str, path) -> None:
    """Confusion matrix as a PNG: colours are row-normalised (the share of each gold label's
    articles), so a rare topic's cells are as readable as `other`'s; each cell shows its count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = report["confusion_matrix"]["labels"]
    cm = np.array(report["confusion_matrix"]["rows_gold_cols_pred"])
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.1 * len(labels) + 1.5))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the gold label's articles")
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), [f"{lab} ({n})" for lab, n in zip(labels, cm.sum(axis=1))])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold (articles)")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{cm[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(f"{title}\nmacro-F1 {report['macro_f1']:.3f}, accuracy {report['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
