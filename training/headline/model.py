"""Seq2seq models for the headline task: any ``AutoModelForSeq2SeqLM`` checkpoint, or an
encoder-decoder warm-started from the offline e5 encoder (Rothe, Narayan & Severyn 2020,
"Leveraging Pre-trained Checkpoints for Sequence Generation Tasks").

The warm start: encoder = the (vocabulary-pruned) e5 ``BertModel``; decoder = a
``BertLMHeadModel`` whose self-attention and feed-forward blocks are copies of e5 layers, with new
cross-attention, a copy of the encoder's word embeddings, and an output layer tied to that copy.
Decoding starts with ``<s>`` and stops at ``</s>``.

Encoder and decoder keep separate (equal) embedding tables: ``save_pretrained`` refuses tensors
shared across the two halves, and with the tables frozen (the default) sharing saves nothing but
memory.
"""
from __future__ import annotations

import copy
import logging

import torch

from xinwen.inference.encoders.loading import check_model_source
from xinwen.training.loop import KEEPS_TRAIN_MODE
from xinwen.training.vocab_pruning import prune_vocabulary

logger = logging.getLogger(__name__)


def _copy_layer_weights(target_layer, source_layer) -> None:
    """Copy a BertLayer's self-attention and feed-forward weights (cross-attention stays new)."""
    for name in ("attention", "intermediate", "output"):
        getattr(target_layer, name).load_state_dict(getattr(source_layer, name).state_dict())


def decoder_source_layers(n_encoder: int, n_decoder: int) -> list[int]:
    """Which encoder layers seed a shallow decoder: the bottom ones. Lower layers hold the
    general, lexical features a decoder needs first; the top of e5 is specialised for pooling."""
    if not 1 <= n_decoder <= n_encoder:
        raise ValueError(f"model.decoder_layers: expected 1..{n_encoder}, got {n_decoder}")
    return list(range(n_decoder))


def warm_start_encoder_decoder(encoder, decoder_layers: int, cross_attention_init: str = "random",
                               copy_attention: bool = False):
    """An ``EncoderDecoderModel`` from a ``BertModel`` encoder (Rothe et al. 2020).

    ``cross_attention_init="self"`` starts each cross-attention block as a copy of the layer's
    self-attention, so from step 0 the decoder attends to source tokens that resemble its own
    context; ``"random"`` is Rothe et al.'s fresh initialisation. ``copy_attention`` adds a
    pointer-generator head (``xinwen.inference.headline.copy_model``)."""
    from transformers import BertLMHeadModel, EncoderDecoderModel

    from xinwen.inference.headline.copy_model import CopyEncoderDecoderModel

    enc_cfg = encoder.config
    dec_cfg = copy.deepcopy(enc_cfg)
    dec_cfg.update({"is_decoder": True, "add_cross_attention": True, "num_hidden_layers": decoder_layers,
                    "tie_word_embeddings": True, "architectures": ["BertLMHeadModel"]})
    decoder = BertLMHeadModel(dec_cfg)
    decoder.bert.embeddings.load_state_dict(encoder.embeddings.state_dict())
    for target, src in zip(decoder.bert.encoder.layer, decoder_source_layers(enc_cfg.num_hidden_layers, decoder_layers)):
        _copy_layer_weights(target, encoder.encoder.layer[src])
        if cross_attention_init == "self":
            target.crossattention.load_state_dict(encoder.encoder.layer[src].attention.state_dict())
        elif cross_attention_init != "random":
            raise ValueError(f"model.cross_attention_init: expected 'self' or 'random', got {cross_attention_init!r}")
    # The output layer scores hidden states against the word embeddings; start its bias at zero.
    decoder.cls.predictions.decoder.weight = decoder.bert.embeddings.word_embeddings.weight
    torch.nn.init.zeros_(decoder.cls.predictions.bias)
    model = (CopyEncoderDecoderModel if copy_attention else EncoderDecoderModel)(encoder=encoder, decoder=decoder)
    cfg = model.config
    cfg.decoder_start_token_id = enc_cfg.bos_token_id
    cfg.bos_token_id = enc_cfg.bos_token_id
    cfg.eos_token_id = enc_cfg.eos_token_id
    cfg.pad_token_id = enc_cfg.pad_token_id
    cfg.vocab_size = dec_cfg.vocab_size
    return model


def load_seq2seq(model_cfg, corpus_texts: list[str]):
    """``(model, tokenizer, is_warm_start)`` for ``HeadlineModelSection`` ``model_cfg``.

    ``corpus_texts`` (training sources and targets) decide the kept pieces when pruning."""
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

    source = check_model_source(model_cfg.name_or_path)
    remote = model_cfg.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=remote)
    config = AutoConfig.from_pretrained(source, trust_remote_code=remote)
    if getattr(config, "is_encoder_decoder", False):
        model = AutoModelForSeq2SeqLM.from_pretrained(source, trust_remote_code=remote)
        if model_cfg.prune_vocab:
            logger.info("model.prune_vocab ignored for a seq2seq checkpoint (its output layer and "
                        "generation config index the full vocabulary)")
        return model, tokenizer, False
    if config.model_type != "bert":
        raise ValueError(
            f"model.name_or_path: {model_cfg.name_or_path!r} is a {config.model_type!r} encoder; a warm start "
            "is built from BERT-style encoders (e.g. builtin:multilingual-e5-small). Give an "
            "AutoModelForSeq2SeqLM checkpoint (fnlp/bart-base-chinese, google/mt5-small, a folder) instead"
        )
    # The pooler is unused, but EncoderDecoderModel rebuilds its encoder with one on reload: keeping
    # it avoids "missing weights" reports when the folder is loaded with AutoModelForSeq2SeqLM.
    encoder = AutoModel.from_pretrained(source, trust_remote_code=remote)
    if model_cfg.prune_vocab:
        encoder, tokenizer = prune_vocabulary(encoder, tokenizer, corpus_texts)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        token = {"bos_token_id": tokenizer.bos_token or tokenizer.cls_token,
                 "eos_token_id": tokenizer.eos_token or tokenizer.sep_token,
                 "pad_token_id": tokenizer.pad_token}[name]
        if token is None:
            raise ValueError(f"{model_cfg.name_or_path}: the tokenizer has no {name[:-9]} token; a warm start needs "
                             "start, end and padding tokens")
        setattr(encoder.config, name, tokenizer.convert_tokens_to_ids(token))
    model = warm_start_encoder_decoder(encoder, model_cfg.decoder_layers, model_cfg.cross_attention_init,
                                       model_cfg.copy_attention)
    return model, tokenizer, True


def truncate_encoder(model, n_layers: int) -> None:
    """Keep the bottom ``n_layers`` of a BERT-style encoder (a smaller, faster model when the
    middle layers of the checkpoint serve generation as well as its top ones)."""
    encoder = model.get_encoder()
    layers = encoder.encoder.layer
    if not 1 <= n_layers <= len(layers):
        raise ValueError(f"model.encoder_layers: expected 1..{len(layers)}, got {n_layers}")
    encoder.encoder.layer = layers[:n_layers]
    encoder.config.num_hidden_layers = n_layers


def freeze_for_speed(model, n_encoder_layers: int, embeddings: bool) -> None:
    """Freeze the embeddings (encoder and decoder) and the bottom encoder layers.

    On 2 CPU cores the updates of the ~25k x 384 tables and of the lower layers cost more than
    they return on a few thousand pairs; the frozen parts also run without dropout."""
    encoder = model.get_encoder()
    layers = getattr(getattr(encoder, "encoder", None), "layer", None) or getattr(encoder, "block", None) \
        or getattr(encoder, "layers", None)
    pooler = getattr(encoder, "pooler", None)
    if pooler is not None:  # unused by generation
        pooler.requires_grad_(False)
    if embeddings:
        # Every embedding table, the decoder's too: its word table is also the output layer,
        # whose weight gradient (vocabulary x hidden per step) is the largest single cost.
        model.get_input_embeddings().requires_grad_(False)
        decoder_input = model.get_decoder().get_input_embeddings() if hasattr(model, "get_decoder") else None
        if decoder_input is not None:
            decoder_input.requires_grad_(False)
        for part in (encoder, getattr(model, "decoder", None)):
            emb = getattr(getattr(part, "bert", part), "embeddings", None) if part is not None else None
            if isinstance(emb, torch.nn.Module):
                emb.requires_grad_(False)
    if n_encoder_layers:
        if layers is None:
            logger.warning("model.freeze_encoder_layers ignored: no layer list found in %s", type(encoder).__name__)
        else:
            for layer in layers[:n_encoder_layers]:
                layer.requires_grad_(False)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("trainable parameters: %.1fM of %.1fM", trainable / 1e6, total / 1e6)


def keep_decoder_input_dropout(model, p: float) -> bool:
    """Dropout at rate ``p`` on the decoder's input embeddings while training, frozen or not.

    The decoder reads the reference's own tokens (teacher forcing); dropping some of them keeps it
    from leaning on its previous token alone. A frozen embedding module otherwise runs in eval
    mode, without it (until the frozen-mode fix it ran at 0.1 by accident, and the retrained
    model peaked earlier and lower: docs/benchmarks_headline.md). False where the decoder's
    embeddings hold no dropout module (BART applies its own as a function in each layer,
    unaffected by freezing)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "decoder", None)
    embeddings = getattr(getattr(decoder, "bert", decoder), "embeddings", None)
    dropout = getattr(embeddings, "dropout", None)
    if not isinstance(dropout, torch.nn.Dropout):
        logger.info("model.decoder_input_dropout: the decoder's embeddings have no dropout module; not applied")
        return False
    dropout.p = p
    setattr(dropout, KEEPS_TRAIN_MODE, True)
    return True
