"""What both topic recipes do to the encoder before training: load it under a new head, freeze
its bottom, and cut each training article to the one window it is trained on."""
from __future__ import annotations

import logging

from xinwen.inference.encoders.loading import check_model_source
from xinwen.inference.encoders.pooling import POOLING_KEY
from xinwen.inference.settings import TextSettings
from xinwen.inference.text import ArticleText
from xinwen.inference.topic.classifier import encode_for_classifier

logger = logging.getLogger(__name__)


def classifier_from_encoder(cfg, labels: list[str]):
    """(model, tokenizer): ``cfg.model.name_or_path`` under a new classification head over ``labels``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = check_model_source(cfg.model.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code)
    extra_kwargs = {}
    if cfg.model.attention_dropout is not None:
        extra_kwargs["attention_probs_dropout_prob"] = cfg.model.attention_dropout
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        trust_remote_code=cfg.model.trust_remote_code, **extra_kwargs,
    )
    if getattr(model.config, POOLING_KEY, None):
        # A few-shot folder used as the starting encoder: the new head reads the first token, so the
        # saved folder must not ask for mean pooling (the few-shot recipe sets it again when it saves).
        logger.info("%s was saved with %s=%s; the new head reads the first token instead", source, POOLING_KEY,
                    getattr(model.config, POOLING_KEY))
        delattr(model.config, POOLING_KEY)
    return model, tokenizer


def freeze_bottom(model, n_layers: int, embeddings: bool) -> None:
    """Freeze the embeddings (when ``embeddings``) and the bottom ``n_layers`` encoder layers."""
    base = model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if embeddings and hasattr(base, "embeddings"):
        base.embeddings.requires_grad_(False)
    if n_layers:
        if layers is None:
            logger.warning("model.freeze_layers ignored: %s has no encoder.layer list", type(base).__name__)
            return
        for layer in layers[:n_layers]:
            layer.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("trainable parameters: %.1fM of %.1fM", trainable / 1e6,
                sum(p.numel() for p in model.parameters()) / 1e6)


def training_windows(tokenizer, articles: list[ArticleText], text: TextSettings) -> list[list[int]]:
    """Token ids of one window per article. Training reads head (or head + tail) windows;
    "chunks" applies at prediction time."""
    train_text = TextSettings(**{**text.__dict__, "long_text": "head" if text.long_text == "head" else "head_tail"})
    return [ids for _, ids in encode_for_classifier(tokenizer, articles, train_text)]
