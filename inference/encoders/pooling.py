"""Mean-pooled sentence features under a sequence-classification head.

A BERT-style ``...ForSequenceClassification`` reads its head off the first token (through the
pooler). e5, the offline encoder, was trained to embed a text as the mean of its token states, and
the few-shot recipe (training/topic/fewshot/) fits its head on those L2-normalised means, the
embedding the encoder was trained to give (first-token pooling was not measured against it).
Such a folder is still an ordinary transformers folder; its ``config.json`` carries
``xinwen_pooling: "mean"``, and ``load_classifier_model`` wraps the model in
``MeanPooledClassifier`` so that every xinwen path (predict, score, eval, int8, ONNX export) reads
the head the way it was fitted. A plain ``transformers.pipeline`` does not know the key and
pools the first token: use xinwen's API for such folders.
"""
from __future__ import annotations

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

POOLING_KEY = "xinwen_pooling"


def mean_pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The L2-normalised mean of the unpadded token states, one row per text."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    means = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    return torch.nn.functional.normalize(means, dim=-1)


def uses_mean_pooling(model) -> bool:
    return getattr(model.config, POOLING_KEY, None) == "mean"


class MeanPooledClassifier(torch.nn.Module):
    """``model``'s encoder and linear head with the mean of the token states between them (no
    pooler, no dropout); returns the same output type as the model it wraps."""

    def __init__(self, model):
        super().__init__()
        head = getattr(model, "classifier", None)
        if not isinstance(head, torch.nn.Linear):
            raise ValueError(f"{POOLING_KEY}=mean needs a single linear `classifier` head; "
                             f"{type(model).__name__} has {type(head).__name__}")
        self.model = model
        self.config = model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_) -> SequenceClassifierOutput:
        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SequenceClassifierOutput(logits=self.model.classifier(mean_pooled(hidden, attention_mask)))
