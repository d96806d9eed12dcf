"""A softmax (multinomial logistic) regression as plain arrays over *all* labels.

Three parts of training turn a scikit-learn LogisticRegression into rows of a linear layer: the
first stage and the lexical expert (character n-gram models) and the LP-FT head (a probe on the
encoder's features). scikit-learn leaves out labels absent from the data and keeps a single row
for two labels; this fills both in, one way for all three.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression


def softmax_weights(features, target: np.ndarray, n_labels: int, regularisation_c: float,
                    class_weight: str | None = None, sample_weight: np.ndarray | None = None,
                    absent_bias: float = -30.0, max_iter: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """(weights [n_labels, n_features], bias [n_labels]) of a softmax regression fitted to
    ``target``, so that softmax(x @ weights.T + bias) gives its probabilities over all labels.

    A label absent from ``target`` gets ``absent_bias`` (near-zero probability; a trainable head
    wants a milder value than a fixed model, so it can still learn the label). With two labels
    present, scikit-learn stores one row (the second label's logit minus the first's); each gets
    half of it with opposite signs, which gives the same two-way probabilities. With one label
    present, that label gets all the probability."""
    weights = np.zeros((n_labels, features.shape[1]), dtype=np.float32)
    bias = np.full(n_labels, absent_bias, dtype=np.float32)
    present = np.unique(target)
    if len(present) == 1:
        bias[present[0]] = 0.0
        return weights, bias
    model = LogisticRegression(C=regularisation_c, class_weight=class_weight, max_iter=max_iter,
                               random_state=0).fit(features, target, sample_weight=sample_weight)
    if len(model.classes_) == 2:
        first, second = model.classes_
        weights[second], bias[second] = model.coef_[0] / 2, model.intercept_[0] / 2
        weights[first], bias[first] = -model.coef_[0] / 2, -model.intercept_[0] / 2
    else:
        weights[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    return weights, bias
