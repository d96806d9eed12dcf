"""Compute the frozen part of the encoder once per item instead of once per item per epoch.

With the embeddings and the bottom k encoder layers frozen, their output for a training item
never changes, yet a plain loop recomputes it every epoch - on 2 CPU cores most of an epoch.
``EncoderCache`` stores those states (float16, ~0.2 MB per 256-token item) and, per batch, runs
only the trainable top layers on them. Frozen parts run in eval mode (no dropout) either way, so
training on cached states computes exactly what training on token ids would.

Supported: any seq2seq model whose encoder is entirely frozen (the cache holds its final
states), and BERT-style encoders (the builtin warm start) frozen up to a layer, as the encoder of
a headline model or the body of a topic classifier (the few-shot recipe trains on cached states).
"""
from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from xinwen.inference.batching import pad_batch, pad_states
from xinwen.inference.headline.copy_model import CopySourceOutput

logger = logging.getLogger(__name__)


def _frozen(module: torch.nn.Module) -> bool:
    return not any(p.requires_grad for p in module.parameters())


def encoder_of(model) -> torch.nn.Module:
    """The part of ``model`` that reads the source text: a seq2seq model's encoder, or the body
    (embeddings + layer stack) of an encoder-only model such as a sequence classifier."""
    if getattr(model.config, "is_encoder_decoder", False):
        return model.get_encoder()
    return model.base_model


def pad_sources(items: list, pad_id: int) -> dict[str, torch.Tensor]:
    """Token-id lists -> input_ids/attention_mask; cached state tensors -> encoder_hidden/mask."""
    if isinstance(items[0], torch.Tensor):
        hidden, mask = pad_states(items)
        return {"encoder_hidden": hidden, "attention_mask": mask}
    return pad_batch(items, pad_id)


class EncoderCache:
    def __init__(self, model, split_layer: int | None):
        self.model = model
        # None: the whole encoder is frozen and cached; k: cache the input of BERT layer k.
        self.split_layer = split_layer

    @classmethod
    def build(cls, model, model_cfg) -> "EncoderCache | None":
        encoder = encoder_of(model)
        if _frozen(encoder):
            logger.info("encoder fully frozen: its outputs are computed once and cached")
            return cls(model, None)
        layers = getattr(getattr(encoder, "encoder", None), "layer", None)
        embeddings = getattr(encoder, "embeddings", None)
        if layers is None or embeddings is None or not _frozen(embeddings):
            logger.info("model.cache_frozen_encoder: nothing cacheable (embeddings train or the encoder is "
                        "not BERT-style); training on token ids")
            return None
        k = 0
        while k < len(layers) and _frozen(layers[k]):
            k += 1
        if k == 0:
            logger.info("model.cache_frozen_encoder: no frozen encoder layer; caching embeddings only")
        logger.info("caching the output of the %d frozen encoder layer(s); %d layer(s) train", k, len(layers) - k)
        return cls(model, k)

    @torch.inference_mode()
    def precompute(self, encoded: list[list[int]], pad_id: int, batch_size: int, name: str) -> list[torch.Tensor]:
        """States after the frozen part, one float16 tensor (length x hidden) per item."""
        model = self.model
        encoder = encoder_of(model)
        was_training = encoder.training
        encoder.eval()
        device = next(model.parameters()).device
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        states: list[torch.Tensor | None] = [None] * len(encoded)
        for s in tqdm(range(0, len(order), batch_size), desc=f"encoding {name}", dynamic_ncols=True,
                       disable=None):  # a terminal only; never into a log file
            chunk = order[s : s + batch_size]
            batch = {k: v.to(device) for k, v in pad_sources([encoded[i] for i in chunk], pad_id).items()}
            if self.split_layer is None:
                hidden = encoder(**batch).last_hidden_state
            else:
                hidden = encoder(**batch, output_hidden_states=True).hidden_states[self.split_layer]
            for row, i in enumerate(chunk):
                states[i] = hidden[row, : len(encoded[i])].to(torch.float16).cpu().clone()
        encoder.train(was_training)
        return states  # type: ignore[return-value]

    def encode(self, model, hidden: torch.Tensor, mask: torch.Tensor,
               source_ids: torch.Tensor | None = None) -> CopySourceOutput:
        """Encoder output for a batch of cached states: the trainable top layers, if any. The
        source ids ride along for models with a copy head (others ignore them)."""
        if self.split_layer is None:
            return CopySourceOutput(last_hidden_state=hidden, source_ids=source_ids)
        from transformers.masking_utils import create_bidirectional_mask

        encoder = encoder_of(model)
        layers = encoder.encoder.layer[self.split_layer :]
        attention_mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in layers:
            hidden = layer(hidden, attention_mask)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        return CopySourceOutput(last_hidden_state=hidden, source_ids=source_ids)
