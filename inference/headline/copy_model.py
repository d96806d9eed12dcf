"""An encoder-decoder that can copy source tokens (a pointer-generator head; See, Liu & Manning
2017, "Get To The Point").

Why: a frozen pretrained encoder plus a decoder whose cross-attention starts from random weights
learns, within the few hundred updates a CPU budget allows, a fluent headline language model that
ignores its source (measured in docs/benchmarks_headline.md). Chinese headlines reuse many words
of the story; a copy head gives every source token a direct path to the output, so conditioning
on the body is the easiest thing to learn rather than the hardest.

At each step the head attends over the encoder states, and mixes the decoder's vocabulary
distribution with the attention mass scattered onto the source token ids:

    p(w) = g * p_vocab(w) + (1 - g) * sum_{i: x_i = w} a_i,   g = sigmoid(W [h; context])

``logits`` returned by ``forward`` are ``log p(w)`` (a normalised log-distribution), so
``generate`` (greedy: argmax; beam search: log_softmax is the identity on them) and
``cross_entropy`` work unchanged.

The source ids travel with the encoder output (``CopySourceOutput.source_ids``), which
``generate`` expands for beam search like any other encoder tensor.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModelForSeq2SeqLM, EncoderDecoderConfig, EncoderDecoderModel
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

ARCHITECTURE = "CopyEncoderDecoderModel"
# Our own model_type: a folder saved as "encoder-decoder" would load in plain transformers as an
# EncoderDecoderModel that silently drops the copy head and writes nonsense. Under this name the
# Auto classes load the right class once xinwen registered it, and refuse the folder otherwise.
MODEL_TYPE = "xinwen-copy-encoder-decoder"


class CopyEncoderDecoderConfig(EncoderDecoderConfig):
    """An ``EncoderDecoderConfig`` under the copy model's own ``model_type``."""

    model_type = MODEL_TYPE


@dataclass
class CopySourceOutput(BaseModelOutput):
    """Encoder states plus the token ids they came from (what the copy head scatters onto)."""

    source_ids: torch.LongTensor | None = None


class CopyHead(nn.Module):
    """Attention over source positions, and the gate between generating and copying.

    With ``lexical`` scores, a position's score also includes the decoder's own vocabulary logit
    for the token there: copying starts as "the words the decoder wants next, restricted to the
    ones in the source", and the learned query/key term adds where in the source to look. The
    frozen encoder's top states are contextual; they say little about which token sits where."""

    def __init__(self, hidden: int, lexical: bool = True):
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden, bias=False)
        self.gate = nn.Linear(2 * hidden, 1)
        # Continuation bonus: a source position whose left neighbour is the token just written
        # scores higher, so a copied phrase goes on in order instead of repeating its most salient
        # character (what the head without it did: "城城城开城城"). At the first step the previous
        # token is the start token, which also opens the source: the lead is the first candidate.
        self.continuation = nn.Parameter(torch.tensor(2.0))
        self.scale = 1.0 / math.sqrt(hidden)
        self.lexical = lexical

    def forward(self, decoder_states, encoder_states, source_mask, source_ids, vocab_logits, previous_ids):
        scores = torch.einsum("bth,bsh->bts", self.query(decoder_states), self.key(encoder_states)) * self.scale
        index = source_ids[:, None, :].expand(-1, scores.shape[1], -1)
        if self.lexical:
            scores = scores + vocab_logits.gather(2, index)
        left = torch.cat([torch.full_like(source_ids[:, :1], -1), source_ids[:, :-1]], dim=1)
        follows = (left[:, None, :] == previous_ids[:, :, None]).to(scores.dtype)
        scores = scores + self.continuation * follows
        scores = scores.float().masked_fill(source_mask[:, None, :] == 0, torch.finfo(torch.float32).min)
        attention = scores.softmax(-1)
        context = attention.to(encoder_states.dtype) @ encoder_states
        gate = self.gate(torch.cat([decoder_states, context], dim=-1)).float()
        copy_mass = torch.zeros_like(vocab_logits, dtype=torch.float32).scatter_add(2, index, attention)
        # The mixture in log space: a saturated gate or a word absent from the source still gets
        # a finite log-probability with a gradient. The floor only touches words with no copy
        # mass at all, whose copy term has no gradient anyway.
        generated = F.logsigmoid(gate) + vocab_logits.float().log_softmax(-1)
        copied = F.logsigmoid(-gate) + torch.log(copy_mass.clamp_min(torch.finfo(torch.float32).tiny))
        return torch.logaddexp(generated, copied)


# transformers renamed the decoder cache from `past_key_values` to `cache` within 5.x; the model
# speaks whichever name the installed release uses (we accept transformers>=5.0).
_CACHE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"


class CopyEncoderDecoderModel(EncoderDecoderModel):
    """``EncoderDecoderModel`` + ``CopyHead``; saves and loads like its parent (safetensors), with
    ``architectures: ["CopyEncoderDecoderModel"]`` in config.json (see ``load_seq2seq_model``)."""

    config_class = CopyEncoderDecoderConfig

    def __init__(self, config=None, encoder=None, decoder=None):
        # The parent builds a plain EncoderDecoderConfig from the two parts; build ours instead.
        if config is None and encoder is not None and decoder is not None:
            config = CopyEncoderDecoderConfig.from_encoder_decoder_configs(encoder.config, decoder.config)
        elif config is not None and not isinstance(config, CopyEncoderDecoderConfig):
            config = copy_config_from(config.to_dict())
        super().__init__(config=config, encoder=encoder, decoder=decoder)
        if self.config.encoder.hidden_size != self.config.decoder.hidden_size:
            raise ValueError(f"CopyEncoderDecoderModel: encoder hidden size {self.config.encoder.hidden_size} != "
                             f"decoder hidden size {self.config.decoder.hidden_size}; the copy head compares the "
                             "two directly. Use equal sizes (the warm start does) or model.copy_attention=false")
        lexical = getattr(self.config, "copy_lexical_scores", True)
        self.copy_head = CopyHead(self.config.decoder.hidden_size, lexical=lexical)
        self.config.copy_lexical_scores = lexical
        self.config.architectures = [ARCHITECTURE]
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, CopyHead):  # a bare parameter no generic initialiser knows
            with torch.no_grad():
                module.continuation.fill_(2.0)

    def _prepare_text_encoder_decoder_kwargs_for_generation(self, inputs_tensor, model_kwargs, model_input_name,
                                                            generation_config):
        model_kwargs = super()._prepare_text_encoder_decoder_kwargs_for_generation(
            inputs_tensor, model_kwargs, model_input_name, generation_config)
        return _with_source_ids(model_kwargs, inputs_tensor)

    def _prepare_encoder_decoder_kwargs_for_generation(self, inputs_tensor, model_kwargs, model_input_name,
                                                       generation_config):
        # The same hook under its name before transformers 5.2x renamed it (we accept >=5.0).
        model_kwargs = super()._prepare_encoder_decoder_kwargs_for_generation(
            inputs_tensor, model_kwargs, model_input_name, generation_config)
        return _with_source_ids(model_kwargs, inputs_tensor)

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, cache=None, inputs_embeds=None, decoder_inputs_embeds=None, labels=None,
                use_cache=None, **kwargs):
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("CopyEncoderDecoderModel needs input_ids (or encoder_outputs with source_ids): "
                                 "the copy head scatters attention onto the source token ids")
            encoded = self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            encoder_outputs = CopySourceOutput(last_hidden_state=encoded.last_hidden_state, source_ids=input_ids)
        elif isinstance(encoder_outputs, tuple):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        source_ids = getattr(encoder_outputs, "source_ids", None)
        if source_ids is None:
            source_ids = input_ids
        if source_ids is None:
            raise ValueError("CopyEncoderDecoderModel: encoder_outputs carry no source_ids; build them with "
                             "CopySourceOutput(last_hidden_state=..., source_ids=...)")
        if attention_mask is None:
            attention_mask = torch.ones_like(source_ids)
        if decoder_input_ids is None and labels is not None:
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        if decoder_input_ids is None:
            raise ValueError("CopyEncoderDecoderModel needs decoder_input_ids or labels (the copy head reads the "
                             "previous token); decoder_inputs_embeds alone are not supported")
        if kwargs.pop("return_dict", True) is False:
            raise ValueError("CopyEncoderDecoderModel returns ModelOutput objects only (return_dict=False unsupported)")
        kwargs.pop("output_hidden_states", None)
        field = _CACHE_FIELD
        cache = kwargs.pop(field, None) if cache is None else cache
        out = super().forward(attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                              decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
                              decoder_inputs_embeds=decoder_inputs_embeds, use_cache=use_cache, **{field: cache},
                              decoder_output_hidden_states=True, **kwargs)
        log_probs = self.copy_head(out.decoder_hidden_states[-1], encoder_outputs.last_hidden_state,
                                   attention_mask, source_ids, out.logits, decoder_input_ids)
        loss = None
        if labels is not None:
            loss = nn.functional.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), labels.reshape(-1),
                                          ignore_index=-100)
        return Seq2SeqLMOutput(loss=loss, logits=log_probs, **{field: getattr(out, field)},
                               decoder_attentions=out.decoder_attentions, cross_attentions=out.cross_attentions,
                               encoder_last_hidden_state=encoder_outputs.last_hidden_state)


def _with_source_ids(model_kwargs: dict, inputs_tensor) -> dict:
    """Generation's encoder outputs, carrying the source ids the copy head scatters onto."""
    encoded = model_kwargs["encoder_outputs"]
    model_kwargs["encoder_outputs"] = CopySourceOutput(
        last_hidden_state=encoded.last_hidden_state, hidden_states=encoded.hidden_states,
        attentions=encoded.attentions, source_ids=inputs_tensor)
    return model_kwargs


def copy_config_from(data: dict) -> CopyEncoderDecoderConfig:
    """Our config from a config.json dict, also one saved before the model had its own type."""
    return CopyEncoderDecoderConfig.from_dict({**data, "model_type": MODEL_TYPE})


def load_seq2seq_model(source: str | Path, trust_remote_code: bool = False):
    """A saved headline model: ``CopyEncoderDecoderModel`` when config.json says so (its
    ``model_type``, or for folders saved before it existed, ``model_type: encoder-decoder`` with
    ``architectures: [CopyEncoderDecoderModel]``), else whatever ``AutoModelForSeq2SeqLM`` loads
    (BART, T5, a plain EncoderDecoderModel, ...)."""
    config_file = Path(source, "config.json")
    if config_file.is_file():
        data = json.loads(config_file.read_text(encoding="utf-8"))
        if data.get("model_type") == MODEL_TYPE or ARCHITECTURE in (data.get("architectures") or []):
            return CopyEncoderDecoderModel.from_pretrained(source, config=copy_config_from(data))
    return AutoModelForSeq2SeqLM.from_pretrained(source, trust_remote_code=trust_remote_code)


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModelForSeq2SeqLM`` load ``MODEL_TYPE`` folders as this class.
    Runs when this module is imported; ``import xinwen`` arranges that once transformers loads."""
    AutoConfig.register(MODEL_TYPE, CopyEncoderDecoderConfig, exist_ok=True)
    AutoModelForSeq2SeqLM.register(CopyEncoderDecoderConfig, CopyEncoderDecoderModel, exist_ok=True)


register_auto_classes()
