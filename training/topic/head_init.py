"""Start the classification head from a linear probe instead of random weights (LP-FT).

Kumar et al. 2022 ("Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution") show that fine-tuning under a random head first pushes large, noisy
gradients into the pretrained layers, bending features the head has not learnt to use yet; fitting
the head on the frozen features first and then fine-tuning everything keeps more of the
pretrained representation, which matters most for text unlike the training data (here: formal
newspaper articles when the corpus is web news). The probe costs one forward pass over one
epoch's training items.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from xinwen.inference.topic.classifier import pad_batch
from xinwen.training.topic.softmax_regression import softmax_weights

logger = logging.getLogger(__name__)


def _pooled_head(model) -> torch.nn.Linear | None:
    """The head as a single Linear on the base model's pooled output, or None for other heads
    (e.g. RoBERTa's dense + out_proj head), which the probe does not handle."""
    head = getattr(model, "classifier", None)
    pooler = getattr(model.base_model, "pooler", None)
    if isinstance(head, torch.nn.Linear) and pooler is not None:
        return head
    return None


@torch.inference_mode()
def pooled_features(model, encoded: list[list[int]], indices: list[int], pad_id: int,
                    batch_size: int = 32) -> np.ndarray:
    """Pooled outputs of the (eval-mode) base model for ``encoded[i]``, i in ``indices``, in order."""
    order = sorted(range(len(indices)), key=lambda k: len(encoded[indices[k]]))  # less padding
    device = next(model.parameters()).device
    features = np.zeros((len(indices), model.config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="linear probe features", unit="batch",
                              disable=None):  # a terminal only; never into a log file
            rows = order[start:start + batch_size]
            batch = pad_batch([encoded[indices[k]] for k in rows], pad_id)
            out = model.base_model(**{k: v.to(device) for k, v in batch.items()})
            features[rows] = out.pooler_output.float().cpu().numpy()
    finally:
        model.train(was_training)
    return features


def linear_probe_init(model, encoded: list[list[int]], labels: list[int], indices: list[int],
                      class_weights: torch.Tensor | None, pad_id: int, l2: float = 1.0,
                      batch_size: int = 32) -> bool:
    """Fit a multinomial logistic regression on frozen pooled features of ``indices`` and copy it
    into the classification head. Returns False (head left as is) for unsupported heads."""
    head = _pooled_head(model)
    if head is None:
        logger.warning("train.head_init=linear_probe needs a single linear head on a pooler "
                       "(BERT-style); %s keeps its random head", type(model).__name__)
        return False
    y = np.array([labels[i] for i in indices])
    if len(np.unique(y)) < 2:
        logger.warning("linear probe: only one class among the training items; random head kept")
        return False
    features = pooled_features(model, encoded, indices, pad_id, batch_size)
    # The same per-class weights as the fine-tuning loss: the probe should learn the same task.
    sample_weight = None if class_weights is None else class_weights.numpy()[y]
    # A label absent from the probe's items starts unlikely but learnable (-10, not -30).
    weight, bias = softmax_weights(features, y, head.out_features, 1.0 / l2, sample_weight=sample_weight,
                                   absent_bias=-10.0, max_iter=2000)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    accuracy = float(((features @ weight.T + bias).argmax(1) == y).mean())
    logger.info("linear probe on %d frozen pooled features: training accuracy %.3f", len(y), accuracy)
    return True
