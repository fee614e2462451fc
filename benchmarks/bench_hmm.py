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

GPU mode::

    python benchmarks/bench_hmm.py --device cuda --out results-hmm-gpu.json --max-seconds 300

emix on the GPU (``HMM(device='cuda')``: log-emissions, the forward-backward by the
parallel scan of :mod:`emix.models._fb_scan`, and the emission statistics all on the
device) at T = 10,000,000 (``--rows``) against hmmlearn on the CPU. hmmlearn takes some
30-60 s per iteration at that size, so by default it is timed at ``--hmmlearn-rows`` =
1,000,000 and its time is *scaled* to T linearly (its E-step and M-step are O(T)); the
output says so. ``--hmmlearn-rows`` equal to ``--rows`` times one hmmlearn fit of one
iteration at the full size instead (its set-up included: an upper bound on one
iteration). At the hmmlearn size emix's GPU fit and hmmlearn's, both two iterations from
the same start, must agree on the final log-likelihood (1e-6 relative). Then many
sequences (``--sequences``, 1,000 x 10,000 steps by default: the scan, and the batched
time loop of :mod:`emix.models._fb_torch` for comparison, forward-backward alone; and
100,000 x 100 steps, where the batched loop is the default). The JSON file named by
``--out`` is rewritten after every stage, so a run cut short keeps what it measured;
stages that would not fit in ``--max-seconds`` are skipped and listed as such.
``--device cpu --force-scan --rows 200000`` runs the same code on torch's CPU build (a
smoke test: the timings mean nothing there).
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


def make_emix(start, n_iter, device=None):
    import emix

    pi, A, m, c = start
    return emix.HMM(
        len(pi), covariance_type="full", startprob_init=pi, transmat_init=A, means_init=m,
        covariances_init=c, max_iter=n_iter, tol=0.0, family_options={"reg_covar": 0.0},
        device=device,
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


def _fit(make, start, X, n_iter, lengths=None):
    model = make(start, n_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(X, lengths)
        elapsed = time.perf_counter() - t0
    return model, elapsed


def per_iteration(make, start, X, n_iter, repeats, lengths=None, warm_up=True):
    """Seconds per Baum-Welch iteration and the longer fit's model.

    ``(min over repeats of a (1+n)-iteration fit - min over repeats of a 1-iteration
    fit) / n``; the minima remove the noise of a shared virtual machine.
    """
    if warm_up:
        _fit(make, start, X, 1, lengths)  # compiled kernels, BLAS threads, page faults
    t1 = tn = float("inf")
    model = None
    for _ in range(repeats):
        t1 = min(t1, _fit(make, start, X, 1, lengths)[1])
        model, t = _fit(make, start, X, 1 + n_iter, lengths)
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


# --------------------------------------------------------------------------- GPU mode
def _sync(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def describe_device(device):
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}"
    return f"torch {torch.__version__} on {dev.type}"


def time_recursions(log_B, pi, A, lengths, device, repeats=2):
    """Seconds of one ``forward_backward`` on a device tensor (the minimum of
    ``repeats`` after a warm-up), and its per-sequence log-likelihoods."""
    from emix.models import forward_backward as fb

    saved = fb.SCAN
    # The warm-up runs the path the timed call takes, on 4,096 rows.
    fb.SCAN = fb.use_scan(log_B.device, lengths)
    try:
        fb.forward_backward(log_B[:4096], pi, A, [4096] if fb.SCAN else [64] * 64)
        best, ll = float("inf"), None
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            res = fb.forward_backward(log_B, pi, A, lengths)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
            ll = res.loglik
    finally:
        fb.SCAN = saved
    return best, ll


class _Stages:
    """Runs the stages in order while the budget lasts; rewrites ``out`` after each."""

    def __init__(self, report, out, budget):
        self.report, self.out, self.budget = report, out, budget
        self.t0 = time.perf_counter()

    def left(self):
        return self.budget - (time.perf_counter() - self.t0)

    def run(self, name, estimate_s, fn):
        if self.left() < estimate_s:
            print(f"[{name}] skipped: about {estimate_s:.0f} s needed, {self.left():.0f} s of "
                  "--max-seconds left", flush=True)
            self.report["skipped"].append(name)
            self.save()
            return None
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # keep what the other stages measure
            print(f"[{name}] FAILED: {type(exc).__name__}: {exc}", flush=True)
            self.report["failed"][name] = f"{type(exc).__name__}: {exc}"
            self.save()
            return None
        self.report["stages"][name] = value
        self.report["stage_seconds"][name] = time.perf_counter() - t0
        self.save()
        return value

    def save(self):
        if self.out:
            with open(self.out, "w") as f:
                json.dump(self.report, f, indent=1, default=float)


def main_device(args):
    """The GPU benchmark (see the module docstring)."""
    import torch

    from emix.models import forward_backward as fb

    if args.force_scan:
        fb.SCAN = True
    device = args.device
    T, K, D = args.rows, 8, 4
    T_ref = min(args.hmmlearn_rows, T)
    n_seq, seq_len = args.sequences
    date = _dt.date.today().isoformat()
    report = dict(date=date, machine=describe_machine(), device=describe_device(device),
                  T=T, K=K, D=D, covariance="full", iters=args.iters, repeats=args.repeats,
                  stages={}, stage_seconds={}, skipped=[], failed={})
    st = _Stages(report, args.out, args.max_seconds)
    print(f"{report['device']}; host {report['machine']}; {date}", flush=True)

    compile_s, how = numba_first_call()
    print(f"numba first call: {compile_s:.2f} s ({how})", flush=True)
    t0 = time.perf_counter()
    X, start = make_data(T, K, D)
    print(f"data T={T:,} x D={D}: {time.perf_counter() - t0:.1f} s", flush=True)
    pi, A = start[0], start[1]
    gpu = lambda s, n: make_emix(s, n, device)  # noqa: E731

    def warm():
        _fit(gpu, start, X[:100_000], 2)  # CUDA context, cuBLAS, caching allocator
        return {"done": True}

    st.run("warm_up", 20, warm)

    def scan_alone():
        rng = np.random.default_rng(1)
        out = {}
        for name, dt in (("float64", torch.float64), ("float32", torch.float32)):
            log_B = torch.as_tensor(rng.normal(scale=3.0, size=(T, K)) - 5.0, dtype=dt,
                                    device=device)
            secs, _ = time_recursions(log_B, pi, A, [T], device)
            out[f"{name}_ms"] = 1e3 * secs
            print(f"forward-backward alone, one sequence of {T:,} steps, K={K}, {name}: "
                  f"{1e3 * secs:,.1f} ms ({'scan' if fb.use_scan(log_B.device, [T]) else 'batched'})",
                  flush=True)
            if name == "float64" and fb.use_scan(log_B.device, [T]):
                from emix.models import _fb_scan

                # The other way of forming the batched (K, K) products; the faster one
                # should be _fb_scan.PRODUCT's default.
                saved = _fb_scan.PRODUCT
                other = "broadcast" if saved == "bmm" else "bmm"
                _fb_scan.PRODUCT = other
                try:
                    secs_other, _ = time_recursions(log_B, pi, A, [T], device, repeats=1)
                finally:
                    _fb_scan.PRODUCT = saved
                out["products"] = saved
                out[f"float64_{other}_ms"] = 1e3 * secs_other
                print(f"  the same with PRODUCT='{other}' (default '{saved}'): "
                      f"{1e3 * secs_other:,.1f} ms", flush=True)
                fb.viterbi(log_B[:4096], pi, A, [4096])
                _sync(device)
                t0 = time.perf_counter()
                fb.viterbi(log_B, pi, A, [T])
                _sync(device)
                out["viterbi_float64_ms"] = 1e3 * (time.perf_counter() - t0)
                print(f"Viterbi alone (max-plus scan), float64: {out['viterbi_float64_ms']:,.1f} ms",
                      flush=True)
            del log_B
        return out

    st.run("scan_alone", 20, scan_alone)

    def emix_full():
        if torch.device(device).type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        secs, model = per_iteration(gpu, start, X, args.iters, args.repeats)
        row = dict(emix_gpu_ms=1e3 * secs, emix_gpu_loglik=final_loglik(model, T))
        if torch.device(device).type == "cuda":
            row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        print(f"emix Baum-Welch on {device}, T={T:,}: {1e3 * secs:,.1f} ms/iter", flush=True)
        return row

    full = st.run("emix_gpu_full", 60, emix_full)

    def reference():
        Xr = X[:T_ref]
        if T_ref == T:
            model, secs = _fit(make_hmmlearn, start, Xr, 1)
            how = "one hmmlearn fit of 1 iteration at full size (set-up included)"
            gpu_model, _ = _fit(gpu, start, Xr, 1)
        else:
            secs, model = per_iteration(make_hmmlearn, start, Xr, 1, 1, warm_up=False)
            how = (f"hmmlearn timed at T={T_ref:,} (fit of 2 iterations minus fit of 1) and "
                   f"SCALED x{T / T_ref:g} to T={T:,}")
            gpu_model, _ = _fit(gpu, start, Xr, 2)
        ll_gpu, ll_ref = final_loglik(gpu_model, T_ref), final_loglik(model, T_ref)
        rel = abs(ll_gpu - ll_ref) / abs(ll_ref)
        row = dict(hmmlearn_rows=T_ref, hmmlearn_ms_at_rows=1e3 * secs,
                   hmmlearn_ms=1e3 * secs * T / T_ref, hmmlearn_how=how,
                   emix_gpu_loglik_at_rows=ll_gpu, hmmlearn_loglik_at_rows=ll_ref,
                   ll_rel_diff=rel, ll_agree=bool(rel <= 1e-6))
        print(f"hmmlearn CPU: {1e3 * secs:,.0f} ms/iter at T={T_ref:,} ({how}); final log-lik "
              f"rel. diff to emix on {device}: {rel:.1e}{'' if rel <= 1e-6 else ' MISMATCH'}",
              flush=True)
        return row

    # hmmlearn: some 3-6 s per iteration per million rows on one core.
    ref = st.run("hmmlearn", 15 + (1 if T_ref == T else 3) * 6 * T_ref / 1e6, reference)
    if full and ref:
        ratio = ref["hmmlearn_ms"] / full["emix_gpu_ms"]
        report["speedup"] = ratio
        report["speedup_note"] = ref["hmmlearn_how"]
        print(f"\n| T | K | D | hmmlearn CPU ms/iter | emix {device} ms/iter | speed-up |\n"
              f"|---|---|---|---|---|---|\n| {T:,} | {K} | {D} | {ref['hmmlearn_ms']:,.0f}"
              f"{'*' if T_ref != T else ''} | {full['emix_gpu_ms']:,.1f} | {ratio:,.0f}x |\n"
              + (f"* {ref['hmmlearn_how']}\n" if T_ref != T else ""), flush=True)
        st.save()

    def many():
        n = min(n_seq * seq_len, T)
        lengths = np.full(n // seq_len, seq_len)
        rng = np.random.default_rng(2)
        log_B = torch.as_tensor(rng.normal(scale=3.0, size=(n, K)) - 5.0, device=device)
        row = {"sequences": len(lengths), "steps": seq_len}
        saved = fb.SCAN
        try:
            for name, flag in (("scan", True), ("batched", False)):
                fb.SCAN = flag
                secs, ll = time_recursions(log_B, pi, A, lengths, device, repeats=1)
                row[f"{name}_fb_ms"] = 1e3 * secs
                row[f"{name}_loglik"] = float(np.sum(ll))
                print(f"forward-backward alone, {len(lengths):,} sequences x {seq_len:,} "
                      f"steps, {name}: {1e3 * secs:,.1f} ms", flush=True)
        finally:
            fb.SCAN = saved
        row["fb_loglik_rel_diff"] = abs(row["scan_loglik"] - row["batched_loglik"]) / abs(
            row["batched_loglik"])
        del log_B
        secs, _ = per_iteration(gpu, start, X[:n], 1, 1, lengths=lengths, warm_up=False)
        row["emix_gpu_ms"] = 1e3 * secs
        row["path"] = "scan" if fb.use_scan(torch.device(device), lengths) else "batched"
        print(f"emix Baum-Welch on {device}, {len(lengths):,} x {seq_len:,} ({row['path']}): "
              f"{1e3 * secs:,.1f} ms/iter", flush=True)
        return row

    st.run("many_sequences", 60, many)

    def many_short():
        n = min(T, 10_000_000)
        lengths = np.full(n // 100, 100)
        secs, _ = per_iteration(gpu, start, X[:n], 1, 1, lengths=lengths, warm_up=False)
        path = "scan" if fb.use_scan(torch.device(device), lengths) else "batched"
        print(f"emix Baum-Welch on {device}, {len(lengths):,} x 100 ({path}): "
              f"{1e3 * secs:,.1f} ms/iter", flush=True)
        return {"sequences": len(lengths), "steps": 100, "emix_gpu_ms": 1e3 * secs, "path": path}

    st.run("many_short_sequences", 40, many_short)

    def cpu_check():
        model, secs = _fit(lambda s, n: make_emix(s, n, None), start, X, 1 + args.iters)
        ll = final_loglik(model, T)
        rel = abs(ll - full["emix_gpu_loglik"]) / abs(ll)
        print(f"emix NumPy/numba at T={T:,}: same iterations, final log-lik rel. diff to "
              f"{device}: {rel:.1e} ({secs:.1f} s for {1 + args.iters} iterations)", flush=True)
        return {"emix_cpu_loglik": ll, "ll_rel_diff_to_gpu": rel, "fit_s": secs,
                "iterations": 1 + args.iters}

    if full:
        st.run("emix_cpu_check", 15 * (1 + args.iters) * T / 1e7 + 15, cpu_check)
    print(f"total {time.perf_counter() - st.t0:.0f} s; skipped: {report['skipped'] or 'none'}; "
          f"failed: {list(report['failed']) or 'none'}", flush=True)
    ok = not report["failed"] and (ref is None or ref["ll_agree"])
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 100,000 instead of 1,000,000")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per fit")
    ap.add_argument("--repeats", type=int, default=3, help="fits per timing; the minimum counts")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("--device", default=None,
                    help="a torch device ('cuda'): the GPU benchmark (module docstring)")
    ap.add_argument("--out", default=None, help="GPU mode's JSON, rewritten after every stage")
    ap.add_argument("--max-seconds", type=float, default=420.0,
                    help="GPU mode: skip stages that would end after this many seconds")
    ap.add_argument("--rows", type=int, default=10_000_000, help="GPU mode: T")
    ap.add_argument("--hmmlearn-rows", type=int, default=1_000_000,
                    help="GPU mode: T for hmmlearn (scaled to --rows when smaller)")
    ap.add_argument("--sequences", type=int, nargs=2, default=(1000, 10_000),
                    metavar=("S", "STEPS"), help="GPU mode: the many-sequences case")
    ap.add_argument("--force-scan", action="store_true",
                    help="GPU mode: the scan for every torch tensor (forward_backward.SCAN)")
    args = ap.parse_args(argv)
    if args.device is not None:
        if args.iters == 3 and args.repeats == 3:
            args.repeats = 2
        args.out = args.out or args.json
        return main_device(args)
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
