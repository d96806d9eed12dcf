"""Fitting the character n-gram models a folder can carry (first stage, lexical expert)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from ..inference.ngram_model import NgramModel


def softmax_weights(features, target: np.ndarray, n_labels: int, regularisation_c: float,
                    class_weight: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(weights [n_labels, n_features], bias [n_labels]) of a softmax regression fitted to
    ``target``, so that softmax(x @ weights.T + bias) gives its probabilities over all labels.

    A label absent from ``target`` gets a bias that keeps it near zero. With two labels present,
    scikit-learn stores one row (the second label against the first); the first label's row is
    then zero, which gives the same two-way probabilities."""
    weights = np.zeros((n_labels, features.shape[1]), dtype=np.float32)
    bias = np.full(n_labels, -30.0, dtype=np.float32)
    present = np.unique(target)
    if len(present) == 1:
        bias[present[0]] = 0.0
        return weights, bias
    model = LogisticRegression(C=regularisation_c, class_weight=class_weight, max_iter=3000,
                               random_state=0).fit(features, target)
    if len(model.classes_) == 2:
        weights[model.classes_[1]], bias[model.classes_[1]] = model.coef_[0], model.intercept_[0]
        bias[model.classes_[0]] = 0.0
    else:
        weights[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    return weights, bias


def fit_ngram_model(texts: Sequence[str], target: Sequence[int], labels: Sequence[str], regularisation_c: float,
                    max_features: int, min_df: int = 2, ngram_range: tuple[int, int] = (1, 3),
                    class_weight: str | None = None) -> NgramModel:
    """Character ``ngram_range`` TF-IDF (sublinear tf) + softmax regression on ``texts``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    # min_df cannot exceed the number of texts (tiny corpora in tests, small user sets).
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=tuple(ngram_range), sublinear_tf=True,
                                 min_df=min(min_df, len(texts)), max_features=max_features, dtype=np.float32)
    features = vectorizer.fit_transform(list(texts))
    weights, bias = softmax_weights(features, np.asarray(target), len(labels), regularisation_c, class_weight)
    vocabulary = vectorizer.get_feature_names_out().tolist()  # column order
    return NgramModel(labels, vocabulary, vectorizer.idf_, weights, bias, tuple(ngram_range))
