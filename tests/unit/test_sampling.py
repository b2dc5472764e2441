"""GB/T 28863 sampling-plan rules (docs/design.md §3 rule 1), against hand-computed values."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from pipelines.rules.sampling import (
    ALPHA_TOLERANCE,
    DEFAULT_PLAN,
    PopulationVerdict,
    SamplingPlan,
    alpha,
    detection_power,
    max_sample_size,
    nonconforming_in_population,
    verdict,
)

# --- alpha, binomial ---------------------------------------------------------------


def test_default_plan_alpha_is_p0() -> None:
    # n=1, c=0: alpha = 1 - (1-p0)^1 = p0
    for p0 in (0.0, 0.005, 0.01, 0.05, 0.3, 1.0):
        assert alpha(1, 0, p0) == pytest.approx(p0, abs=1e-15)


@pytest.mark.parametrize(
    ("n", "c", "p0", "expected"),
    [
        # 1 - 0.9^2 = 1 - 0.81 = 0.19
        (2, 0, 0.1, 0.19),
        # P(D<=1) = 0.9^3 + 3*0.1*0.9^2 = 0.729 + 0.243 = 0.972 -> 0.028
        (3, 1, 0.1, 0.028),
        # P(D<=1) = 0.8^5 + 5*0.2*0.8^4 = 0.32768 + 0.4096 = 0.73728 -> 0.26272
        (5, 1, 0.2, 0.26272),
        # P(D<=2) = 0.5^4 * (C(4,0)+C(4,1)+C(4,2)) = (1+4+6)/16 = 11/16 -> 5/16
        (4, 2, 0.5, 5 / 16),
        # 1 - 0.995^10 = 1 - 0.951110130 = 0.048889870
        (10, 0, 0.005, 0.04888986953),
        # 1 - 0.995^11 = 1 - 0.946354579 = 0.053645420
        (11, 0, 0.005, 0.05364542019),
        # 1 - 0.99^5 = 1 - 0.9509900499 = 0.0490099501
        (5, 0, 0.01, 0.0490099501),
        # 1 - 0.99^6 = 1 - 0.941480149401 = 0.058519850599
        (6, 0, 0.01, 0.058519850599),
    ],
)
def test_binomial_alpha_hand_computed(n: int, c: int, p0: float, expected: float) -> None:
    assert alpha(n, c, p0) == pytest.approx(expected, abs=1e-10)


def test_binomial_alpha_edges() -> None:
    assert alpha(10, 3, 0.0) == 0.0  # no nonconforming unit can be drawn
    assert alpha(10, 3, 1.0) == 1.0  # every unit is nonconforming, 10 > 3


def test_binomial_alpha_matches_exact_rational_arithmetic() -> None:
    # Exact: P(D > c) with p0 = 3/100 as a Fraction, n = 50, c = 2.
    p = Fraction(3, 100)
    lower = sum(math.comb(50, d) * p**d * (1 - p) ** (50 - d) for d in range(3))
    assert alpha(50, 2, 0.03) == pytest.approx(float(1 - lower), abs=1e-14)


# --- alpha, hypergeometric -----------------------------------------------------------


def test_population_rounding_is_half_up() -> None:
    assert nonconforming_in_population(10, 0.2) == 2  # 2.0
    assert nonconforming_in_population(7, 0.3) == 2  # 2.1 -> 2
    assert nonconforming_in_population(7, 0.5) == 4  # 3.5 -> 4
    # 2.5 -> 3, where Python's round() would give 2 (half to even)
    assert nonconforming_in_population(5, 0.5) == 3
    # 0.1 * 25 = 2.5000000000000004 and 0.1 * 15 = 1.5000000000000002 in floats: still half up
    assert nonconforming_in_population(25, 0.1) == 3
    assert nonconforming_in_population(15, 0.1) == 2
    assert nonconforming_in_population(10, 0.04) == 0  # 0.4 -> 0
    assert nonconforming_in_population(10, 1.0) == 10


def test_small_population_hypergeometric_by_hand() -> None:
    # N = 10, p0 = 0.2 -> D0 = 2 bad, 8 good; n = 3, C(10,3) = 120.
    # P(D=0) = C(8,3)/120 = 56/120 -> alpha(c=0) = 64/120 = 8/15 = 0.5333...
    assert alpha(3, 0, 0.2, population_size=10) == pytest.approx(8 / 15, abs=1e-15)
    # P(D=1) = C(2,1)*C(8,2)/120 = 2*28/120 = 56/120 -> alpha(c=1) = 1 - 112/120 = 1/15
    assert alpha(3, 1, 0.2, population_size=10) == pytest.approx(1 / 15, abs=1e-15)
    # c = 2 >= D0: more than two bad units cannot be drawn
    assert alpha(3, 2, 0.2, population_size=10) == 0.0
    # Binomial for comparison: 1 - 0.8^3 = 0.488 (with replacement understates alpha here)
    assert alpha(3, 0, 0.2) == pytest.approx(0.488, abs=1e-12)


def test_hypergeometric_when_sample_exceeds_good_units() -> None:
    # N = 10, p0 = 0.8 -> D0 = 8 bad, 2 good; n = 3 must contain >= 1 bad unit.
    assert alpha(3, 0, 0.8, population_size=10) == 1.0
    # P(D=1) = C(8,1)*C(2,2)/120 = 8/120 -> alpha(c=1) = 112/120
    assert alpha(3, 1, 0.8, population_size=10) == pytest.approx(112 / 120, abs=1e-15)
    # P(D=2) = C(8,2)*C(2,1)/120 = 56/120 -> alpha(c=2) = 1 - 64/120 = 56/120
    assert alpha(3, 2, 0.8, population_size=10) == pytest.approx(56 / 120, abs=1e-15)


def test_hypergeometric_whole_population_is_certain() -> None:
    # n = N: D = D0 exactly.
    assert alpha(10, 1, 0.2, population_size=10) == 1.0  # D0 = 2 > 1
    assert alpha(10, 2, 0.2, population_size=10) == 0.0  # D0 = 2 <= 2


def test_hypergeometric_one_bad_unit_is_n_over_N() -> None:
    # D0 = 1: the bad unit is in the sample with probability n / N.
    assert alpha(7, 0, 0.05, population_size=20) == pytest.approx(7 / 20, abs=1e-15)


def test_hypergeometric_matches_exact_integers() -> None:
    # N = 200, p0 = 0.03 -> D0 = 6; n = 50, c = 2.
    total = math.comb(200, 50)
    lower = sum(math.comb(6, d) * math.comb(194, 50 - d) for d in range(3))
    assert alpha(50, 2, 0.03, population_size=200) == pytest.approx(
        float(Fraction(total - lower, total)), abs=1e-14
    )


@pytest.mark.parametrize(
    ("n", "c", "p0"), [(1, 0, 0.05), (10, 0, 0.005), (20, 1, 0.01), (80, 3, 0.02)]
)
def test_hypergeometric_converges_to_binomial_for_large_population(
    n: int, c: int, p0: float
) -> None:
    # With n fixed and N large the finite-population correction (N-n)/(N-1) -> 1.
    assert alpha(n, c, p0, population_size=10_000_000) == pytest.approx(alpha(n, c, p0), abs=1e-4)
    assert alpha(n, c, p0, population_size=1_000_000_000) == pytest.approx(
        alpha(n, c, p0), abs=1e-6
    )


def test_scipy_agreement_if_available() -> None:
    stats = pytest.importorskip("scipy.stats")
    for n, c, p0, pop in [(30, 1, 0.02, 500), (100, 4, 0.03, 2000), (12, 0, 0.004, None)]:
        if pop is None:
            expected = stats.binom.sf(c, n, p0)
        else:
            expected = stats.hypergeom.sf(c, pop, nonconforming_in_population(pop, p0), n)
        assert alpha(n, c, p0, pop) == pytest.approx(float(expected), abs=1e-12)


# --- max_sample_size ---------------------------------------------------------------


@pytest.mark.parametrize(("p0", "expected"), [(0.005, 10), (0.01, 5), (0.05, 1)])
def test_max_sample_size_c0_five_percent(p0: float, expected: int) -> None:
    # 1-0.995^10=0.0489 <= 5% < 1-0.995^11=0.0536; 1-0.99^5=0.0490 < 5% < 1-0.99^6=0.0585;
    # 1-0.95^1 = 0.05 exactly (0.050000000000000044 in floats: needs ALPHA_TOLERANCE).
    assert max_sample_size(p0) == expected
    assert max_sample_size(p0, c=0, alpha_max=0.05) == expected


def test_max_sample_size_c0_closed_form() -> None:
    # c = 0: alpha(n) = 1 - (1-p0)^n <= a  <=>  n <= ln(1-a)/ln(1-p0)
    for p0 in (0.001, 0.002, 0.003, 0.007, 0.02, 0.03, 0.04):
        assert max_sample_size(p0) == math.floor(math.log(0.95) / math.log(1 - p0))


@pytest.mark.parametrize(
    ("p0", "c", "alpha_max", "population"),
    [
        (0.01, 1, 0.05, None),
        (0.01, 2, 0.05, None),
        (0.02, 3, 0.10, None),
        (0.001, 1, 0.05, None),
        (0.01, 1, 0.05, 5000),
        (0.05, 2, 0.05, 300),
    ],
)
def test_max_sample_size_is_the_boundary(
    p0: float, c: int, alpha_max: float, population: int | None
) -> None:
    n = max_sample_size(p0, c, alpha_max, population)
    assert n > c
    assert alpha(n, c, p0, population) <= alpha_max + ALPHA_TOLERANCE
    assert alpha(n + 1, c, p0, population) > alpha_max


def test_max_sample_size_binomial_c1_by_hand() -> None:
    # p0 = 1 %, c = 1: alpha(n) = 1 - 0.99^n - n*0.01*0.99^(n-1)
    # n = 35: 0.99^35 = 0.703448, 35*0.01*0.99^34 = 0.248694 -> 1 - 0.952142 = 0.047859 <= 5 %
    # n = 36: 0.99^36 = 0.696413, 36*0.01*0.99^35 = 0.253241 -> 1 - 0.949654 = 0.050346 > 5 %
    assert alpha(35, 1, 0.01) == pytest.approx(0.047859, abs=1e-6)
    assert alpha(36, 1, 0.01) == pytest.approx(0.050346, abs=1e-6)
    assert max_sample_size(0.01, c=1) == 35


def test_max_sample_size_hypergeometric_by_hand() -> None:
    # N = 40, p0 = 2.5 % -> D0 = 1; alpha(n) = n/40 <= 0.05  <=>  n <= 2
    assert max_sample_size(0.025, population_size=40) == 2
    # N = 20, p0 = 5 % -> D0 = 1; alpha(n) = n/20 <= 0.05  <=>  n <= 1
    assert max_sample_size(0.05, population_size=20) == 1
    # N = 10, p0 = 4 % -> D0 = round(0.4) = 0: any n up to N is admissible
    assert max_sample_size(0.04, population_size=10) == 10


def test_max_sample_size_fast_for_large_populations() -> None:
    # D0 = 1 in a million units: alpha(n) = n / 10^6 <= 5 % <=> n <= 50000.
    assert max_sample_size(1e-6, population_size=1_000_000) == 50_000


def test_max_sample_size_without_an_answer() -> None:
    with pytest.raises(ValueError, match="no sample size is admissible"):
        max_sample_size(0.06)  # alpha(1, 0) = 6 % > 5 %
    with pytest.raises(ValueError, match=r"p0=0\.0"):
        max_sample_size(0.0)
    assert max_sample_size(0.0, population_size=50) == 50


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"p0": 1.5}, "p0 must be between 0 and 1, got 1.5"),
        ({"p0": 0.01, "c": -1}, "c must be >= 0, got -1"),
        ({"p0": 0.01, "alpha_max": 0.0}, "alpha_max must be strictly between 0 and 1, got 0.0"),
        ({"p0": 0.01, "alpha_max": 1.0}, "alpha_max must be strictly between 0 and 1, got 1.0"),
        ({"p0": 0.01, "c": 3, "population_size": 3}, "population_size must exceed c=3"),
    ],
)
def test_max_sample_size_validation(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        max_sample_size(**kwargs)  # type: ignore[arg-type]


# --- detection power ---------------------------------------------------------------


def test_detection_power_by_hand() -> None:
    # (1, 0): power = p
    assert detection_power(1, 0, 0.3) == pytest.approx(0.3)
    # (5, 0) at p = 0.3: 1 - 0.7^5 = 1 - 0.16807 = 0.83193
    assert detection_power(5, 0, 0.3) == pytest.approx(0.83193, abs=1e-12)
    # (3, 1) at p = 0.5: 1 - (1 + 3)/8 = 0.5
    assert detection_power(3, 1, 0.5) == pytest.approx(0.5, abs=1e-15)
    # N = 10, p = 0.2 (2 bad), n = 3, c = 0: 8/15 as in the hypergeometric alpha above
    assert detection_power(3, 0, 0.2, population_size=10) == pytest.approx(8 / 15)


@pytest.mark.parametrize(
    ("n", "c", "population"), [(1, 0, None), (5, 0, None), (20, 2, None), (13, 1, 50), (8, 0, 9)]
)
def test_detection_power_is_monotone_in_p(n: int, c: int, population: int | None) -> None:
    grid = [i / 200 for i in range(201)]
    powers = [detection_power(n, c, p, population) for p in grid]
    assert powers[0] == 0.0
    assert powers[-1] == 1.0
    for lower, higher in itertools.pairwise(powers):
        assert higher >= lower - ALPHA_TOLERANCE


def test_alpha_is_monotone_in_n() -> None:
    risks = [alpha(n, 1, 0.02) for n in range(2, 200)]
    assert all(b >= a for a, b in itertools.pairwise(risks))
    risks = [alpha(n, 1, 0.02, population_size=200) for n in range(2, 201)]
    assert all(b >= a - ALPHA_TOLERANCE for a, b in itertools.pairwise(risks))


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((1, 1, 0.01, None), "n must be greater than c=1"),
        ((3, 5, 0.01, None), "n must be greater than c=5 (a plan needs 0 <= c < n), got 3"),
        ((3, -1, 0.01, None), "c must be >= 0, got -1"),
        ((0, 0, 0.01, None), "n must be greater than c=0"),
        ((3, 0, -0.1, None), "p0 must be between 0 and 1, got -0.1"),
        ((3, 0, 1.01, None), "p0 must be between 0 and 1, got 1.01"),
        ((3, 0, float("nan"), None), "p0 must be between 0 and 1, got nan"),
        ((3, 0, "0.1", None), "p0 must be a number between 0 and 1, got '0.1'"),
        ((11, 0, 0.01, 10), "population_size must be >= the sample size n=11, got 10"),
        ((2.0, 0, 0.01, None), "n must be an integer, got 2.0"),
        ((True, 0, 0.01, None), "n must be an integer, got True"),
    ],
)
def test_alpha_input_validation(args: tuple[object, ...], fragment: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        alpha(*args)  # type: ignore[arg-type]
    assert fragment in str(excinfo.value)


def test_detection_power_names_p() -> None:
    with pytest.raises(ValueError, match="p must be between 0 and 1, got 2"):
        detection_power(3, 0, 2.0)


# --- plans and verdicts --------------------------------------------------------------


def test_default_plan_is_one_zero() -> None:
    assert (DEFAULT_PLAN.n, DEFAULT_PLAN.c) == (1, 0)
    assert SamplingPlan() == DEFAULT_PLAN


def test_plan_validation() -> None:
    with pytest.raises(ValueError, match="n must be greater than c=2"):
        SamplingPlan(n=2, c=2)
    with pytest.raises(ValueError, match="c must be >= 0"):
        SamplingPlan(n=2, c=-1)


def test_verdict() -> None:
    assert verdict(DEFAULT_PLAN, 1) is PopulationVerdict.NOT_PASSED
    assert verdict(DEFAULT_PLAN, 0) is PopulationVerdict.NO_FINDING
    plan = SamplingPlan(n=5, c=1)
    assert verdict(plan, 0) is PopulationVerdict.NO_FINDING
    assert verdict(plan, 1) is PopulationVerdict.NO_FINDING
    assert verdict(plan, 2) is PopulationVerdict.NOT_PASSED
    assert verdict(plan, 5) is PopulationVerdict.NOT_PASSED
    with pytest.raises(ValueError, match="nonconforming must be between 0 and the sample size n=5"):
        verdict(plan, 6)
    with pytest.raises(ValueError, match="got -1"):
        verdict(plan, -1)


def test_verdict_never_certifies() -> None:
    names = {member.name for member in PopulationVerdict}
    assert names == {"NOT_PASSED", "NO_FINDING"}
    assert PopulationVerdict.NO_FINDING.value == "NO_FINDING"
