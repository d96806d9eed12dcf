"""One prediction path: every route to a probability gives what the code gave before it was one
method (tests/data/prediction_golden.json, recorded on the earlier code), and its parts add up."""
from __future__ import annotations

import json

import pytest
import torch
from prediction_golden import ARTICLES, GOLDEN, SCENARIOS, build_folder, outputs
from scoring_helpers import single_thread  # noqa: F401  (autouse fixture)

from xinwen.inference.text import as_article
from xinwen.inference.topic.backends import load_classifier

GOLDEN_OUTPUTS = json.loads(GOLDEN.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    return {name: build_folder(root / name, name) for name in SCENARIOS}


def _assert_same(got: dict, expected: dict, where: str) -> None:
    for key, rows in expected.items():
        if key.startswith("predict") or key.startswith("analyze"):
            labels = [r[0] if isinstance(r, list) else r for r in rows]
            assert [g[0] if isinstance(g, list) else g for g in got[key]] == labels, f"{where}: {key} labels"
        if key in ("predict_threshold_0.6",):
            continue
        numbers = torch.tensor(_numbers(rows), dtype=torch.float64)
        assert torch.allclose(torch.tensor(_numbers(got[key]), dtype=torch.float64), numbers, atol=1e-6, rtol=0), \
            f"{where}: {key} differs from the recorded outputs"


def _numbers(value) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return []


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_probabilities_are_those_recorded_before_the_refactor(folders, scenario):
    _assert_same(outputs(folders[scenario]), GOLDEN_OUTPUTS["scenarios"][scenario], scenario)


def test_int8_checked_probabilities_are_those_recorded(folders):
    import torch.backends.quantized as quantized

    if quantized.engine != GOLDEN_OUTPUTS["quantized_engine"]:
        pytest.skip(f"int8 kernels differ: recorded with {GOLDEN_OUTPUTS['quantized_engine']}, "
                    f"this machine uses {quantized.engine}")
    got = outputs(folders["chunks_lexical_stage_threshold"], backend="int8-checked")
    expected = dict(GOLDEN_OUTPUTS["scenarios"]["int8_checked"])
    # Recorded through model_probabilities, which skipped the recheck of answers the expert made
    # close; parts.encoder is what went into the product, rechecked rows included.
    del expected["encoder_alone"]
    _assert_same(got, expected, "int8_checked")


def test_the_parts_make_the_final_probabilities(folders):
    clf = load_classifier(folders["chunks_lexical_stage_threshold"], device="cpu")
    articles = [as_article(a, i) for i, a in enumerate(ARTICLES)]
    parts = clf.probabilities(articles, return_parts=True)
    assert torch.equal(parts.final, clf.probabilities(articles))
    answered = parts.answered
    assert 0 < int(answered.sum()) < len(articles), "the scenario must route both ways"
    product = clf.lexical.combine(parts.encoder, parts.ngram)
    assert torch.allclose(parts.final[~answered], product[~answered], atol=1e-6)
    assert torch.allclose(parts.product_logits, clf.lexical.logits(parts.encoder, parts.ngram))
    # The uncalibrated encoder is the same pass at T = 1.
    t = clf.settings.temperature
    clf.settings.temperature = 1.0
    try:
        at_one = clf.with_experts().probabilities(articles)
    finally:
        clf.settings.temperature = t
    assert torch.allclose(parts.encoder_uncalibrated, at_one, atol=1e-6)
    # Reusing either the parts or the T = 1 probabilities gives the same answer without a pass.
    assert torch.allclose(clf.probabilities(articles, reuse=parts), parts.final, atol=1e-6)
    assert torch.allclose(clf.probabilities(articles, reuse=parts.encoder_uncalibrated), parts.final, atol=1e-6)


def test_reuse_skips_the_encoder_pass_where_rescaling_is_exact(folders):
    clf = load_classifier(folders["head_tail_lexical_stage"], device="cpu", first_stage=False)
    articles = [as_article(a, i) for i, a in enumerate(ARTICLES)]
    parts = clf.probabilities(articles, return_parts=True)
    model = clf.model
    clf.model = None  # any encoder pass would fail now

    try:
        again = clf.probabilities(articles, reuse=parts.encoder_uncalibrated)
    finally:
        clf.model = model
    assert torch.allclose(again, parts.final, atol=1e-6)


def test_runtime_counts_report_first_stage_and_rechecks(folders):
    clf = load_classifier(folders["chunks_lexical_stage_threshold"], backend="int8-checked")
    before = clf.runtime_counts()
    assert before.articles == 0 and before.fp32_rechecked == 0
    clf.probabilities([as_article(a, i) for i, a in enumerate(ARTICLES)])
    after = clf.runtime_counts()
    assert after.articles == len(ARTICLES) and 0 < after.first_stage_answered < len(ARTICLES)
    assert after.backend_rows > 0 and after.fp32_rechecked >= 0
    plain = load_classifier(folders["chunks_alone"])
    assert plain.runtime_counts().fp32_rechecked is None


def test_deprecated_routes_warn_and_name_the_replacement(folders):
    from xinwen.inference.analyzer import batched_probabilities

    clf = load_classifier(folders["chunks_lexical"], device="cpu")
    articles = [as_article(a) for a in ARTICLES[:3]]
    parts = clf.probabilities(articles, return_parts=True)
    with pytest.warns(DeprecationWarning, match=r"probabilities\(articles, return_parts=True\).encoder"):
        assert torch.allclose(clf.model_probabilities(articles), parts.encoder, atol=1e-6)
    with pytest.warns(DeprecationWarning, match="reuse=raw"):
        assert torch.allclose(clf.calibrated_from_raw(parts.encoder_uncalibrated, articles), parts.encoder, atol=1e-6)
    with pytest.warns(DeprecationWarning, match="NewsClassifier.probabilities"):
        assert torch.allclose(batched_probabilities(clf, articles), parts.final, atol=1e-6)
