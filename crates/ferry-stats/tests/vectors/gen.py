#!/usr/bin/env python3
"""Test vectors for ferry-stats: inputs and scipy's outputs.

Writes vectors.json (next to this script unless --out says otherwise). Every
input comes from a seeded numpy Generator or from a fixed construction, so
the file is the same on every run with the same scipy.

    python gen.py                 # rewrite vectors.json
    python gen.py --out /tmp/v.json
    python gen.py --check         # regenerate in memory and compare with the
                                  # committed file (1e-10 relative); exit 1
                                  # with a summary of the differences

The Rust integration tests (tests/it/main.rs) replay every case and require
agreement to 1e-9 relative.
"""

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy
from scipy import special, stats
from scipy.spatial import distance
from scipy.stats import contingency

SEED = 20261126
# Same scipy, another CPU: numpy picks its SIMD and BLAS kernels per machine,
# and kstwo's Pomeranz recursion (numpy array products) was seen to differ at
# 1.6e-12 relative between two x86_64 machines. 1e-10 still catches a stale
# or hand-edited file and sits 10x inside the 1e-9 the Rust tests require.
CHECK_RTOL = 1e-10
# Below the smallest normal double, relative error has no meaning: values
# are compared absolutely at this scale.
TINY = np.finfo(float).tiny
MAX_BYTES = 3_000_000


# --- inputs serde_json reads exactly ------------------------------------------
#
# serde_json (without its `float_roundtrip` feature) turns "d.ddd...e-k" into
# significand / 10^k; that is exact when the significand is at most 2^53 and
# k at most 22, and may be an ulp off otherwise (17-digit reprs are). An ulp
# matters for inputs placed on a branch boundary, so every float input is
# rounded to 15 significant digits and checked against that rule.


def exact(x):
    """x rounded to 15 significant digits, a decimal serde_json reads exactly."""
    y = float(f"{float(x):.15g}")
    assert parses_exactly(y), y
    return y


def parses_exactly(y):
    mantissa, _, exp = repr(float(y)).lower().partition("e")
    digits = mantissa.lstrip("-")
    frac = len(digits.split(".")[1]) if "." in digits else 0
    significand = int(digits.replace(".", ""))
    e10 = int(exp or 0) - frac
    return significand <= 2**53 and -22 <= e10 <= 22


INPUTS = {
    "ks_2samp_exact": ["a", "b"],
    "ks_2samp_asymptotic": ["a", "b"],
    "kstwo_sf": ["d"],
    "chi2_sf": ["x"],
    "chisquare": ["observed", "expected"],
    "chi2_contingency": ["table"],
    "wasserstein_distance": ["u", "v"],
    "jensenshannon": ["p", "q", "base"],
    "psi": ["expected", "actual"],
    "normal_sf": ["z"],
}


def check_inputs(data):
    def walk(v):
        if isinstance(v, list):
            for x in v:
                yield from walk(x)
        elif isinstance(v, float):
            yield v

    for section, keys in INPUTS.items():
        for case in data[section]:
            for key in keys:
                bad = [x for x in walk(case[key]) if not parses_exactly(x)]
                assert not bad, f"{section} {case.get('name', '')} {key}: {bad[:3]} do not parse exactly"


# --- KS ---------------------------------------------------------------------


def kolmogn_branch(n, x):
    """The branch of scipy's _kolmogn(n, x, cdf=False) that answers."""
    if x >= 1.0:
        return "x>=1"
    if x <= 0.0:
        return "x<=0"
    t = n * x
    if t <= 1.0:
        if t <= 0.5:
            return "t<=1/2"
        return "ruben_gambino_low" if n <= 140 else "ruben_gambino_low_stirling"
    if t >= n - 1:
        return "ruben_gambino_high"
    if x >= 0.5:
        return "smirnov_exact"
    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            return "dmtw"
        if nxsquared <= 4:
            return "pomeranz"
        return "smirnov_miller"
    if nxsquared >= 370.0:
        return "underflow"
    if nxsquared >= 2.2:
        return "smirnov_approx" if n > 1_000_000 else "smirnov"
    if n <= 100_000 and n * x**1.5 <= 1.4:
        return "dmtw_large_n"
    return "pelz_good"


# Every branch of _kolmogn that kstwo.sf can take. ks_2samp with samples of
# at most 20 000 values has n = round(n1 n2 / (n1 + n2)) <= 10 000, so it
# cannot reach the last two; the kstwo_sf section covers them directly.
ALL_BRANCHES = [
    "x>=1", "t<=1/2", "ruben_gambino_low", "ruben_gambino_low_stirling",
    "ruben_gambino_high", "smirnov_exact", "dmtw", "pomeranz",
    "smirnov_miller", "underflow", "smirnov", "dmtw_large_n", "pelz_good",
    "smirnov_approx", "pelz_good_n>100000",
]
KS_2SAMP_UNREACHABLE = {"smirnov_approx", "pelz_good_n>100000"}


def branch_label(n, x):
    b = kolmogn_branch(n, x)
    if b == "pelz_good" and n > 100_000:
        return "pelz_good_n>100000"
    return b


def run_ks(a, b):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stats.ks_2samp(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    fell_back = any("Exact calculation unsuccessful" in str(w.message) for w in caught)
    n1, n2 = len(a), len(b)
    exact = max(n1, n2) <= 10_000 and not fell_back
    out = {
        "statistic": float(res.statistic),
        "pvalue": float(res.pvalue),
        "method": "exact" if exact else "asymptotic",
    }
    if not exact:
        m, n = sorted([float(n1), float(n2)], reverse=True)
        out["n"] = int(np.round(m * n / (m + n)))
        out["branch"] = branch_label(out["n"], float(res.statistic))
    return out


def ranks(x, y):
    """Replace two real samples by their ranks in the pooled sample: the KS
    statistic only depends on the order, and integers keep the file small and
    exact."""
    pooled = np.concatenate([x, y])
    r = np.argsort(np.argsort(pooled, kind="stable"), kind="stable")
    return r[: len(x)].tolist(), r[len(x):].tolist()


def placed(n1, n2, c, delta):
    """a = 0, 2, 4, ...; b at odd values between them, at the quantiles
    c + (1 - c) u^(1 + delta) of a for u = (k + 1/2) / n2. D is about
    c + delta / e, so c and delta steer the statistic."""
    a = (2 * np.arange(n1)).tolist()
    u = (np.arange(n2) + 0.5) / n2
    p = c + (1 - c) * u ** (1 + delta)
    pos = np.minimum(np.floor(n1 * p).astype(np.int64), n1)
    b = (2 * pos + 1).tolist()
    return a, b


def ks_exact_cases(rng):
    cases = []

    def add(name, a, b):
        case = {"name": name, "a": a, "b": b}
        case.update(run_ks(a, b))
        assert case["method"] == "exact", name
        cases.append(case)

    add("n=1,1 equal", [0.5], [0.5])
    add("n=1,1 different", [0.0], [1.0])
    add("n=1,5 middle", [2.5], [0, 1, 2, 3, 4])
    add("n=3,7 disjoint", [0, 1, 2], list(range(10, 17)))
    add("n=5,5 disjoint", [0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    add("n=10,10 interleaved", list(range(0, 20, 2)), list(range(1, 21, 2)))
    t1 = rng.integers(0, 5, size=20).tolist()
    t2 = rng.integers(0, 5, size=30).tolist()
    add("n=20,30 heavy ties", t1, t2)
    t1 = rng.integers(0, 3, size=100).tolist()
    t2 = rng.integers(1, 4, size=100).tolist()
    add("n=100,100 heavy ties shifted", t1, t2)
    for n1, n2, shift in [
        (100, 100, 0.0),
        (100, 100, 1.0),
        (200, 150, 0.3),
        (500, 499, 0.1),
        (1000, 1000, 0.02),
        (1000, 800, 0.3),
        (2000, 3000, 0.5),
        (3000, 2000, 1.5),
        (7, 10000, 1.0),
        (10000, 37, -0.4),
        (10000, 9999, 0.03),
        (10000, 10000, 0.05),
    ]:
        x = rng.normal(size=n1)
        y = rng.normal(loc=shift, size=n2)
        a, b = ranks(x, y)
        add(f"n={n1},{n2} normal shift {shift}", a, b)
    # Equal sizes, one sample entirely below the other: p = 2 / C(2n, n).
    add("n=500,500 disjoint", list(range(500)), list(range(500, 1000)))
    add("n=300,200 disjoint", list(range(300)), list(range(300, 500)))
    add("n=5000,5000 disjoint", list(range(5000)), list(range(5000, 10000)))
    # Tiny D: b spread evenly through a.
    a, b = placed(10000, 9000, 0.0, 0.0)
    add("n=10000,9000 evenly interleaved", a, b)
    add("n=1,10000", [4999.5], list(range(10000)))
    # Values with a float part and duplicates across the samples.
    x = np.round(rng.normal(size=400), 2)
    y = np.round(rng.normal(loc=0.2, size=300), 2)
    add("n=400,300 rounded normals", x.tolist(), y.tolist())
    return cases


# (name, n1, n2, target branch, (c, delta) candidates in order)
ASYMP_TARGETS = [
    ("t<=1/2", 10002, 1, [(0.0, d) for d in np.linspace(0, 0.001, 11)]),
    ("ruben_gambino_low", 10001, 1, [(c, 0.0) for c in np.linspace(0.55, 0.95, 9)]),
    ("ruben_gambino_low_stirling", 12000, 3000, [(0.0, d) for d in np.linspace(0, 0.001, 11)]),
    ("ruben_gambino_high", 10001, 4, [(c, 0.0) for c in np.linspace(0.76, 0.95, 5)]),
    ("smirnov_exact", 10001, 30, [(c, 0.0) for c in np.linspace(0.55, 0.8, 6)]),
    ("dmtw", 10001, 100, [(0.0, d) for d in np.linspace(0.05, 0.2, 16)]),
    ("pomeranz", 10001, 100, [(c, 0.0) for c in np.linspace(0.1, 0.18, 9)]),
    ("smirnov_miller", 10001, 100, [(c, 0.0) for c in np.linspace(0.25, 0.45, 5)]),
    ("smirnov", 12000, 3000, [(c, 0.0) for c in [0.04, 0.1, 0.2, 0.3, 0.37]]),
    ("underflow", 10001, 10001, [(c, 0.0) for c in [0.3, 0.4]]),
    ("dmtw_large_n", 12000, 3000, [(0.0, d) for d in np.linspace(0.002, 0.02, 19)]),
    ("pelz_good", 12000, 3000, [(0.0, d) for d in np.linspace(0.02, 0.08, 13)]),
]


def ks_asymptotic_cases(rng):
    cases = []

    def add(name, a, b, want=None):
        case = {"name": name, "a": a, "b": b}
        case.update(run_ks(a, b))
        assert case["method"] == "asymptotic", name
        if want is not None and case["branch"] != want:
            return False
        cases.append(case)
        return True

    for target, n1, n2, candidates in ASYMP_TARGETS:
        for c, delta in candidates:
            a, b = placed(n1, n2, float(c), float(delta))
            if add(f"n={n1},{n2} {target} (c={c:.4g}, delta={delta:.4g})", a, b, target):
                break
        else:
            raise SystemExit(f"no candidate reaches branch {target}")
    # More points in the smirnov branch, down to very small p-values.
    for c in [0.2, 0.3, 0.37]:
        a, b = placed(12000, 3000, c, 0.0)
        add(f"n=12000,3000 smirnov tail (c={c})", a, b, "smirnov")
    add("n=10001,3 disjoint", list(range(10001)), [20000, 20001, 20002], "x>=1")
    # Realistic samples.
    for n1, n2, shift in [(15000, 5000, 0.05), (10001, 10001, 0.0), (20000, 40, 0.3)]:
        x = rng.normal(size=n1)
        y = rng.normal(loc=shift, size=n2)
        a, b = ranks(x, y)
        add(f"n={n1},{n2} normal shift {shift}", a, b)
    t1 = rng.integers(0, 50, size=12000).tolist()
    t2 = rng.integers(0, 50, size=8000).tolist()
    add("n=12000,8000 heavy ties", t1, t2)
    covered = {c["branch"] for c in cases}
    missing = set(ALL_BRANCHES) - KS_2SAMP_UNREACHABLE - covered
    assert not missing, f"ks_2samp cases miss branches {sorted(missing)}"
    return cases


def kstwo_cases():
    cases = []
    seen = set()

    def add(n, x):
        if not (0.0 < x <= 1.0) or (n, x) in seen:
            return
        seen.add((n, x))
        cases.append({
            "n": n,
            "d": x,
            "sf": float(stats.kstwo.sf(x, n)),
            "branch": branch_label(n, x),
        })

    # A grid over every branch for n up to 100 001.
    for n in [1, 2, 3, 5, 10, 37, 100, 140, 141, 500, 2400, 10000, 100000, 100001]:
        xs = [exact(x) for x in [0.4 / n, 0.5 / n, 0.75 / n, 1.0 / n, 1.5 / n, 0.3,
                                 0.49, 0.5, 0.6, 0.9, 1.0 - 1.0 / n, 1.0 - 0.5 / n, 1.0]]
        for nxsq in [0.1, 0.5, 0.754693, 0.76, 1.0, 2.0, 2.2, 3.9, 4.0, 4.1,
                     10.0, 17.0, 18.0, 50.0, 150.0, 300.0, 345.0, 369.0, 371.0]:
            xs.append(exact(math.sqrt(nxsq / n)))
        for c in [1.2, 1.39, 1.41, 2.0]:  # around n x^1.5 = 1.4
            xs.append(exact((c / n) ** (2.0 / 3.0)))
        for x in xs:
            add(n, x)
    # A few points for huge n (the exact sums there take ~n steps each).
    for n in [250000, 1000000, 1000001, 3000000]:
        for x in [0.75 / n, math.sqrt(0.5 / n), math.sqrt(2.5 / n), math.sqrt(345 / n), 0.6]:
            add(n, exact(x))
    covered = {c["branch"] for c in cases}
    missing = set(ALL_BRANCHES) - covered
    assert not missing, f"kstwo cases miss branches {sorted(missing)}"
    return cases


# --- chi-square ---------------------------------------------------------------


def chi2_sf_cases():
    cases = []
    for df in [1, 2, 3, 4, 5, 7, 10, 11, 20, 49, 50, 100, 101, 1000, 1001,
               10000, 100001, 1000000]:
        xs = [1e-10, 1e-3 * df, 0.1 * df, 0.5 * df, 0.9 * df, float(df),
              1.1 * df, 2.0 * df, 5.0 * df]
        s = math.sqrt(2.0 * df)
        xs += [df + k * s for k in (1, 3, 10, 30)]
        xs += [x for x in (100.0, 700.0, 1300.0) if x > df]
        for x in map(exact, xs):
            cases.append({"df": df, "x": x, "sf": float(stats.chi2.sf(x, df))})
    return cases


def chisquare_cases(rng):
    cases = []

    def add(name, obs, exp):
        res = stats.chisquare(np.asarray(obs, dtype=float), np.asarray(exp, dtype=float))
        cases.append({
            "name": name,
            "observed": obs,
            "expected": exp,
            "statistic": float(res.statistic),
            "pvalue": float(res.pvalue),
        })

    for k in [2, 5, 10, 50, 1000]:
        obs = rng.multinomial(100 * k, np.full(k, 1.0 / k))
        add(f"k={k} uniform", obs.tolist(), [100.0] * k)
    probs = rng.dirichlet(np.ones(8))
    obs = rng.multinomial(5000, probs)
    add("k=8 matching non-uniform", obs.tolist(), [exact(x) for x in probs * 5000])
    obs = rng.multinomial(5000, rng.dirichlet(np.ones(8)))
    add("k=8 mismatched non-uniform", obs.tolist(), [exact(x) for x in probs * 5000])
    add("k=4 p~1e-4", [300, 200, 250, 250], [250.0] * 4)
    add("k=4 p~1e-82", [500, 250, 150, 100], [250.0] * 4)
    add("k=3 p~1e-250", [1500, 400, 100], [exact(2000 / 3)] * 3)
    obs = rng.multinomial(200_000, np.linspace(1, 2, 300) / np.linspace(1, 2, 300).sum())
    add("k=300 p tiny", obs.tolist(), [exact(200_000 / 300)] * 300)
    add("float counts", [10.5, 20.25, 30.125, 39.125], [25.0, 25.0, 25.0, 25.0])
    add("sums within tolerance", [10.0, 20.0, 30.0], [20.0, 20.0, 20.000000001])
    add("zero observed", [0, 5, 10], [5.0, 5.0, 5.0])
    return cases


def contingency_cases(rng):
    cases = []

    def add(name, table):
        t = np.asarray(table)
        res = stats.chi2_contingency(t)
        if np.issubdtype(t.dtype, np.integer) and min(t.shape) > 1:
            v = contingency.association(t, method="cramer")
        elif min(t.shape) > 1:
            plain = stats.chi2_contingency(t, correction=False).statistic
            v = math.sqrt(plain / t.sum() / (min(t.shape) - 1))
        else:
            v = 0.0  # ferry-stats' convention for a single row or column
        cases.append({
            "name": name,
            "table": t.tolist(),
            "statistic": float(res.statistic),
            "pvalue": float(res.pvalue),
            "dof": int(res.dof),
            "cramers_v": float(v),
        })

    add("2x2 yates", [[12, 5], [7, 9]])
    add("2x2 yates small diff", [[10, 10], [10, 11]])
    add("2x2 yates balanced", [[7, 3], [3, 7]])
    add("2x2 p~1e-23", [[500, 300], [300, 500]])
    add("2x2 p~1e-146", [[2000, 1000], [1000, 2000]])
    add("2x2 large counts", [[123456, 120000], [98765, 101234]])
    add("2x2 float counts", [[10.5, 3.25], [4.75, 12.0]])
    for r, c in [(2, 3), (3, 4), (5, 5), (10, 3), (2, 10), (8, 12)]:
        t = rng.integers(5, 60, size=(r, c))
        add(f"{r}x{c} random", t.tolist())
    t = rng.integers(5, 60, size=(4, 6))
    t[0] *= 8
    t[:, 1] //= 4
    add("4x6 dependent", t.tolist())
    add("3x3 p tiny", [[900, 50, 50], [50, 900, 50], [50, 50, 900]])
    add("1x5 dof 0", [[3, 4, 5, 6, 7]])
    add("4x1 dof 0", [[3], [4], [5], [6]])
    return cases


# --- distances ----------------------------------------------------------------


def wasserstein_cases(rng):
    cases = []

    def add(name, u, v):
        cases.append({
            "name": name,
            "u": u,
            "v": v,
            "distance": float(stats.wasserstein_distance(u, v)),
        })

    add("1 vs 1", [0.0], [1.5])
    add("identical", [1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    add("1 vs 100", [0.25], rng.random(100).round(6).tolist())
    add("50 vs 70 normal", rng.normal(size=50).round(6).tolist(),
        rng.normal(0.5, 2.0, size=70).round(6).tolist())
    add("ties", rng.integers(0, 5, size=40).tolist(), rng.integers(1, 7, size=25).tolist())
    add("1000 vs 3000", rng.normal(size=1000).round(5).tolist(),
        rng.standard_t(3, size=3000).round(5).tolist())
    add("large offsets", (1e6 + rng.normal(size=30)).round(3).tolist(),
        (1e6 + 0.1 + rng.normal(size=20)).round(3).tolist())
    add("tiny scale", (rng.normal(size=30) * 1e-6).round(12).tolist(),
        (rng.normal(size=31) * 1e-6).round(12).tolist())
    return cases


def jensenshannon_cases(rng):
    cases = []

    def add(name, p, q, base):
        cases.append({
            "name": name,
            "p": p,
            "q": q,
            "base": base,
            "distance": float(distance.jensenshannon(p, q, base=base)),
        })

    for k in [2, 5, 20, 100]:
        p = rng.random(k).round(6).tolist()
        q = rng.random(k).round(6).tolist()
        add(f"k={k} random", p, q, None)
        add(f"k={k} random base 2", p, q, 2.0)
    counts_p = rng.integers(0, 30, size=12).tolist()
    counts_q = rng.integers(0, 30, size=12).tolist()
    add("unnormalised counts", counts_p, counts_q, None)
    add("zeros in p", [0.0, 0.2, 0.3, 0.0, 0.5], [0.1, 0.2, 0.3, 0.2, 0.2], None)
    add("zeros in q base 2", [0.1, 0.2, 0.3, 0.2, 0.2], [0.0, 0.2, 0.3, 0.0, 0.5], 2.0)
    add("zeros in both", [0.0, 0.5, 0.5, 0.0], [0.0, 0.25, 0.25, 0.5], None)
    add("disjoint", [1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 1.0], None)
    add("disjoint base 2", [1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 1.0], 2.0)
    add("base 10", [0.1, 0.4, 0.5], [0.3, 0.3, 0.4], 10.0)
    add("base e", [0.1, 0.4, 0.5], [0.3, 0.3, 0.4], math.e)
    add("close", [0.25, 0.25, 0.25, 0.25], [0.26, 0.24, 0.25, 0.25], None)
    return cases


def psi_cases(rng):
    cases = []

    def add(name, e, a):
        e = np.asarray(e, dtype=float)
        a = np.asarray(a, dtype=float)
        value = np.sum((a - e) * np.log(a / e))
        cases.append({
            "name": name,
            "expected": e.tolist(),
            "actual": a.tolist(),
            "psi": float(value),
        })

    def shares(counts, floor=1e-4):
        s = np.asarray(counts, dtype=float)
        s = s / s.sum()
        s = np.maximum(s, floor)
        return np.array([exact(x) for x in s / s.sum()])

    for k in [2, 10, 20]:
        base = rng.normal(size=5000)
        current = rng.normal(0.1, 1.1, size=5000)
        edges = np.quantile(base, np.linspace(0, 1, k + 1))
        edges[0], edges[-1] = -np.inf, np.inf
        e = shares(np.histogram(base, edges)[0])
        a = shares(np.histogram(current, edges)[0])
        add(f"{k} quantile bins", e.tolist(), a.tolist())
    add("identical", [0.2, 0.3, 0.5], [0.2, 0.3, 0.5])
    add("floored empty bin", shares([50, 30, 20, 0]).tolist(), shares([10, 30, 30, 30]).tolist())
    add("large shift", [0.7, 0.2, 0.1], [0.1, 0.2, 0.7])
    return cases


# --- normal -------------------------------------------------------------------


def z_test_cases():
    cases = []
    for xa, na, xb, nb in [
        (60, 100, 40, 100),
        (1, 20, 3, 25),
        (480, 1000, 520, 1000),
        (5000, 10000, 4000, 10000),
        (123, 4567, 150, 4321),
        (1, 1000000, 10, 1000000),
        (999, 1000, 1, 1000),
        (0, 50, 5, 50),
        (30, 30, 29, 31),
    ]:
        pa, pb = xa / na, xb / nb
        pooled = (xa + xb) / (na + nb)
        se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
        z = (pa - pb) / se
        cases.append({
            "successes_a": xa,
            "n_a": na,
            "successes_b": xb,
            "n_b": nb,
            "statistic": z,
            "pvalue": float(2 * stats.norm.sf(abs(z))),
        })
    return cases


def normal_sf_cases():
    zs = [-40.0, -8.5, -3.0, -1.0, -0.5, -1e-8, 0.0, 1e-8, 0.3, 0.7071, 0.7072,
          1.0, 1.4142, 1.4143, 1.959963984540054, 2.5, 5.0, 8.0, 11.3, 11.4, 20.0,
          37.0, 37.5, 38.0, 38.5, 40.0]
    return [{"z": z, "sf": float(stats.norm.sf(z))} for z in zs]


# --- driver -------------------------------------------------------------------


def generate():
    rng = np.random.default_rng(SEED)
    data = {
        "meta": {
            "generator": "crates/ferry-stats/tests/vectors/gen.py",
            "seed": SEED,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
        },
        "ks_2samp_exact": ks_exact_cases(rng),
        "ks_2samp_asymptotic": ks_asymptotic_cases(rng),
        "kstwo_sf": kstwo_cases(),
        "chi2_sf": chi2_sf_cases(),
        "chisquare": chisquare_cases(rng),
        "chi2_contingency": contingency_cases(rng),
        "wasserstein_distance": wasserstein_cases(rng),
        "jensenshannon": jensenshannon_cases(rng),
        "psi": psi_cases(rng),
        "two_proportion_z_test": z_test_cases(),
        "normal_sf": normal_sf_cases(),
    }
    check_inputs(data)
    return data


def dumps(data):
    """One case per line, so that diffs of the file stay readable."""
    parts = ["{"]
    sections = list(data.items())
    for i, (key, value) in enumerate(sections):
        comma = "," if i + 1 < len(sections) else ""
        if isinstance(value, list):
            parts.append(f"{json.dumps(key)}: [")
            for j, case in enumerate(value):
                sep = "," if j + 1 < len(value) else ""
                parts.append(json.dumps(case, separators=(",", ":"), allow_nan=False) + sep)
            parts.append("]" + comma)
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}{comma}")
    parts.append("}")
    return "\n".join(parts) + "\n"


def differences(old, new, path="$"):
    """Yield (path, message) for every difference beyond CHECK_RTOL."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key not in old:
                yield f"{path}.{key}", "only in the regenerated vectors"
            elif key not in new:
                yield f"{path}.{key}", "only in the committed file"
            else:
                yield from differences(old[key], new[key], f"{path}.{key}")
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            yield path, f"{len(old)} entries committed, {len(new)} regenerated"
            return
        for i, (a, b) in enumerate(zip(old, new)):
            name = b.get("name") if isinstance(b, dict) else None
            label = f"{path}[{i}]" + (f" ({name})" if name else "")
            yield from differences(a, b, label)
    elif isinstance(old, (int, float)) and isinstance(new, (int, float)) \
            and not isinstance(old, bool) and not isinstance(new, bool):
        scale = max(abs(old), abs(new), TINY)
        if abs(old - new) / scale > CHECK_RTOL:
            yield path, f"committed {old!r}, regenerated {new!r}"
    elif old != new:
        yield path, f"committed {old!r}, regenerated {new!r}"


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=here / "vectors.json",
                        help="where to write (default: vectors.json next to this script)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the file at --out instead of writing it")
    args = parser.parse_args()

    data = generate()
    text = dumps(data)
    if len(text.encode()) > MAX_BYTES:
        raise SystemExit(f"vectors are {len(text.encode())} bytes, over {MAX_BYTES}")

    if not args.check:
        args.out.write_text(text)
        print(f"wrote {args.out} ({len(text.encode())} bytes)")
        return 0

    committed = json.loads(args.out.read_text())
    old_meta, new_meta = committed.pop("meta", {}), data.pop("meta")
    if old_meta.get("scipy") != new_meta["scipy"]:
        print(f"note: committed with scipy {old_meta.get('scipy')}, "
              f"regenerated with scipy {new_meta['scipy']}")
    diffs = list(differences(committed, data))
    if not diffs:
        print(f"{args.out}: up to date (tolerance {CHECK_RTOL} relative)")
        return 0
    print(f"{args.out}: {len(diffs)} differences beyond {CHECK_RTOL} relative", file=sys.stderr)
    for path, message in diffs[:30]:
        print(f"  {path}: {message}", file=sys.stderr)
    if len(diffs) > 30:
        print(f"  ... and {len(diffs) - 30} more", file=sys.stderr)
    print("hint: run `python gen.py` to rewrite the file, then review the diff", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
