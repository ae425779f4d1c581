"""Agreement figures against values worked out by hand (the working is in each docstring)."""

import importlib.util
import itertools
import json
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from evaluators.agreement import (
    BootstrapOptions,
    exact_agreement,
    fleiss_kappa,
    krippendorff_alpha,
    pair_agreement,
    quadratic_kappa,
    rater_agreement,
    within_one_agreement,
)

A = [1, 2, 3, 3, 2]
B = [1, 2, 3, 2, 1]


def test_pairwise_figures_match_hand_computation() -> None:
    """Exact: 3 of 5 match. Within one: all 5.

    Quadratic kappa, weights (i-j)^2/4: observed disagreement (3,2) and (2,1) at 1/4 each over
    5 calls = 0.1. Marginals A = (.2, .4, .4), B = (.4, .4, .2); expected disagreement
    = .2*(.4*.25 + .2*1) + .4*(.4*.25 + .2*.25) + .4*(.4*1 + .4*.25) = .06 + .06 + .2 = .32.
    Kappa = 1 - .1/.32 = 0.6875.
    """
    assert exact_agreement(A, B).value == pytest.approx(0.6)
    assert within_one_agreement(A, B).value == pytest.approx(1.0)
    assert quadratic_kappa(A, B).value == pytest.approx(0.6875)
    assert quadratic_kappa(A, B).value == pytest.approx(
        cohen_kappa_score(A, B, weights="quadratic")
    )


def test_second_pair_kappa() -> None:
    """A = [1,2,3,1], B = [1,2,3,2]: observed .25/4 = .0625; marginals (.5,.25,.25) and
    (.25,.5,.25); expected .5*.375 + .25*.125 + .25*.375 = .3125; kappa = 1 - .2 = 0.8."""
    assert quadratic_kappa([1, 2, 3, 1], [1, 2, 3, 2]).value == pytest.approx(0.8)


def test_krippendorff_alpha_ordinal_by_hand() -> None:
    """Units (1,1), (2,2), (3,3), (3,2): coincidences o11=o22=o33=2, o23=o32=1; n = (2, 3, 3).

    Ordinal distances: d(2,3) = (3+3 - 3)^2 = 9, d(1,2) = (2+3 - 2.5)^2 = 6.25,
    d(1,3) = (2+3+3 - 2.5)^2 = 30.25. Observed: 2*9 = 18. Expected: 2*(6*6.25 + 6*30.25 + 9*9)
    = 600. Alpha = 1 - (8-1)*18/600 = 0.79.
    """
    alpha = krippendorff_alpha([[1, 1], [2, 2], [3, 3], [3, 2]])

    assert alpha.value == pytest.approx(0.79)


def test_fleiss_kappa_by_hand() -> None:
    """Three raters on four calls: per-call agreement 1, 1/3, 1, 1/3 (mean 2/3); each level
    has 4 of 12 ratings, so chance = 3 * (1/3)^2 = 1/3; kappa = (2/3 - 1/3)/(1 - 1/3) = 0.5."""
    table = [[1, 1, 1], [2, 2, 3], [3, 3, 3], [1, 2, 2]]

    assert fleiss_kappa(table).value == pytest.approx(0.5)


def test_many_raters_use_pairwise_means() -> None:
    """Pairs agree exactly on 3/4, 2/4 and 3/4 of the calls: mean 2/3."""
    table = [[1, 1, 1], [2, 2, 3], [3, 3, 3], [1, 2, 2]]

    result = rater_agreement(table, bootstrap=BootstrapOptions(resamples=200))

    assert (result.n, result.raters) == (4, 3)
    assert result.exact.value == pytest.approx(2 / 3)
    assert result.within_one.value == pytest.approx(1.0)
    pair_kappas = [
        quadratic_kappa([row[r] for row in table], [row[s] for row in table]).value
        for r, s in ((0, 1), (0, 2), (1, 2))
    ]
    assert result.kappa.value == pytest.approx(sum(k or 0 for k in pair_kappas) / 3)
    assert result.fleiss.value == pytest.approx(0.5)
    assert result.alpha.value is not None


def test_bootstrap_interval_is_seeded_and_brackets_the_value() -> None:
    a = [1, 2, 3, 3, 2, 1, 2, 3, 1, 1, 2, 3]
    b = [1, 2, 3, 2, 2, 1, 3, 3, 1, 2, 2, 3]
    options = BootstrapOptions(resamples=500, seed=7)

    first = pair_agreement(a, b, bootstrap=options)
    again = pair_agreement(a, b, bootstrap=options)
    other_seed = pair_agreement(a, b, bootstrap=BootstrapOptions(resamples=500, seed=8))

    assert first == again
    assert first.exact != other_seed.exact
    for estimate in (first.exact, first.kappa):
        assert estimate.low is not None and estimate.high is not None and estimate.value
        assert estimate.low <= estimate.value <= estimate.high
        assert estimate.high - estimate.low > 0
    narrow = pair_agreement(a, b, bootstrap=BootstrapOptions(resamples=500, confidence=0.5))
    width = {
        name: (e.high or 0) - (e.low or 0)
        for name, e in (("50%", narrow.exact), ("95%", first.exact))
    }
    assert width["50%"] < width["95%"]


def test_intervals_can_be_turned_off() -> None:
    result = pair_agreement(A, B, bootstrap=BootstrapOptions(resamples=0))

    assert result.exact.value == pytest.approx(0.6)
    assert (result.exact.low, result.exact.high, result.exact.reason) == (None, None, None)


def test_no_calls_gives_none_with_a_reason() -> None:
    empty = pair_agreement([], [])
    no_overlap = pair_agreement([1, None], [None, 2])
    nobody = rater_agreement([])

    assert empty.n == 0 and empty.exact.value is None
    assert empty.kappa.reason == "no calls where both gave a level"
    assert no_overlap.n == 0 and no_overlap.applicability_disagreements == 2
    assert nobody.n == 0 and nobody.alpha.value is None
    assert nobody.alpha.reason == "needs calls with levels from at least two raters"
    assert krippendorff_alpha([]).value is None
    assert fleiss_kappa([[1], [2]]).reason == "Fleiss' kappa needs at least two raters"


def test_one_level_only_leaves_kappa_and_alpha_undefined() -> None:
    result = rater_agreement([[3, 3], [3, 3], [3, 3]])

    assert result.exact.value == 1.0
    assert result.kappa.value is None
    assert result.kappa.reason is not None and "every rating is level 3" in result.kappa.reason
    assert result.alpha.value is None and "every rating is level 3" in (result.alpha.reason or "")
    assert result.fleiss.value is None


def test_na_ratings_are_left_out_and_counted() -> None:
    result = pair_agreement([1, 2, None, 3, None], [1, 2, 3, 3, None])

    assert result.n == 3
    assert result.applicability_disagreements == 1
    assert result.exact.value == 1.0


def test_bad_input_is_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="Level `4` is not 1, 2, 3"):
        pair_agreement([4], [1])
    with pytest.raises(ValueError, match="one entry per call"):
        pair_agreement([1, 2], [1])
    with pytest.raises(ValueError, match="one entry per rater"):
        rater_agreement([[1, 2], [1]])


def test_matches_the_evaluation_script_on_real_multi_annotator_labels(eval_dir: Path) -> None:
    """AnnoMI reflection: 38 calls with ten annotators each. Pooling every pair of annotators,
    our figures must equal those of the independent script shipped with the data."""
    spec = importlib.util.spec_from_file_location("eval_agreement", eval_dir / "eval_agreement.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    items = [json.loads(line) for line in (eval_dir / "annomi_reflection.dev.jsonl").open()]
    table = [
        item["annotator_labels"]["reflection"]
        for item in items
        if item.get("annotator_labels", {}).get("reflection")
    ]
    raters = max(len(row) for row in table)
    table = [row + [None] * (raters - len(row)) for row in table]
    pooled_a, pooled_b = [], []
    for r, s in itertools.combinations(range(raters), 2):
        shared = [row for row in table if row[r] is not None and row[s] is not None]
        pooled_a += [row[r] for row in shared]
        pooled_b += [row[s] for row in shared]

    ours = pair_agreement(pooled_a, pooled_b, bootstrap=BootstrapOptions(resamples=0))
    many = rater_agreement(table, bootstrap=BootstrapOptions(resamples=0))

    assert ours.n == len(pooled_a)
    assert ours.exact.value == pytest.approx(script.exact_agreement(pooled_a, pooled_b))
    assert ours.within_one.value == pytest.approx(script.within_one(pooled_a, pooled_b))
    assert ours.kappa.value == pytest.approx(script.quadratic_weighted_kappa(pooled_a, pooled_b))
    assert (many.n, many.raters) == (len(table), raters)
    assert many.alpha.value is not None and 0 < many.alpha.value < 1
