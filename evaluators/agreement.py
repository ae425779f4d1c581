"""How far raters agree on 1-3 levels: the figures calibration and the go-live gate rest on.

Every figure comes back as an `Estimate`: a value, a percentile bootstrap interval over the
rated calls, and, when the figure is undefined, `None` with the reason (no calls, or every
rating on one level, so chance agreement is total and kappa means nothing).

Levels are 1, 2 and 3; `None` marks N/A or a missing rating. Pairwise figures use the calls
both raters gave a level to; N/A against a level is an applicability disagreement, which
calibration reports separately.

Bootstrap intervals resample calls with replacement from a seeded generator, so the same data
and seed always give the same interval. Resamples where a figure is undefined (all ratings on
one level) are left out; when fewer than half remain, the interval is withheld with a reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import krippendorff
import numpy as np
import numpy.typing as npt

LEVEL_VALUES: tuple[int, ...] = (1, 2, 3)
_K = len(LEVEL_VALUES)
# quadratic disagreement weights on the 1-3 scale: 0 on the diagonal, 1 for 1 against 3
_QUADRATIC = np.array(
    [[(i - j) ** 2 / (_K - 1) ** 2 for j in range(_K)] for i in range(_K)], dtype=float
)
_WITHIN_ONE = np.array([[abs(i - j) <= 1 for j in range(_K)] for i in range(_K)], dtype=float)

Ratings = Sequence[int | None]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Estimate:
    """One agreement figure with its bootstrap interval.

    Attributes:
        value: The figure on all the data, or None when it is undefined.
        low: Lower end of the percentile bootstrap interval, when one was computed.
        high: Upper end of the interval.
        reason: Why the value or its interval is missing.
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None

    def at_least(self, threshold: float) -> bool:
        return self.value is not None and self.value >= threshold


@dataclass(frozen=True, slots=True)
class PairAgreement:
    """Agreement between two raters (or the judge and the human consensus).

    Attributes:
        n: Calls both gave a level to.
        applicability_disagreements: Calls where one said N/A and the other gave a level.
    """

    n: int
    exact: Estimate
    within_one: Estimate
    kappa: Estimate
    applicability_disagreements: int = 0


@dataclass(frozen=True, slots=True)
class RaterAgreement:
    """Agreement among any number of raters on the same calls.

    `exact`, `within_one` and `kappa` are means over every pair of raters (each pair on the
    calls both rated); `alpha` is Krippendorff's ordinal alpha over all ratings; `fleiss` is
    Fleiss' kappa over the calls every rater gave a level to.

    Attributes:
        n: Calls with levels from at least two raters.
        raters: Raters with at least one level.
    """

    n: int
    raters: int
    exact: Estimate
    within_one: Estimate
    kappa: Estimate
    alpha: Estimate
    fleiss: Estimate


@dataclass(frozen=True, slots=True)
class BootstrapOptions:
    resamples: int = 1000
    """Zero turns intervals off."""
    confidence: float = 0.95
    seed: int = 0


# -- input checks ---------------------------------------------------------------------------


def _codes(ratings: Ratings) -> IntArray:
    """Levels 1-3 as 0-2, and -1 for N/A or missing."""
    out = np.full(len(ratings), -1, dtype=np.int64)
    for i, level in enumerate(ratings):
        if level is None:
            continue
        if level not in LEVEL_VALUES:
            raise ValueError(f"Level `{level}` is not 1, 2, 3 or None (N/A)")
        out[i] = LEVEL_VALUES.index(level)
    return out


def _matrix(ratings: Sequence[Sequence[int | None]]) -> IntArray:
    """Calls x raters as codes; every row must have one entry per rater."""
    if not ratings:
        return np.zeros((0, 0), dtype=np.int64)
    widths = {len(row) for row in ratings}
    if len(widths) != 1:
        raise ValueError(
            "Every call needs one entry per rater (use None for a missing rating); "
            f"row lengths found: {sorted(widths)}"
        )
    return np.stack([_codes(row) for row in ratings])


def _single_level_reason(codes: IntArray) -> str:
    used = np.unique(codes[codes >= 0])
    if len(used) == 1:
        level = LEVEL_VALUES[int(used[0])]
        return f"undefined: every rating is level {level}, so chance agreement is total"
    return "undefined: each pair of raters used one level only on the calls both rated"


# -- vectorised pairwise figures over bootstrap resamples ----------------------------------


def _pair_counts(x: IntArray, y: IntArray, index: IntArray) -> FloatArray:
    """Confusion counts per resample: (resamples, 3, 3) from rows of `index` into x and y."""
    both = (x >= 0) & (y >= 0)
    cell = np.where(both, x * _K + y, _K * _K)  # the extra bin holds calls left out
    picked = cell[index]
    offsets = np.arange(index.shape[0])[:, None] * (_K * _K + 1)
    counts = np.bincount((picked + offsets).ravel(), minlength=index.shape[0] * (_K * _K + 1))
    counts = counts.reshape(index.shape[0], _K * _K + 1)[:, : _K * _K]
    return counts.reshape(index.shape[0], _K, _K).astype(float)


def _exact(counts: FloatArray) -> FloatArray:
    total = counts.sum(axis=(1, 2))
    hits = np.trace(counts, axis1=1, axis2=2)
    return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def _within_one(counts: FloatArray) -> FloatArray:
    total = counts.sum(axis=(1, 2))
    hits = (counts * _WITHIN_ONE).sum(axis=(1, 2))
    return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def _quadratic_kappa(counts: FloatArray) -> FloatArray:
    total = counts.sum(axis=(1, 2))
    safe_total = np.maximum(total, 1)[:, None, None]
    observed = counts / safe_total
    rows = observed.sum(axis=2)
    cols = observed.sum(axis=1)
    expected = rows[:, :, None] * cols[:, None, :]
    disagreement_observed = (observed * _QUADRATIC).sum(axis=(1, 2))
    disagreement_expected = (expected * _QUADRATIC).sum(axis=(1, 2))
    defined = (total > 0) & (disagreement_expected > 1e-12)
    ratio = disagreement_observed / np.where(defined, disagreement_expected, 1.0)
    return np.where(defined, 1.0 - ratio, np.nan)


_PAIR_FIGURES: dict[str, Callable[[FloatArray], FloatArray]] = {
    "exact": _exact,
    "within_one": _within_one,
    "kappa": _quadratic_kappa,
}


def _interval(
    samples: FloatArray, value: float | None, options: BootstrapOptions
) -> tuple[float | None, float | None, str | None]:
    if value is None or options.resamples <= 0:
        return None, None, None
    valid = samples[~np.isnan(samples)]
    if len(valid) < max(1, options.resamples // 2):
        return None, None, "interval withheld: the figure is undefined in most resamples"
    tail = (1 - options.confidence) / 2 * 100
    low, high = np.percentile(valid, [tail, 100 - tail])
    return float(low), float(high), None


def _resample_index(n: int, options: BootstrapOptions) -> IntArray:
    rng = np.random.default_rng(options.seed)
    return rng.integers(0, n, size=(max(options.resamples, 0), n), dtype=np.int64)


def _as_value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


# -- public figures -------------------------------------------------------------------------


def exact_agreement(a: Ratings, b: Ratings) -> Estimate:
    """Share of calls where both raters gave the same level (no interval)."""
    return pair_agreement(a, b, bootstrap=BootstrapOptions(resamples=0)).exact


def within_one_agreement(a: Ratings, b: Ratings) -> Estimate:
    """Share of calls where the two levels differ by at most one (no interval)."""
    return pair_agreement(a, b, bootstrap=BootstrapOptions(resamples=0)).within_one


def quadratic_kappa(a: Ratings, b: Ratings) -> Estimate:
    """Cohen's kappa with quadratic weights on the 1-3 scale (no interval)."""
    return pair_agreement(a, b, bootstrap=BootstrapOptions(resamples=0)).kappa


def pair_agreement(
    a: Ratings, b: Ratings, *, bootstrap: BootstrapOptions | None = None
) -> PairAgreement:
    """Exact, within-one and quadratic-weighted kappa between two raters, with intervals.

    Args:
        a: One rater's levels, one entry per call (None for N/A or missing).
        b: The other rater's levels for the same calls, in the same order.
        bootstrap: Resamples, confidence and seed for the intervals.

    Raises:
        ValueError: The two lists differ in length or hold a level outside 1-3.
    """
    options = bootstrap or BootstrapOptions()
    if len(a) != len(b):
        raise ValueError(f"Both raters need one entry per call; got {len(a)} and {len(b)}")
    x, y = _codes(a), _codes(b)
    both = (x >= 0) & (y >= 0)
    n = int(both.sum())
    applicability = int(((x >= 0) ^ (y >= 0)).sum())
    if n == 0:
        missing = Estimate(None, reason="no calls where both gave a level")
        return PairAgreement(0, missing, missing, missing, applicability)

    # only the calls both rated take part, so resample among those
    x, y = x[both], y[both]
    point = _pair_counts(x, y, np.arange(n, dtype=np.int64)[None, :])
    samples = _pair_counts(x, y, _resample_index(n, options))
    figures: dict[str, Estimate] = {}
    for name, figure in _PAIR_FIGURES.items():
        value = _as_value(float(figure(point)[0]))
        low, high, note = _interval(figure(samples), value, options)
        reason = note
        if value is None:
            reason = f"kappa {_single_level_reason(np.concatenate([x, y]))}"
        figures[name] = Estimate(value, low, high, reason)
    return PairAgreement(
        n, figures["exact"], figures["within_one"], figures["kappa"], applicability
    )


def _pairwise_means(codes: IntArray, index: IntArray) -> dict[str, FloatArray]:
    """Mean over rater pairs of each pairwise figure, per resample (NaN where none defined)."""
    raters = codes.shape[1]
    per_pair: dict[str, list[FloatArray]] = {name: [] for name in _PAIR_FIGURES}
    for r, s in itertools.combinations(range(raters), 2):
        counts = _pair_counts(codes[:, r], codes[:, s], index)
        for name, figure in _PAIR_FIGURES.items():
            per_pair[name].append(figure(counts))
    out: dict[str, FloatArray] = {}
    for name, columns in per_pair.items():
        stacked = np.stack(columns, axis=1)
        defined = ~np.isnan(stacked)
        sums = np.where(defined, stacked, 0.0).sum(axis=1)
        count = defined.sum(axis=1)
        out[name] = np.where(count > 0, sums / np.maximum(count, 1), np.nan)
    return out


def _value_counts(codes: IntArray) -> FloatArray:
    """Calls x levels: how many raters gave each level to each call."""
    return np.stack([(codes == k).sum(axis=1) for k in range(_K)], axis=1).astype(float)


def _alpha(value_counts: FloatArray) -> float:
    if (value_counts.sum(axis=1) >= 2).sum() == 0:
        return float("nan")
    used = value_counts.sum(axis=0) > 0
    if used.sum() < 2:
        return float("nan")
    result = krippendorff.alpha(
        value_counts=value_counts, value_domain=list(LEVEL_VALUES), level_of_measurement="ordinal"
    )
    return float(result)


def _fleiss_many(value_counts: FloatArray, index: IntArray) -> FloatArray:
    """Fleiss' kappa for each row of `index` (calls resampled); every call has m ratings."""
    sampled = value_counts[index]  # (resamples, calls, levels)
    m = value_counts[0].sum()
    agreement = ((sampled**2).sum(axis=2) - m) / (m * (m - 1))
    shares = sampled.sum(axis=1) / np.maximum(sampled.sum(axis=(1, 2)), 1)[:, None]
    chance = (shares**2).sum(axis=1)
    defined = chance < 1 - 1e-12
    kappa = (agreement.mean(axis=1) - chance) / np.where(defined, 1 - chance, 1.0)
    return np.where(defined, kappa, np.nan)


def _fleiss(value_counts: FloatArray) -> float:
    """Fleiss' kappa; the rows must all have the same number of ratings (two or more)."""
    if len(value_counts) == 0:
        return float("nan")
    whole = np.arange(len(value_counts), dtype=np.int64)[None, :]
    return float(_fleiss_many(value_counts, whole)[0])


def _bootstrapped(
    statistic: Callable[[FloatArray], float],
    rows: FloatArray,
    options: BootstrapOptions,
    undefined: str,
    many: Callable[[FloatArray, IntArray], FloatArray] | None = None,
) -> Estimate:
    if len(rows) == 0:
        return Estimate(None, reason=undefined)
    value = _as_value(statistic(rows))
    if value is None:
        return Estimate(None, reason=undefined)
    index = _resample_index(len(rows), options)
    if many is not None:
        samples = many(rows, index)
    else:
        samples = np.array([statistic(rows[i]) for i in index], dtype=float)
    low, high, note = _interval(samples, value, options)
    return Estimate(value, low, high, note)


def krippendorff_alpha(
    ratings: Sequence[Sequence[int | None]], *, bootstrap: BootstrapOptions | None = None
) -> Estimate:
    """Krippendorff's alpha (ordinal) for calls x raters; None marks a missing rating."""
    codes = _matrix(ratings)
    counts = _value_counts(codes) if codes.size else np.zeros((0, _K))
    counts = counts[counts.sum(axis=1) >= 2]
    return _bootstrapped(
        _alpha, counts, bootstrap or BootstrapOptions(), _alpha_reason(codes, counts)
    )


def _alpha_reason(codes: IntArray, counts: FloatArray) -> str:
    if len(counts) == 0:
        return "alpha needs calls with levels from at least two raters"
    return f"alpha {_single_level_reason(codes)}"


def fleiss_kappa(
    ratings: Sequence[Sequence[int | None]], *, bootstrap: BootstrapOptions | None = None
) -> Estimate:
    """Fleiss' kappa over the calls every rater gave a level to (nominal levels)."""
    codes = _matrix(ratings)
    if codes.size == 0 or codes.shape[1] < 2:
        return Estimate(None, reason="Fleiss' kappa needs at least two raters")
    complete = codes[(codes >= 0).all(axis=1)]
    if len(complete) == 0:
        return Estimate(None, reason="Fleiss' kappa needs calls every rater gave a level to")
    counts = _value_counts(complete)
    return _bootstrapped(
        _fleiss,
        counts,
        bootstrap or BootstrapOptions(),
        f"Fleiss' kappa {_single_level_reason(complete)}",
        many=_fleiss_many,
    )


def rater_agreement(
    ratings: Sequence[Sequence[int | None]], *, bootstrap: BootstrapOptions | None = None
) -> RaterAgreement:
    """Every figure for a calls x raters table of levels (None for N/A or missing).

    Args:
        ratings: One row per call, one column per rater.
        bootstrap: Resamples, confidence and seed for the intervals.

    Raises:
        ValueError: Rows of different lengths, or a level outside 1-3.
    """
    options = bootstrap or BootstrapOptions()
    codes = _matrix(ratings)
    raters = int(((codes >= 0).any(axis=0)).sum()) if codes.size else 0
    if codes.size:
        codes = codes[:, (codes >= 0).any(axis=0)]
        codes = codes[(codes >= 0).sum(axis=1) >= 2]
    n = len(codes) if codes.size else 0
    if n == 0 or raters < 2:
        reason = "needs calls with levels from at least two raters"
        missing = Estimate(None, reason=reason)
        return RaterAgreement(0, raters, missing, missing, missing, missing, missing)

    point = _pairwise_means(codes, np.arange(n, dtype=np.int64)[None, :])
    samples = _pairwise_means(codes, _resample_index(n, options))
    pairwise: dict[str, Estimate] = {}
    for name in _PAIR_FIGURES:
        value = _as_value(float(point[name][0]))
        low, high, note = _interval(samples[name], value, options)
        if value is None:
            note = f"{name} {_single_level_reason(codes)}"
        pairwise[name] = Estimate(value, low, high, note)
    rows = [[None if c < 0 else LEVEL_VALUES[c] for c in row] for row in codes.tolist()]
    return RaterAgreement(
        n=n,
        raters=raters,
        exact=pairwise["exact"],
        within_one=pairwise["within_one"],
        kappa=pairwise["kappa"],
        alpha=krippendorff_alpha(rows, bootstrap=options),
        fleiss=fleiss_kappa(rows, bootstrap=options),
    )
