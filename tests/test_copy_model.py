"""The copy (pointer-generator) headline model: a proper distribution, save/load, generation with
cached or fresh encoder states, and that copying lets it learn a source-dependent headline."""
from __future__ import annotations

import pytest
import torch
from tiny_models import save_tiny_encoder, tiny_tokenizer

from xinwen.inference.headline.copy_model import CopyEncoderDecoderModel, CopySourceOutput, load_seq2seq_model


def _copy_model(tmp_path, seed: int = 0):
    from transformers import AutoModel, GenerationConfig

    from xinwen.training.headline.model import warm_start_encoder_decoder

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    encoder = AutoModel.from_pretrained(save_tiny_encoder(tmp_path / "encoder", seed=seed))
    for name, token in (("bos_token_id", "<s>"), ("eos_token_id", "</s>"), ("pad_token_id", "<pad>")):
        setattr(encoder.config, name, tok.convert_tokens_to_ids(token))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = warm_start_encoder_decoder(encoder, decoder_layers=1, copy_attention=True)
    model.generation_config = GenerationConfig(
        num_beams=2, max_new_tokens=6, min_new_tokens=2, do_sample=False,
        decoder_start_token_id=model.config.decoder_start_token_id, bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id)
    return model, tok, before


def test_warm_start_keeps_the_pretrained_encoder_and_outputs_a_distribution(tmp_path):
    model, tok, before = _copy_model(tmp_path)
    assert isinstance(model, CopyEncoderDecoderModel)
    for name, value in model.encoder.state_dict().items():
        assert torch.equal(value, before[name]), name  # adding the head re-initialised nothing
    x = tok(["海关贸易出口", "铁路"], return_tensors="pt", padding=True)
    out = model(input_ids=x["input_ids"], attention_mask=x["attention_mask"], decoder_input_ids=x["input_ids"][:, :3])
    torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(2, 3), atol=1e-4, rtol=0)


def test_padding_tokens_get_no_copy_mass(tmp_path):
    model, tok, _ = _copy_model(tmp_path)
    model.eval()
    x = tok(["海关贸易出口增长", "铁"], return_tensors="pt", padding=True)
    start = torch.full((2, 1), model.config.decoder_start_token_id)
    alone = tok(["铁"], return_tensors="pt")
    padded = model(input_ids=x["input_ids"], attention_mask=x["attention_mask"], decoder_input_ids=start).logits[1]
    single = model(input_ids=alone["input_ids"], attention_mask=alone["attention_mask"],
                   decoder_input_ids=start[:1]).logits[0]
    torch.testing.assert_close(padded, single, atol=1e-4, rtol=1e-4)


def test_save_load_and_generation_from_cached_states_match_token_ids(tmp_path):
    model, tok, _ = _copy_model(tmp_path)
    model.eval()
    model.save_pretrained(tmp_path / "saved")
    loaded = load_seq2seq_model(tmp_path / "saved").eval()
    assert type(loaded) is CopyEncoderDecoderModel
    x = tok(["海关贸易出口增长", "铁路运输"], return_tensors="pt", padding=True)
    direct = model.generate(input_ids=x["input_ids"], attention_mask=x["attention_mask"])
    assert torch.equal(loaded.generate(input_ids=x["input_ids"], attention_mask=x["attention_mask"]), direct)
    with torch.inference_mode():
        states = model.get_encoder()(**x).last_hidden_state
    cached = CopySourceOutput(last_hidden_state=states, source_ids=x["input_ids"])
    assert torch.equal(model.generate(encoder_outputs=cached, attention_mask=x["attention_mask"]), direct)
    with pytest.raises(ValueError, match="source_ids"):
        model(encoder_outputs=(states,), attention_mask=x["attention_mask"], decoder_input_ids=x["input_ids"][:, :1])


def test_copy_head_learns_to_repeat_an_unseen_source_word(tmp_path):
    """Targets = the source's first two characters: with copying this is learnable for
    character pairs never seen in training, which a source-blind decoder cannot do."""
    model, tok, _ = _copy_model(tmp_path, seed=1)
    chars = list("海关贸易出口进铁路高列车航班机场港物流运输事故安全火灾爆炸救援消防政策产业规划园区招商企")
    pairs = [(a, b) for a in chars for b in chars if a != b]
    rng = torch.Generator().manual_seed(0)
    order = torch.randperm(len(pairs), generator=rng).tolist()
    train, test = [pairs[i] for i in order[:600]], [pairs[i] for i in order[600:640]]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    start = model.config.decoder_start_token_id
    eos = model.config.eos_token_id
    for step in range(150):
        batch = [train[(step * 16 + k) % len(train)] for k in range(16)]
        src = tok([a + b + "的新闻" for a, b in batch], return_tensors="pt", padding=True)
        tgt = tok([a + b for a, b in batch], add_special_tokens=False)["input_ids"]
        labels = torch.tensor([t + [eos] for t in tgt])
        dec_in = torch.cat([torch.full((len(batch), 1), start), labels[:, :-1]], dim=1)
        loss = model(input_ids=src["input_ids"], attention_mask=src["attention_mask"], decoder_input_ids=dec_in,
                     labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    src = tok([a + b + "的新闻" for a, b in test], return_tensors="pt", padding=True)
    out = model.generate(input_ids=src["input_ids"], attention_mask=src["attention_mask"], num_beams=1,
                         max_new_tokens=3, min_new_tokens=1)
    decoded = [tok.decode(o, skip_special_tokens=True).replace(" ", "") for o in out]
    hits = sum(d.startswith(a + b) for d, (a, b) in zip(decoded, test))
    assert hits >= 0.8 * len(test), list(zip(decoded, test))[:5]


@pytest.mark.parametrize("rate", [0.3, None])
def test_frozen_decoder_inputs_keep_their_dropout_only_when_asked(tmp_path, rate):
    """model.decoder_input_dropout: the frozen decoder embeddings drop tokens in training mode
    (the rest of the frozen model does not); None leaves them as frozen parts run, without."""
    from xinwen.training.headline.model import freeze_for_speed, keep_decoder_input_dropout
    from xinwen.training.loop import training_mode

    model, tok, _ = _copy_model(tmp_path)
    freeze_for_speed(model, n_encoder_layers=2, embeddings=True)
    if rate is not None:
        assert keep_decoder_input_dropout(model, rate)
    training_mode(model)
    embeddings = model.decoder.bert.embeddings
    assert not model.encoder.training and not embeddings.training  # frozen parts: eval mode
    ids = tok(["海关贸易出口增长铁路"], return_tensors="pt")["input_ids"]
    runs = [embeddings(input_ids=ids) for _ in range(2)]
    assert embeddings.dropout.training is (rate is not None)
    assert torch.equal(runs[0], runs[1]) is (rate is None)  # dropout draws differ between runs
    if rate is not None:
        assert embeddings.dropout.p == rate
        model.eval()  # generation and dev scoring: no dropout anywhere
        assert torch.equal(embeddings(input_ids=ids), embeddings(input_ids=ids))
