"""Sampling plans with prior quality information (GB/T 28863-2012), docs/design.md §3 rule 1.

A regulator buys ``n`` units of a product (one *supervised population*: the same
model from the same labelled producer, on any platform, by any seller), tests
them and counts ``d`` nonconforming units. The plan ``(n, c)`` says how many
nonconforming units are tolerated: ``d > c`` means the population is *not
passed*; ``d <= c`` is *no finding*. The default plan is ``(1, 0)``: one unit,
and any nonconforming unit is a finding.

Because the decision is about the whole population, the regulator must bound
the risk of wrongly condemning a population that actually meets its declared
quality level ``p0`` (the fraction nonconforming the producer claims, or the
level the standard treats as acceptable). That *wrong-rejection risk* is::

    alpha(n, c, p0) = P(D > c | p0)

and the standard requires ``alpha <= 5 %``. Because more units means more
chances to find a nonconforming one, ``alpha`` grows with ``n`` for fixed
``c``; hence the "largest admissible n" for a given ``p0`` and ``c``.

Two models of ``D``:

* **Binomial** (population large or of unknown size; each unit independently
  nonconforming with probability ``p0``)::

      P(D > c) = 1 - sum_{d=0..c} C(n, d) * p0^d * (1 - p0)^(n - d)

* **Hypergeometric** (population of known size ``N``; sampling without
  replacement). The population at quality level ``p0`` holds
  ``D0 = round_half_up(N * p0)`` nonconforming units and::

      P(D > c) = 1 - sum_{d=0..c} C(D0, d) * C(N - D0, n - d) / C(N, n)

  This is exact for small lots, where the binomial overstates the variance
  (after drawing a bad unit, fewer bad units remain), and converges to the
  binomial as ``N`` grows with ``n`` fixed.

The same tail, evaluated at a true rate ``p`` instead of ``p0``, is the plan's
*detection power*: the chance that a population with fraction ``p``
nonconforming is found not passed.

Pure: imports neither Beam nor Kafka. Everything is standard-library ``math``:
both tails are summed from log-space terms with ``math.fsum`` (and ``expm1``
/ ``log1p`` for the ``c = 0`` case), so large ``n`` or ``N`` neither overflows
nor loses precision and stays fast (no 10^5-digit binomial coefficients).
Results agree with exact rational arithmetic to about 1e-12 absolute (the
worst case is a long lower tail, ``c`` in the hundreds, where ``1 - sum``
cancels), ample for judging a risk against 5 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ALPHA_TOLERANCE",
    "DEFAULT_PLAN",
    "PopulationVerdict",
    "SamplingPlan",
    "alpha",
    "detection_power",
    "max_sample_size",
    "nonconforming_in_population",
    "verdict",
]

#: Slack allowed when comparing a computed risk with a limit such as 5 %.
#: Risks are sums of floating-point products, so a value that is exactly at the
#: limit in real arithmetic can come out one or two ulps above it: with
#: ``p0 = 0.05``, ``n = 1``, ``c = 0`` the risk is exactly 0.05, yet
#: ``1 - (1 - 0.05)`` evaluates to 0.050000000000000044 in IEEE doubles. 1e-12
#: is far above that rounding noise (~1e-16 per term) and far below any
#: difference that matters in sampling (risks are quoted to 0.1 %; adjacent
#: sample sizes differ in risk by at least about ``p0 * (1 - alpha)``).
ALPHA_TOLERANCE = 1e-12


def _check_plan(n: int, c: int) -> None:
    _check_int("n", n)
    _check_int("c", c)
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    if n <= c:
        raise ValueError(f"n must be greater than c={c} (a plan needs 0 <= c < n), got {n}")


def _check_int(name: str, value: object) -> None:
    # bool is an int subclass; True as a sample size is always a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")


def _check_probability(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


class PopulationVerdict(StrEnum):
    """Conclusion about a supervised population from one sampling inspection.

    There is deliberately no ``PASSED``/``CERTIFIED`` member. GB/T 28863 is a
    *supervision* sampling standard: a small sample can show that a population
    is worse than its declared quality level (``d > c``), but finding ``d <= c``
    nonconforming units in a handful of units says almost nothing about the rest
    of the population (with the default plan (1, 0), a population that is 30 %
    nonconforming shows no finding 70 % of the time). The standard therefore
    never certifies conformity, and neither may anything downstream: "no finding"
    must not be shown to consumers or platforms as "passed inspection".
    """

    NOT_PASSED = "NOT_PASSED"
    NO_FINDING = "NO_FINDING"


@dataclass(frozen=True)
class SamplingPlan:
    """A single sampling plan: sample ``n`` units, tolerate at most ``c`` nonconforming.

    The default ``(1, 0)`` is the standard's default for supervision sampling.
    """

    n: int = 1
    c: int = 0

    def __post_init__(self) -> None:
        _check_plan(self.n, self.c)


#: The default plan of GB/T 28863 supervision sampling: one unit, zero tolerated.
DEFAULT_PLAN = SamplingPlan()


def verdict(plan: SamplingPlan, nonconforming: int) -> PopulationVerdict:
    """Judge a population on ``d = nonconforming`` units found in a sample of ``plan.n``.

    ``d > c`` -> :attr:`PopulationVerdict.NOT_PASSED`; ``d <= c`` ->
    :attr:`PopulationVerdict.NO_FINDING` (never "passed", see
    :class:`PopulationVerdict`). ``d`` must lie in ``[0, n]``.
    """
    _check_int("nonconforming", nonconforming)
    if not 0 <= nonconforming <= plan.n:
        raise ValueError(
            f"nonconforming must be between 0 and the sample size n={plan.n}, got {nonconforming}"
        )
    return PopulationVerdict.NOT_PASSED if nonconforming > plan.c else PopulationVerdict.NO_FINDING


def nonconforming_in_population(population_size: int, p0: float) -> int:
    """``D0``: nonconforming units in a population of ``N`` at quality level ``p0``.

    ``N * p0`` is rarely an integer, and a population can only hold whole
    units, so it is rounded half up: ``D0 = floor(N * p0 + 1/2)``. Half up
    rather than Python's ``round`` (which rounds halves to even, so 2.5 -> 2 but
    3.5 -> 4) so the rule is monotone and easy to reproduce by hand; the
    ``ALPHA_TOLERANCE`` nudge makes a product that is a half in real arithmetic
    but a hair below it in floating point (``N * p0 = 2.4999999999999996``)
    round up as a person computing it would. Nearest rather than ceiling
    because the population is meant to be *at* ``p0``, not worse than it:
    rounding up would overstate the wrong-rejection risk for small lots.
    """
    _check_int("population_size", population_size)
    if population_size < 1:
        raise ValueError(f"population_size must be >= 1, got {population_size}")
    _check_probability("p0", p0)
    return min(population_size, math.floor(population_size * p0 + 0.5 + ALPHA_TOLERANCE))


def alpha(n: int, c: int, p0: float, population_size: int | None = None) -> float:
    """Wrong-rejection risk ``alpha = P(D > c | p0)`` of plan ``(n, c)``.

    Binomial when ``population_size`` is None::

        alpha = 1 - sum_{d=0..c} C(n, d) p0^d (1 - p0)^(n - d)

    Hypergeometric when the population size ``N`` is given, with
    ``D0 = nonconforming_in_population(N, p0)`` bad units in the lot::

        alpha = 1 - sum_{d=0..c} C(D0, d) C(N - D0, n - d) / C(N, n)

    Requires ``0 <= c < n`` (``n <= N`` when ``N`` is given) and
    ``0 <= p0 <= 1``; raises ``ValueError`` naming the argument otherwise.
    """
    return _prob_exceeds(n, c, p0, population_size, rate_name="p0")


def detection_power(n: int, c: int, p: float, population_size: int | None = None) -> float:
    """Chance ``P(D > c | p)`` that plan ``(n, c)`` finds a population with true rate ``p``.

    The same tail as :func:`alpha`, evaluated at the true fraction
    nonconforming ``p`` (``D0 = round_half_up(N * p)`` when ``N`` is given).
    Non-decreasing in ``p``: a worse population is never less likely to be
    caught. With the default plan (1, 0) the power is simply ``p``, which is
    why one clean unit is "no finding", not evidence of conformity.
    """
    return _prob_exceeds(n, c, p, population_size, rate_name="p")


def max_sample_size(
    p0: float,
    c: int = 0,
    alpha_max: float = 0.05,
    population_size: int | None = None,
) -> int:
    """Largest sample size ``n`` with ``alpha(n, c, p0) <= alpha_max`` (+ ``ALPHA_TOLERANCE``).

    ``alpha`` is non-decreasing in ``n`` for fixed ``c`` (each extra unit is
    another chance of a nonconforming draw), so the admissible sizes form a
    range ``c+1 .. n_max`` and ``n_max`` is found by doubling then bisection.
    For ``c = 0`` (binomial) it has the closed form
    ``n_max = floor(ln(1 - alpha_max) / ln(1 - p0))``; e.g. at 5 %:
    p0 = 0.5 % -> 10, 1 % -> 5, 5 % -> 1.

    Returns ``N`` when every size up to the population size is admissible.
    Raises ``ValueError`` when no size is admissible (already ``alpha(c+1) >
    alpha_max``, e.g. p0 = 6 % with c = 0) or when the answer is unbounded
    (``p0 = 0`` without a population size): both mean the question has no
    integer answer, and a silent sentinel would be mistaken for a plan.
    """
    _check_probability("p0", p0)
    _check_int("c", c)
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    if not (isinstance(alpha_max, int | float) and 0.0 < alpha_max < 1.0):
        raise ValueError(f"alpha_max must be strictly between 0 and 1, got {alpha_max!r}")
    if population_size is not None:
        _check_int("population_size", population_size)
        if population_size <= c:
            raise ValueError(
                f"population_size must exceed c={c} (a plan needs c < n <= N), "
                f"got {population_size}"
            )

    def admissible(n: int) -> bool:
        return _prob_exceeds(n, c, p0, population_size, "p0") <= alpha_max + ALPHA_TOLERANCE

    lo = c + 1
    if not admissible(lo):
        raise ValueError(
            f"no sample size is admissible: alpha(n={lo}, c={c}, p0={p0}) already exceeds "
            f"alpha_max={alpha_max}; raise c or the declared quality level p0"
        )
    upper_limit = population_size
    if upper_limit is not None and admissible(upper_limit):
        return upper_limit
    if upper_limit is None and p0 == 0.0:
        raise ValueError(
            "p0=0.0: with a perfect declared quality level every sample size is admissible "
            "(alpha is 0); give population_size to bound n"
        )
    # Invariant: admissible(lo) and not admissible(hi). With p0 > 0 and no
    # population bound, alpha -> 1 as n grows, so the doubling terminates.
    step = 1
    hi = lo + step
    while upper_limit is None or hi < upper_limit:
        if not admissible(hi):
            break
        lo = hi
        step *= 2
        hi = lo + step
    else:
        hi = upper_limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if admissible(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _prob_exceeds(
    n: int, c: int, rate: float, population_size: int | None, rate_name: str
) -> float:
    """``P(D > c)`` for a sample of ``n`` at nonconforming rate ``rate``."""
    _check_int("n", n)
    _check_int("c", c)
    _check_probability(rate_name, rate)
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    if n <= c:
        raise ValueError(f"n must be greater than c={c} (a plan needs 0 <= c < n), got {n}")
    if population_size is None:
        return _binomial_upper_tail(n, c, rate)
    _check_int("population_size", population_size)
    if population_size < n:
        raise ValueError(f"population_size must be >= the sample size n={n}, got {population_size}")
    bad = nonconforming_in_population(population_size, rate)
    return _hypergeometric_upper_tail(population_size, bad, n, c)


def _binomial_upper_tail(n: int, c: int, p: float) -> float:
    if p == 0.0:
        return 0.0  # D is always 0 <= c
    if p == 1.0:
        return 1.0  # D is always n > c
    log_q = math.log1p(-p)
    if c == 0:
        # 1 - (1-p)^n without cancellation for small p.
        return -math.expm1(n * log_q)
    log_p = math.log(p)
    lower = math.fsum(
        math.exp(math.log(math.comb(n, d)) + d * log_p + (n - d) * log_q) for d in range(c + 1)
    )
    return min(1.0, max(0.0, 1.0 - lower))


def _hypergeometric_upper_tail(population: int, bad: int, n: int, c: int) -> float:
    good = population - bad
    if c >= min(n, bad):
        return 0.0  # cannot draw more than c bad units
    if n > good:
        # The sample is bigger than the good part of the lot, so at least
        # n - good bad units are certain. Rare (huge p or n close to N): use
        # exact integers; math.comb(k, r) is 0 for r > k, covering impossible draws.
        total = math.comb(population, n)
        ways = sum(math.comb(bad, d) * math.comb(good, n - d) for d in range(c + 1))
        return (total - ways) / total  # int / int is correctly rounded
    # P(D = 0) = C(good, n) / C(N, n) = prod_{i<n} (1 - bad/(N-i))
    #          = prod_{i<bad} (1 - n/(N-i))      (same value; take the shorter product)
    # summed in log space: each log1p is accurate to an ulp and fsum adds them
    # exactly, so this stays accurate where C(N, n) would have 10^5 digits.
    k, terms = (n, bad) if bad <= n else (bad, n)
    log_p = math.fsum(math.log1p(-k / (population - i)) for i in range(terms))
    if c == 0:
        return -math.expm1(log_p)
    log_terms = [log_p]
    for d in range(c):
        # P(D = d+1) / P(D = d) = (bad - d)(n - d) / ((d + 1)(good - n + d + 1))
        log_p += math.log((bad - d) * (n - d)) - math.log((d + 1) * (good - n + d + 1))
        log_terms.append(log_p)
    lower = math.fsum(math.exp(t) for t in log_terms)
    return min(1.0, max(0.0, 1.0 - lower))
