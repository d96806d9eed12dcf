"""Fitting the character n-gram models a folder can carry (first stage, lexical expert)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xinwen.inference.topic.ngram_model import NgramModel
from xinwen.training.topic.softmax_regression import softmax_weights


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
