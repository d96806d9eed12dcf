"""HeadlineGenerator API on a tiny random seq2seq: shapes in = shapes out, clean text, errors."""
from __future__ import annotations

import re

import pytest
from tiny_seq2seq import headline_records, save_tiny_seq2seq

from xinwen.inference import HeadlineGenerator

CJK_SPACE = re.compile(r"[\u4e00-\u9fff]\s+[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def bodies():
    return [r["body"][: 20 + 7 * i] for i, r in enumerate(headline_records(7))]


def test_one_body_in_one_string_out_without_spaces_between_chinese(tiny_generator, bodies):
    out = tiny_generator.generate(bodies[0])
    assert isinstance(out, str) and out.strip()
    assert not CJK_SPACE.search(out)
    # The raw decode of this tokenizer does put spaces between pieces: the cleanup is needed.
    raw = tiny_generator.tokenizer.decode(tiny_generator.tokenizer("海关 贸易", add_special_tokens=False)["input_ids"])
    assert CJK_SPACE.search(raw)


def test_list_in_list_out_and_empty_list(tiny_generator, bodies):
    out = tiny_generator.generate(bodies, batch_size=3)
    assert isinstance(out, list) and len(out) == len(bodies)
    assert all(isinstance(h, str) and h and not CJK_SPACE.search(h) for h in out)
    assert tiny_generator.generate([]) == []


def test_mappings_use_their_body(tiny_generator, bodies):
    assert tiny_generator.generate({"title": "随便什么标题", "body": bodies[2]}) == tiny_generator.generate(bodies[2])


def test_deterministic_and_batching_does_not_change_greedy_output(tiny_generator, bodies):
    batched = tiny_generator.generate(bodies, batch_size=4, num_beams=1)
    assert tiny_generator.generate(bodies, batch_size=4, num_beams=1) == batched
    assert [tiny_generator.generate(b, num_beams=1) for b in bodies] == batched


def test_generation_settings_are_saved_and_overridable_per_call(tiny_generator, bodies):
    saved = tiny_generator.model.generation_config
    assert saved.num_beams == 2 and saved.no_repeat_ngram_size == 3
    short = tiny_generator.tokenizer(tiny_generator.generate(bodies[0], max_new_tokens=3, min_new_tokens=1),
                                add_special_tokens=False)["input_ids"]
    assert len(short) <= 3 + 1  # a leading word-boundary piece may be re-added by re-tokenizing
    assert tiny_generator.model.generation_config.max_new_tokens == 8  # the override did not stick
    with pytest.raises(TypeError, match="num_beam"):
        tiny_generator.generate(bodies[0], num_beam=2)


def test_never_empty_even_when_the_model_emits_only_special_tokens(tiny_generator, bodies):
    eos = tiny_generator.model.generation_config.eos_token_id
    out = tiny_generator.generate(bodies[0], min_new_tokens=0, max_new_tokens=1, forced_bos_token_id=eos)
    assert out  # fell back to the lead sentence
    assert tiny_generator.decode([eos, eos], "海关发布数据。其他内容") == "海关发布数据"


def test_bad_inputs_name_the_problem(tiny_generator, bodies):
    with pytest.raises(TypeError, match="index 1"):
        tiny_generator.generate([bodies[0], 42])
    with pytest.raises(TypeError, match="str"):
        tiny_generator.generate(42)
    # One definition of an article (inference/text.py): a title and/or a body, else this error.
    with pytest.raises(ValueError, match="index 0 has neither a title nor a body"):
        tiny_generator.generate(["   "])
    with pytest.raises(ValueError, match="^article has neither a title nor a body"):
        tiny_generator.generate("")
    assert tiny_generator.generate({"title": "海关发布进口数据"})  # a title alone is rewritten
    with pytest.raises(TypeError, match="index 0"):
        tiny_generator.generate([{"body": 5}])
    with pytest.raises(ValueError, match="batch_size"):
        tiny_generator.generate(bodies, batch_size=0)


def test_bert_style_tokenizer_token_type_ids_are_not_passed(tmp_path, bodies):
    """A user checkpoint whose tokenizer emits token_type_ids (BERT-style) still generates."""
    from transformers import BertTokenizerFast

    from xinwen.inference.headline.generator import HeadlineSettings

    folder = save_tiny_seq2seq(tmp_path)
    chars = sorted({ch for b in bodies for ch in b})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars
    (tmp_path / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    assert "token_type_ids" in tok("海关")
    gen = HeadlineGenerator.from_pretrained(folder, device="cpu")
    gen.tokenizer = tok
    gen.settings = HeadlineSettings(max_source_length=32)
    out = gen.generate(bodies[:2], num_beams=1)
    assert len(out) == 2 and all(out)
