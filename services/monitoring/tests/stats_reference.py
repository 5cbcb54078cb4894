#!/usr/bin/env python3
"""Reference values for the drift statistics in ``src/drift.rs``.

The Rust test ``drift::tests::matches_the_scipy_reference_values`` reads
``stats_samples.json`` (next to this script): fixed samples together with the
values numpy/scipy compute for them.  This script produces and audits that
file.

Usage::

    python3 stats_reference.py            # same as --check
    python3 stats_reference.py --check    # recompute from the stored samples
    python3 stats_reference.py --write    # regenerate samples and values

``--write`` draws the samples with ``numpy.random.default_rng(SEED)`` and
stores them with the reference values.  ``--check`` never draws anything: it
reads the samples back from the JSON file, recomputes every reference value
with the installed numpy/scipy and exits non-zero when a stored value differs
from the fresh one by more than 1e-12 (absolute or relative, see ``TOL``).

What is computed, and how the Rust code mirrors it:

* ``ks_statistic`` / ``ks_pvalue``: ``scipy.stats.ks_2samp(a, b,
  method="asymp")``.  For the two-sided test scipy evaluates
  ``scipy.stats.kstwo.sf(D, round(m*n/(m+n)))`` -- the one-sample
  Kolmogorov-Smirnov distribution at the rounded effective sample size --
  not the limiting Kolmogorov series.  ``ks_effective_n`` stores that
  rounded size.
* ``kstwo_sf``: a grid of ``scipy.stats.kstwo.sf(d, n)`` values chosen to hit
  every branch of scipy's algorithm (Ruben-Gambino tails, Durbin matrix,
  Pomeranz, Pelz-Good, exact Smirnov sum, the n > 1e6 approximation).
* ``wasserstein``: ``scipy.stats.wasserstein_distance(a, b)``.
* ``psi`` / ``psi_edges``: computed by hand below (``psi_by_hand``): edges are
  ``np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))`` (numpy's
  default "linear" quantile), bins are (-inf, e1], (e1, e2], ..., (ek, +inf),
  i.e. ``np.searchsorted(edges, x, side="left")``, proportions are floored at
  ``PSI_EPSILON`` and PSI = sum((cur - ref) * ln(cur / ref)).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import scipy
from scipy import stats

SEED = 20240611
PSI_BINS = 10
PSI_EPSILON = 1e-4
TOL = 1e-12
JSON_PATH = Path(__file__).with_name("stats_samples.json")


def generate_cases(seed: int) -> list[dict]:
    """Draw the fixed samples (only used by --write)."""
    rng = np.random.default_rng(seed)
    cases = []

    def add(name: str, reference: np.ndarray, current: np.ndarray) -> None:
        cases.append(
            {
                "name": name,
                "reference": [float(x) for x in reference],
                "current": [float(x) for x in current],
            }
        )

    add("normal_same", rng.normal(0.0, 1.0, 300), rng.normal(0.0, 1.0, 250))
    add("normal_shifted", rng.normal(0.0, 1.0, 500), rng.normal(0.3, 1.0, 400))
    add(
        "discrete_ties",
        rng.choice(6, size=400, p=[0.10, 0.20, 0.30, 0.20, 0.15, 0.05]).astype(float),
        rng.choice(6, size=350, p=[0.05, 0.15, 0.30, 0.25, 0.15, 0.10]).astype(float),
    )
    add(
        "lognormal_scaled",
        rng.lognormal(0.0, 0.5, 600),
        1.1 * rng.lognormal(0.0, 0.5, 700),
    )
    return cases


def kstwo_grid() -> list[tuple[int, float]]:
    """(n, d) points covering every branch of scipy's kstwo.sf."""
    points = []
    for n in [1, 2, 3, 5, 10, 50, 136, 140, 141, 187, 500, 1000, 5000, 20000,
              150000, 2000000]:
        ds = [0.75 / n, 0.9 * (1.4 / n) ** (2.0 / 3.0)]
        ds += [math.sqrt(c / n) for c in (0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 50.0)]
        ds += [0.6, (n - 0.5) / n]
        for d in ds:
            if 0.0 < d < 1.0:
                points.append((n, float(d)))
    return points


def psi_by_hand(reference, current, bins=PSI_BINS, eps=PSI_EPSILON):
    """PSI exactly as documented in drift.rs, with numpy only."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    inner = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(reference, inner))  # method="linear"
    k = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=k)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="left"), minlength=k)
    ref_p = np.maximum(ref_counts / len(reference), eps)
    cur_p = np.maximum(cur_counts / len(current), eps)
    value = float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))
    return value, [float(e) for e in edges]


def reference_values(case: dict) -> dict:
    a = np.asarray(case["reference"], dtype=float)
    b = np.asarray(case["current"], dtype=float)
    ks = stats.ks_2samp(a, b, method="asymp")
    m, n = sorted([float(len(a)), float(len(b))], reverse=True)
    effective_n = int(np.round(m * n / (m + n)))
    psi, edges = psi_by_hand(a, b)
    return {
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "ks_effective_n": effective_n,
        "wasserstein": float(stats.wasserstein_distance(a, b)),
        "psi": psi,
        "psi_edges": edges,
    }


def kstwo_values(points) -> list[dict]:
    return [{"n": n, "d": d, "sf": float(stats.kstwo.sf(d, n))} for n, d in points]


def close(stored: float, fresh: float) -> bool:
    return math.isclose(stored, fresh, rel_tol=TOL, abs_tol=TOL)


def write() -> int:
    cases = generate_cases(SEED)
    for case in cases:
        case["expected"] = reference_values(case)
    doc = {
        "generated_by": "services/monitoring/tests/stats_reference.py --write",
        "seed": SEED,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "psi_bins": PSI_BINS,
        "psi_epsilon": PSI_EPSILON,
        "cases": cases,
        "kstwo_sf": kstwo_values(kstwo_grid()),
    }
    JSON_PATH.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {JSON_PATH} ({len(cases)} cases, {len(doc['kstwo_sf'])} kstwo points)")
    return 0


def check() -> int:
    doc = json.loads(JSON_PATH.read_text())
    if doc["psi_bins"] != PSI_BINS or doc["psi_epsilon"] != PSI_EPSILON:
        print("psi_bins / psi_epsilon in the JSON differ from this script")
        return 1
    rows = []  # (case, metric, stored, fresh)
    for case in doc["cases"]:
        fresh = reference_values(case)
        stored = case["expected"]
        for metric in ("ks_statistic", "ks_pvalue", "ks_effective_n", "wasserstein", "psi"):
            rows.append((case["name"], metric, stored[metric], fresh[metric]))
        if len(stored["psi_edges"]) != len(fresh["psi_edges"]):
            rows.append((case["name"], "psi_edges.len", len(stored["psi_edges"]),
                         len(fresh["psi_edges"]) + 0.5))
        for i, (s, f) in enumerate(zip(stored["psi_edges"], fresh["psi_edges"])):
            rows.append((case["name"], f"psi_edges[{i}]", s, f))
    grid = [(p["n"], p["d"]) for p in doc["kstwo_sf"]]
    for p, f in zip(doc["kstwo_sf"], kstwo_values(grid)):
        rows.append((f"kstwo n={p['n']}", f"sf(d={p['d']:.6g})", p["sf"], f["sf"]))

    bad = [r for r in rows if not close(float(r[2]), float(r[3]))]
    print(f"numpy {np.__version__}, scipy {scipy.__version__} "
          f"(stored: numpy {doc['numpy_version']}, scipy {doc['scipy_version']})")
    shown = bad if bad else [r for r in rows if "psi_edges[" not in r[1] and "kstwo" not in r[0]]
    print(f"{'case':<22} {'metric':<18} {'stored':>24} {'scipy':>24} {'|diff|':>10}")
    for case, metric, s, f in shown:
        diff = abs(float(s) - float(f))
        print(f"{case:<22} {metric:<18} {s!r:>24} {f!r:>24} {diff:>10.3g}")
    if not bad:
        for label, key in (("psi_edges", "psi_edges["), ("kstwo.sf grid", "sf(d=")):
            diffs = [abs(float(s) - float(f)) for _, m, s, f in rows if key in m]
            print(f"{label:<22} {f'{len(diffs)} values':<18} {'':>24} {'max |diff|':>24} "
                  f"{max(diffs):>10.3g}")
    if bad:
        print(f"FAIL: {len(bad)} of {len(rows)} stored values differ from numpy/scipy "
              f"by more than {TOL:g}")
        return 1
    print(f"OK: {len(rows)} stored values agree with numpy/scipy within {TOL:g}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify the JSON (default)")
    mode.add_argument("--write", action="store_true", help="regenerate the JSON")
    args = parser.parse_args()
    return write() if args.write else check()


if __name__ == "__main__":
    sys.exit(main())
