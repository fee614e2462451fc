"""Gaussian-HMM Baum-Welch: emix against hmmlearn, per iteration, in one run.

Both libraries start from the same parameters (``startprob``, ``transmat``, ``means``,
full ``covariances``) and run a fixed number of iterations (emix ``tol=0``, hmmlearn
``tol=-inf``), with the same M-step: hmmlearn's covariance prior off
(``covars_prior=0, covars_weight=1, min_covar=0``) and emix's ``reg_covar=0``, as in the
parity test of ``tests/models/test_hmm.py``. The time per iteration is the difference
between a fit of ``1 + n`` iterations and a fit of 1, so neither library's set-up is
counted; the minimum over repeats is kept. Both must reach the same final
log-likelihood (1e-6 relative), or the row is flagged and the exit status is 1.

numba compiles emix's forward-backward kernels on their first call in a process (or
loads them from its on-disk cache); that one-off time is printed on its own line and is
not part of any per-iteration time (a warm-up fit runs before the timings).

Usage::

    python benchmarks/bench_hmm.py              # T = 1,000,000, K = 8, D = 4, full covariances
    python benchmarks/bench_hmm.py --quick      # T = 100,000
    python benchmarks/bench_hmm.py --iters 3 --repeats 3 --json results.json

Prints a Markdown table (T, K, D, ms per iteration for each library, speed-up, final
log-likelihoods' relative difference) and, with ``--json PATH``, the same numbers.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import time
import warnings

import numpy as np


def make_data(T, K, D, seed=0):
    """A sticky K-state chain with correlated Gaussian emissions, and a start near it.

    The chain switches with probability 0.05 per step to a uniformly drawn state, so its
    transition matrix is ``0.95 I + 0.05 / K`` (sampled without a Python loop).

    Returns
    -------
    X : ndarray of shape (T, D)
    start : tuple ``(startprob (K,), transmat (K, K), means (K, D), covariances (K, D, D))``
    """
    rng = np.random.default_rng(seed)
    switch = rng.random(T) < 0.05
    switch[0] = True
    draws = rng.integers(0, K, T)
    z = draws[np.maximum.accumulate(np.where(switch, np.arange(T), 0))]
    means = rng.normal(scale=2.0, size=(K, D))
    L = np.eye(D) + 0.3 * rng.normal(size=(K, D, D)) / np.sqrt(D)
    X = means[z] + np.einsum("tij,tj->ti", L[z], rng.standard_normal((T, D)))
    startprob = np.full(K, 1.0 / K)
    transmat = np.full((K, K), 0.2 / (K - 1))
    np.fill_diagonal(transmat, 0.8)
    means0 = means + 0.3 * rng.normal(size=(K, D))
    covs0 = np.tile(np.cov(X[:10_000].T), (K, 1, 1))
    return X, (startprob, transmat, means0, covs0)


def make_emix(start, n_iter):
    import emix

    pi, A, m, c = start
    return emix.HMM(
        len(pi), covariance_type="full", startprob_init=pi, transmat_init=A, means_init=m,
        covariances_init=c, max_iter=n_iter, tol=0.0, family_options={"reg_covar": 0.0},
    )


def make_hmmlearn(start, n_iter):
    from hmmlearn import hmm

    pi, A, m, c = start
    model = hmm.GaussianHMM(
        len(pi), "full", min_covar=0.0, covars_prior=0.0, covars_weight=1.0, init_params="",
        params="stmc", implementation="scaling", n_iter=n_iter, tol=-np.inf,
    )
    model.startprob_, model.transmat_, model.means_, model.covars_ = pi, A, m, c
    return model


def final_loglik(model, T):
    """The log-likelihood (total over rows) of the last iteration's E-step."""
    if hasattr(model, "lower_bounds_"):
        return float(model.lower_bounds_[-1]) * T
    return float(model.monitor_.history[-1])


def _fit(make, start, X, n_iter):
    model = make(start, n_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(X)
        elapsed = time.perf_counter() - t0
    return model, elapsed


def per_iteration(make, start, X, n_iter, repeats):
    """Seconds per Baum-Welch iteration and the longer fit's model.

    ``(min over repeats of a (1+n)-iteration fit - min over repeats of a 1-iteration
    fit) / n``; the minima remove the noise of a shared virtual machine.
    """
    _fit(make, start, X, 1)  # warm-up: compiled kernels, BLAS threads, page faults
    t1 = tn = float("inf")
    model = None
    for _ in range(repeats):
        t1 = min(t1, _fit(make, start, X, 1)[1])
        model, t = _fit(make, start, X, 1 + n_iter)
        tn = min(tn, t)
    return max(tn - t1, 1e-9) / n_iter, model


def numba_first_call():
    """Seconds of the first calls of the compiled kernels in this process, and whether
    they were compiled or loaded from numba's on-disk cache."""
    from emix.models import _fb_numba, forward_backward as fb

    rng = np.random.default_rng(0)
    log_B = rng.normal(size=(5, 2))
    pi, A = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])
    t0 = time.perf_counter()
    fb.forward(log_B, pi, A)
    fb.forward_backward(log_B, pi, A)
    fb.viterbi(log_B, pi, A)
    elapsed = time.perf_counter() - t0
    hits = sum(sum(getattr(_fb_numba, f).stats.cache_hits.values())
               for f in ("forward", "forward_backward", "viterbi"))
    return elapsed, "loaded from cache" if hits == 3 else "compiled"


def describe_machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def to_markdown(row, machine, date):
    return (
        f"Measured {date} on {machine}.\n\n"
        "| T | K | D | covariance | hmmlearn ms/iter | emix ms/iter | speed-up |"
        " log-lik rel. diff |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {row['T']:,} | {row['K']} | {row['D']} | full | {row['hmmlearn_ms']:,.0f} | "
        f"{row['emix_ms']:,.0f} | {row['speedup']:.1f}x | {row['ll_rel_diff']:.1e}"
        f"{'' if row['ll_agree'] else ' MISMATCH'} |"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 100,000 instead of 1,000,000")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per fit")
    ap.add_argument("--repeats", type=int, default=3, help="fits per timing; the minimum counts")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)
    T, K, D = (100_000 if args.quick else 1_000_000), 8, 4
    date = _dt.date.today().isoformat()
    machine = describe_machine()

    compile_s, how = numba_first_call()
    print(f"numba first call of forward/forward_backward/viterbi: {compile_s:.2f} s ({how}; "
          "not counted below)")
    X, start = make_data(T, K, D)
    t_emix, m_emix = per_iteration(make_emix, start, X, args.iters, args.repeats)
    t_ref, m_ref = per_iteration(make_hmmlearn, start, X, args.iters, args.repeats)
    ll_emix, ll_ref = final_loglik(m_emix, T), final_loglik(m_ref, T)
    rel = abs(ll_emix - ll_ref) / abs(ll_ref)
    row = dict(
        T=T, K=K, D=D, covariance="full", iters=args.iters, repeats=args.repeats,
        emix_ms=1e3 * t_emix, hmmlearn_ms=1e3 * t_ref, speedup=t_ref / t_emix,
        emix_loglik=ll_emix, hmmlearn_loglik=ll_ref, ll_rel_diff=rel, ll_agree=bool(rel <= 1e-6),
        numba_first_call_s=compile_s, numba_first_call=how,
    )
    print(to_markdown(row, machine, date))
    if not row["ll_agree"]:
        print(f"MISMATCH: final log-likelihoods {ll_emix!r} (emix) and {ll_ref!r} (hmmlearn)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(date=date, machine=machine, row=row), f, indent=1)
    return 0 if row["ll_agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
