"""Gaussian-mixture EM: emix against scikit-learn (CPU) and pomegranate (GPU), per iteration.

Both libraries start from the same parameters (``weights_init``, ``means_init``,
``precisions_init``) and run a fixed number of iterations (``tol=0``). On the CPU the
time per iteration is the difference between a fit of ``1 + n`` iterations and a fit of
1, so neither library's initialisation is counted. Each pair must reach the same final
mean log-likelihood (1e-6 relative), or the row is flagged. Peak memory is the largest
allocation above the data during a fit, read with ``tracemalloc`` (which NumPy and
PyTorch's CPU allocator report to) in a separate, untimed fit.

With ``--device cuda`` every case runs on the GPU and prints, per case: ms per iteration
(time between the iteration callbacks of one fit, the minimum over repeats), the path
the data took (a tensor on the device; a host array moved once; a host array streamed
block by block), ATen operations and CUDA kernel launches per iteration (a separate,
profiled run: ``emix.backends._torch_launches``), the device's share of an iteration
(CUDA events around each pass, and the profiler's summed kernel time) against the wall
time, pomegranate 1.1.2 on the same GPU from the same start when it is installed, and
for case (b) emix's NumPy path and scikit-learn on the same machine's CPUs; the final
log-likelihood is compared with emix's NumPy fit of the same iterations. Results are
written to ``--out`` after every case, so a run stopped by a time limit leaves what it
finished.

Usage::

    python benchmarks/bench_gmm.py                 # CPU cases (a), (b), (c), float64 and float32
    python benchmarks/bench_gmm.py --quick         # the same cases at 1/10 of the rows
    python benchmarks/bench_gmm.py --cases a --dtypes float64 --iters 3
    python benchmarks/bench_gmm.py --device cuda --cases a,b,c,g,h --max-seconds 360 \
        --out results-gpu.json
    python benchmarks/bench_gmm.py --profile --quick   # launches per iteration, CPU proxy

``--profile`` without a GPU counts the ATen operations of an iteration of case (b) on
torch's CPU build with the blocks a large GPU would get (a faithful proxy for the launch
overhead; see ``emix.backends._torch_launches``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
import tracemalloc
import warnings

import numpy as np

CASES = {
    "a": dict(N=200_000, D=16, K=8, covariance_type="full"),
    "b": dict(N=1_000_000, D=32, K=16, covariance_type="full"),
    "c": dict(N=1_000_000, D=64, K=32, covariance_type="diag"),
    "g": dict(N=10_000_000, D=32, K=16, covariance_type="full"),  # GPU only
    "h": dict(N=100_000_000, D=32, K=16, covariance_type="full"),  # GPU only, host data
}
# dtypes per case on the GPU (the issue's table)
GPU_DTYPES = {"a": ("float32",), "b": ("float32", "float64"), "c": ("float32",),
              "g": ("float32",), "h": ("float32",)}
GPU_ONLY = ("g", "h")


def make_data(N, D, K, dtype, seed=0):
    """K well-separated correlated blobs, and a starting point near (not at) the truth."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(K, D))
    labels = rng.integers(0, K, N)
    X = np.empty((N, D), dtype=dtype)
    step = 1 << 18
    A = np.eye(D) + 0.2 * rng.normal(size=(D, D)) / math.sqrt(D)
    for a in range(0, N, step):
        b = min(a + step, N)
        X[a:b] = means[labels[a:b]] + rng.standard_normal((b - a, D)) @ A.T
    init_means = means + 0.5 * rng.normal(size=(K, D))
    return X, init_means


def initial_params(X, init_means, covariance_type):
    K, D = init_means.shape
    var = X[:10000].var(axis=0).astype(np.float64)
    w = np.full(K, 1.0 / K)
    if covariance_type == "full":
        p = np.tile(np.diag(1.0 / var), (K, 1, 1))
    elif covariance_type == "tied":
        p = np.diag(1.0 / var)
    elif covariance_type == "diag":
        p = np.tile(1.0 / var, (K, 1))
    else:
        p = np.full(K, 1.0 / var.mean())
    return w, init_means.astype(np.float64), p


def _fit(make, X, n_iter):
    model = make(n_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(X)
        elapsed = time.perf_counter() - t0
    return model, elapsed


def per_iteration(make, X, n_iter, repeats=3, warm_up=True):
    """Seconds per EM iteration and the longer fit's model.

    ``(min over repeats of a (1+n)-iteration fit - min over repeats of a 1-iteration
    fit) / n``: the subtraction removes set-up and initialisation, and the minima remove
    the noise of a shared virtual machine (timings here vary 2-3x between runs).
    """
    if warm_up:
        _fit(make, X, 1)  # warm-up: BLAS threads, allocator, page faults, CUDA context
    t1 = tn = float("inf")
    model = None
    for _ in range(repeats):
        t1 = min(t1, _fit(make, X, 1)[1])
        model, t = _fit(make, X, 1 + n_iter)
        tn = min(tn, t)
    return max(tn - t1, 1e-9) / n_iter, model


def peak_mib(make, X):
    """Peak bytes allocated during a 2-iteration fit, above what existed before it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    _fit(make, X, 2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def run_case(name, spec, dtype, n_iter, device, scale, with_sklearn, repeats=3):
    import emix

    N = max(int(spec["N"] * scale), 1000)
    D, K, ct = spec["D"], spec["K"], spec["covariance_type"]
    X, m0 = make_data(N, D, K, dtype)
    w, m, p = initial_params(X, m0, ct)
    common = dict(
        covariance_type=ct, weights_init=w, means_init=m, precisions_init=p, tol=0.0,
        random_state=0,
    )
    row = dict(case=name, N=N, D=D, K=K, covariance=ct, dtype=np.dtype(dtype).name,
               data_mib=X.nbytes / 2**20)

    def make_emix(it, dev=None):
        return emix.GaussianMixture(K, max_iter=it, device=dev, **common)

    t_emix, m_emix = per_iteration(make_emix, X, n_iter, repeats)
    row["emix_ms"] = 1e3 * t_emix
    row["emix_ll"] = m_emix.lower_bound_
    row["emix_peak_mib"] = peak_mib(make_emix, X)
    if device is not None:
        import torch

        Xd = torch.from_numpy(X).to(device)
        t_dev, m_dev = per_iteration(lambda it: make_emix(it, device), Xd, n_iter, repeats)
        row["emix_device_ms"] = 1e3 * t_dev
        row["emix_device_ll"] = m_dev.lower_bound_
        del Xd
    if with_sklearn:
        from sklearn.mixture import GaussianMixture as SkGM

        def make_sk(it):
            # random_from_data keeps sklearn's (discarded) initial responsibilities cheap.
            return SkGM(K, max_iter=it, init_params="random_from_data", **common)

        t_sk, m_sk = per_iteration(make_sk, X, n_iter, repeats)
        row["sklearn_ms"] = 1e3 * t_sk
        row["sklearn_ll"] = m_sk.lower_bound_
        row["sklearn_peak_mib"] = peak_mib(make_sk, X)
        row["speedup"] = t_sk / t_emix
        if device is not None:
            row["speedup_device"] = t_sk / t_dev
        rel = abs(m_emix.lower_bound_ - m_sk.lower_bound_) / abs(m_sk.lower_bound_)
        row["ll_rel_diff"] = rel
        row["ll_agree"] = bool(rel <= 1e-6)
    return row


def describe_machine(device):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    if device is not None and str(device).startswith("cuda"):
        import torch

        text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text


def to_markdown(rows, machine, date):
    head = (
        f"Measured {date} on {machine}.\n\n"
        "| case | N | D | K | cov | dtype | sklearn ms/iter | emix ms/iter | speed-up |"
        " GPU ms/iter | GPU speed-up | emix peak MiB (data) | log-lik rel. diff |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['N']:,} | {r['D']} | {r['K']} | {r['covariance']} | "
            f"{r['dtype']} | {r.get('sklearn_ms', float('nan')):.0f} | {r['emix_ms']:.0f} | "
            f"{r.get('speedup', float('nan')):.1f}x | "
            f"{r.get('emix_device_ms', float('nan')):.1f} | "
            f"{r.get('speedup_device', float('nan')):.0f}x | "
            f"{r['emix_peak_mib']:.0f} ({r['data_mib']:.0f}) | "
            f"{r.get('ll_rel_diff', float('nan')):.1e}"
            f"{'' if r.get('ll_agree', True) else ' MISMATCH'} |"
        )
    return head + "\n".join(lines)


# --------------------------------------------------------------------------- GPU
def make_data_torch(N, D, K, dtype, device, seed=0):
    """:func:`make_data`'s blobs drawn on the device (10^8 rows in a second, not minutes).

    The same recipe (well-separated correlated blobs, a start near the truth); the means
    are :func:`make_data`'s, the other draws (labels and noise from torch's generator)
    differ.

    Returns
    -------
    X : torch.Tensor of shape (N, D) on ``device``
    init_means : ndarray of shape (K, D)
    """
    import torch

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(K, D))
    A = np.eye(D) + 0.2 * rng.normal(size=(D, D)) / math.sqrt(D)
    init_means = means + 0.5 * rng.normal(size=(K, D))
    tdt = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    g = torch.Generator(device=device).manual_seed(seed)
    X = torch.empty((N, D), dtype=tdt, device=device)
    mu = torch.as_tensor(means, dtype=tdt, device=device)
    At = torch.as_tensor(A.T, dtype=tdt, device=device)
    step = 1 << 22
    for a in range(0, N, step):
        b = min(a + step, N)
        lab = torch.randint(0, K, (b - a,), generator=g, device=device)
        noise = torch.randn((b - a, D), generator=g, device=device, dtype=tdt)
        torch.addmm(mu[lab], noise, At, out=X[a:b])
    return X, init_means


class PassTimer:
    """Times every ``TorchBackend.stats_pass`` of a fit: CUDA events around the pass (the
    GPU's clock) and the host's wall clock."""

    def __init__(self):
        self.events = []
        self.wall = []

    def __enter__(self):
        import torch

        from emix.backends import torch_backend as TB

        self._real = real = TB.TorchBackend.stats_pass
        timer = self

        def timed(backend, *a, **k):
            cuda = backend.device.type == "cuda"
            if cuda:
                start = torch.cuda.Event(enable_timing=True)
                stop = torch.cuda.Event(enable_timing=True)
                start.record()
            t0 = time.perf_counter()
            out = real(backend, *a, **k)
            timer.wall.append(time.perf_counter() - t0)
            if cuda:
                stop.record()
                timer.events.append((start, stop))
            return out

        TB.TorchBackend.stats_pass = timed
        return self

    def __exit__(self, *exc):
        import torch

        from emix.backends import torch_backend as TB

        TB.TorchBackend.stats_pass = self._real
        self.wall_ms = [1e3 * w for w in self.wall]
        if self.events:
            torch.cuda.synchronize()
            self.device_ms = [a.elapsed_time(b) for a, b in self.events]
        else:  # a CPU device: its clock is the host's
            self.device_ms = self.wall_ms


def callback_times(make, X, n_iter):
    """Seconds per iteration of one fit, from the iteration callbacks, and the model.

    The callback runs after each E-step (whose statistics came back to the host, so the
    GPU's work is done): the time between the first and the last callback is ``n_iter``
    whole iterations (M-step, natural parameters, upload, pass), with no set-up.
    """
    stamps = []

    def cb(it, ll, params):
        stamps.append(time.perf_counter())
        return False

    model = make(1 + n_iter)
    model.callback = cb
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), model


def pomegranate_per_iteration(X, w, m, p, ct, n_iter, repeats):
    """pomegranate 1.x's GeneralMixtureModel on X's device from the same start.

    Returns seconds per iteration and the final mean log-likelihood, or None when
    pomegranate is not installed. Its fit loop is one summarize + from_summaries per
    iteration; the difference of fits of ``1 + n`` and 1 iterations removes set-up.
    """
    import types

    import torch

    try:
        if "apricot" not in sys.modules:
            # pomegranate imports apricot (numba-compiled at import, 10 s+) only for
            # initialisers not used here.
            stub = types.ModuleType("apricot")
            stub.FacilityLocationSelection = stub.FeatureBasedSelection = None
            sys.modules["apricot"] = stub
        from pomegranate.distributions import Normal
        from pomegranate.gmm import GeneralMixtureModel
    except ImportError:
        return None
    dt = X.dtype
    dev = X.device
    if ct == "full":
        covs = np.linalg.inv(p)
    elif ct == "diag":
        covs = 1.0 / p
    else:
        return None

    def make(it):
        # Copies (torch.tensor): pomegranate updates its parameters in place, and
        # as_tensor would share the caller's float64 arrays.
        dists = [Normal(means=torch.tensor(m[k], dtype=dt, device=dev),
                        covs=torch.tensor(covs[k], dtype=dt, device=dev),
                        covariance_type=ct) for k in range(len(w))]
        priors = torch.tensor(np.asarray(w), dtype=dt)
        return GeneralMixtureModel(dists, priors=priors, max_iter=it, tol=-math.inf,
                                   inertia=0.0).to(dev)

    def sync():
        if X.is_cuda:
            torch.cuda.synchronize()

    def fit(it):
        model = make(it)
        sync()
        t0 = time.perf_counter()
        model.fit(X)
        sync()
        return time.perf_counter() - t0, model

    fit(1)
    t1 = tn = float("inf")
    model = None
    for _ in range(repeats):
        t1 = min(t1, fit(1)[0])
        t, model = fit(1 + n_iter)
        tn = min(tn, t)
    with torch.no_grad():
        ll = float(model.log_probability(X).double().sum() / X.shape[0])
    return max(tn - t1, 1e-9) / n_iter, ll


def _empty_cache():
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Budget:
    def __init__(self, seconds):
        self.t0 = time.perf_counter()
        self.seconds = seconds

    def left(self):
        return self.seconds - (time.perf_counter() - self.t0)

    def allows(self, seconds):
        return self.left() >= seconds


def run_gpu_case(name, spec, dtype, args, budget, out_row):
    """One (case, dtype) on the GPU; fills ``out_row`` as it goes (written by the caller
    after each step)."""
    import torch

    import emix
    from emix.backends import torch_backend as TB
    from emix.backends._torch_launches import ops_per_iteration

    dev = torch.device(args.device)
    scale = args.scale
    N = max(int(spec["N"] * scale), 1000)
    D, K, ct = spec["D"], spec["K"], spec["covariance_type"]
    n_iter, repeats = args.iters, args.repeats
    row = out_row
    row.update(case=name, N=N, D=D, K=K, covariance=ct, dtype=np.dtype(dtype).name)
    # Data: NumPy up to a few million rows (then the same rows as the CPU runs),
    # generated on the device beyond.
    host_case = name == "h"
    if N <= 2_000_000:
        Xh, m0 = make_data(N, D, K, dtype)
        Xd = torch.from_numpy(Xh).to(dev)
    else:
        Xd, m0 = make_data_torch(N, D, K, dtype, dev)
        Xh = None
    row["data_mib"] = Xd.element_size() * Xd.numel() / 2**20
    # initial_params' start, from the first 10,000 rows on the device
    var = Xd[:10000].double().var(dim=0, unbiased=False).cpu().numpy()
    w, m = np.full(K, 1.0 / K), m0.astype(np.float64)
    p = np.tile(np.diag(1.0 / var), (K, 1, 1)) if ct == "full" else np.tile(1.0 / var, (K, 1))
    common = dict(covariance_type=ct, weights_init=w, means_init=m, precisions_init=p,
                  tol=0.0, random_state=0)

    def make_emix(it, device=args.device):
        return emix.GaussianMixture(K, max_iter=it, device=device, **common)

    # 1. emix on the GPU: a device tensor, or (h) a host array (moved once if it fits).
    if host_case:
        Xh = Xd.cpu().numpy()
        del Xd
        _empty_cache()
        free = TB.device_free_bytes(dev)
        row["path"] = ("moved once" if free is None or Xh.nbytes <= TB._DATA_SHARE * free
                       else "streamed from host")
        X_fit = Xh
        reps = 1
    else:
        row["path"] = "device tensor"
        X_fit = Xd
        reps = repeats
    best, model = float("inf"), None
    with PassTimer() as timer:
        for _ in range(reps):
            t, model = callback_times(make_emix, X_fit, n_iter)
            best = min(best, t)
    row["emix_gpu_ms"] = 1e3 * best
    row["emix_gpu_ll"] = model.lower_bound_
    # the device's time per pass (events around it) against the host's
    passes = timer.device_ms[-n_iter:]
    row["pass_device_ms"] = float(np.median(passes))
    row["pass_wall_ms"] = float(np.median(timer.wall_ms[-n_iter:]))
    row["host_ms_per_iter"] = row["emix_gpu_ms"] - row["pass_device_ms"]
    print(f"  {name} {row['dtype']}: emix GPU {row['emix_gpu_ms']:.2f} ms/iter "
          f"({row['path']}); pass {row['pass_device_ms']:.2f} ms on the GPU's clock",
          file=sys.stderr, flush=True)
    yield row

    # 1b. (h) also streamed, forced by a memory figure below the data's size.
    if host_case and args.stream and budget.allows(120):
        real = TB.device_free_bytes
        TB.device_free_bytes = lambda device: int(Xh.nbytes)
        try:
            with PassTimer() as timer:
                t, model_s = callback_times(make_emix, Xh, n_iter)
        finally:
            TB.device_free_bytes = real
        row["emix_gpu_streamed_ms"] = 1e3 * t
        row["emix_gpu_streamed_ll"] = model_s.lower_bound_
        row["streamed_pass_device_ms"] = float(np.median(timer.device_ms[-n_iter:]))
        row["streamed_ll_rel_diff"] = abs(model_s.lower_bound_ - model.lower_bound_) / abs(
            model.lower_bound_)
        yield row

    # 2. launches per iteration (a separate, profiled run on the device tensor)
    if budget.allows(30 if not host_case else 90):
        X_prof = torch.from_numpy(Xh).to(dev) if host_case else Xd
        prof_iters = 2

        def fit(it):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make_emix(it).fit(X_prof)

        try:
            r = ops_per_iteration(fit, n_iter=prof_iters)
        except Exception as exc:  # the profiler is optional: keep the timings
            r = {"ops": float("nan"), "by_name": {}}
            row["profile_error"] = f"{type(exc).__name__}: {exc}"
        row["aten_ops_per_iter"] = r["ops"]
        for key in ("cuda_kernels", "cuda_syncs", "cuda_busy_ms"):
            if key in r:
                row[key + "_per_iter"] = r[key]
        row["top_ops"] = dict(list(r["by_name"].items())[:8])
        if host_case:
            del X_prof
            _empty_cache()
        yield row

    # 3. pomegranate on the same GPU, same start (full/diag cases up to 1M rows)
    if not args.no_pomegranate and not host_case and N <= 2_000_000 and budget.allows(60):
        try:
            pm = pomegranate_per_iteration(Xd, w, m, p, ct, n_iter, repeats)
        except Exception as exc:  # a peer's failure must not end the case
            pm = f"failed: {type(exc).__name__}: {exc}"
        if isinstance(pm, str):
            row["pomegranate"] = pm
        elif pm is None:
            row["pomegranate"] = "not installed"
        else:
            row["pomegranate_gpu_ms"] = 1e3 * pm[0]
            row["pomegranate_ll"] = pm[1]
            row["speedup_vs_pomegranate"] = pm[0] / best
        yield row

    # 4. emix NumPy (same iterations: the log-likelihood reference) and, for (b),
    #    timings of emix NumPy and scikit-learn on this machine's CPUs
    if not host_case and Xh is not None and N <= 2_000_000 and budget.allows(60):
        ref = make_emix(1 + n_iter, device=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.fit(Xh)
        row["emix_numpy_ll"] = ref.lower_bound_
        row["ll_rel_diff_gpu_vs_numpy"] = abs(model.lower_bound_ - ref.lower_bound_) / abs(
            ref.lower_bound_)
        yield row
        if name == "b":
            t_np, _ = callback_times(lambda it: make_emix(it, device=None), Xh, args.cpu_iters)
            row["emix_numpy_cpu_ms"] = 1e3 * t_np
            row["gpu_speedup_vs_emix_numpy"] = t_np / best
            yield row
            # scikit-learn takes ~40 s per dtype here; float32 suffices for the ratio
            # unless --sklearn-all.
            first_dtype = np.dtype(dtype).name == (args.dtypes.split(",")[0] if args.dtypes
                                                   else GPU_DTYPES["b"][0])
            if (not args.no_sklearn and (first_dtype or args.sklearn_all)
                    and budget.allows(90)):
                from sklearn.mixture import GaussianMixture as SkGM

                def make_sk(it):
                    return SkGM(K, max_iter=it, init_params="random_from_data", **common)

                try:
                    t_sk, m_sk = per_iteration(make_sk, Xh, args.sklearn_iters, repeats=1,
                                               warm_up=False)
                except Exception as exc:
                    row["sklearn"] = f"failed: {type(exc).__name__}: {exc}"
                    yield row
                    return
                row["sklearn_cpu_ms"] = 1e3 * t_sk
                row["gpu_speedup_vs_sklearn"] = t_sk / best
                same = make_emix(1 + args.sklearn_iters, device=None)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    same.fit(Xh)
                row["ll_rel_diff_numpy_vs_sklearn"] = abs(
                    same.lower_bound_ - m_sk.lower_bound_) / abs(m_sk.lower_bound_)
                yield row


def profile_proxy(args):
    """ATen operations per iteration of case (b) on torch's CPU build with the blocks a
    large GPU gets (a memory figure of 139 GiB): the launch-overhead proxy."""
    import torch

    import emix
    from emix.backends import torch_backend as TB
    from emix.backends._torch_launches import ops_per_iteration

    spec = CASES["b"]
    D, K = spec["D"], spec["K"]
    TB.device_free_bytes = lambda device: 139 << 30
    rows = []
    sizes = [20_000, 100_000] if args.quick else [100_000, 1_000_000]
    for N in sizes:
        X, m0 = make_data(N, D, K, np.float32)
        w, m, p = initial_params(X, m0, "full")
        Xt = torch.from_numpy(X)

        def fit(it):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                emix.GaussianMixture(K, covariance_type="full", weights_init=w, means_init=m,
                                     precisions_init=p, tol=0.0, max_iter=it,
                                     device="cpu").fit(Xt)

        r = ops_per_iteration(fit, n_iter=2)
        rows.append(dict(N=N, ops_per_iter=r["ops"], by_name=r["by_name"]))
        print(f"case (b) proxy, N={N:,}: {r['ops']:.0f} ATen ops per iteration "
              "(torch CPU build, GPU-sized blocks)", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=None,
                    help="letters from 'abcgh', optionally comma-separated, run in that "
                         "order (default: abc on the CPU, a,b,c,h,g with --device cuda); g "
                         "and h need a GPU")
    ap.add_argument("--dtypes", default=None,
                    help="default float64,float32 on the CPU; per case on the GPU")
    ap.add_argument("--iters", type=int, default=None,
                    help="timed iterations per fit (default 3 on the CPU, 5 on the GPU)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="fits per timing; the minimum counts (default 3 CPU, 2 GPU)")
    ap.add_argument("--device", default=None, help="torch device for emix, e.g. cuda")
    ap.add_argument("--quick", action="store_true", help="1/10 of the rows")
    ap.add_argument("--scale", type=float, default=None,
                    help="fraction of each case's rows (default 1, or 0.1 with --quick)")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--no-pomegranate", action="store_true")
    ap.add_argument("--stream", action="store_true",
                    help="case h: also time the host-streamed path (forced)")
    ap.add_argument("--cpu-iters", type=int, default=2, help="GPU run: emix NumPy iterations")
    ap.add_argument("--sklearn-iters", type=int, default=1,
                    help="GPU run: scikit-learn iterations on case (b) (slow)")
    ap.add_argument("--sklearn-all", action="store_true",
                    help="GPU run: scikit-learn on every dtype of (b), not only the first")
    ap.add_argument("--max-seconds", type=float, default=float("inf"),
                    help="stop starting new steps after this many seconds")
    ap.add_argument("--profile", action="store_true",
                    help="without --device: ATen ops per iteration of case (b), CPU proxy")
    ap.add_argument("--out", "--json", dest="out", default=None,
                    help="write the results as JSON here (after every case on the GPU)")
    args = ap.parse_args(argv)
    # With a device every case runs through the per-case device flow (on "cpu" it runs
    # torch's CPU build: a smoke test of the GPU run).
    gpu = args.device is not None
    cuda = gpu and str(args.device).startswith("cuda")
    # h (100M rows, one card) before g: the run's budget may not reach the last case.
    cases = args.cases or ("a,b,c,h,g" if cuda else "abc")
    cases = [c for c in cases.replace(",", "") if c.strip()]
    args.iters = args.iters or (5 if gpu else 3)
    args.repeats = args.repeats or (2 if gpu else 3)
    if args.scale is None:
        args.scale = 0.1 if args.quick else 1.0
    scale = args.scale
    date = _dt.date.today().isoformat()
    machine = describe_machine(args.device)
    budget = Budget(args.max_seconds)

    def write(payload):
        if args.out:
            tmp = args.out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(payload, f, indent=1, default=float)
            os.replace(tmp, args.out)

    if args.profile and not gpu:
        prof = profile_proxy(args)
        write(dict(date=date, machine=machine, profile=prof))
        return 0

    if gpu:
        rows = []
        payload = dict(date=date, machine=machine, argv=sys.argv[1:], rows=rows)
        for c in cases:
            for dt in (args.dtypes.split(",") if args.dtypes else GPU_DTYPES[c]):
                if not budget.allows(20 if c not in GPU_ONLY else 60):
                    print(f"case {c} {dt} skipped: --max-seconds budget spent",
                          file=sys.stderr, flush=True)
                    payload.setdefault("skipped", []).append(f"{c} {dt}")
                    write(payload)
                    continue
                row = {}
                rows.append(row)
                try:
                    for _ in run_gpu_case(c, CASES[c], np.dtype(dt), args, budget, row):
                        write(payload)
                except Exception as exc:  # keep what was measured; report the failure
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    print(f"case {c} {dt} failed: {row['error']}", file=sys.stderr, flush=True)
                write(payload)
                _empty_cache()
                print("  " + ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in row.items() if k != "top_ops"), file=sys.stderr, flush=True)
        print(gpu_markdown(rows, machine, date))
        return 0

    dtypes = args.dtypes or "float64,float32"
    rows = []
    for c in cases:
        if c in GPU_ONLY:
            print(f"case {c} runs only with --device cuda; skipped", file=sys.stderr)
            continue
        for dt in dtypes.split(","):
            dtype = np.dtype(dt)
            with_sk = not args.no_sklearn
            row = run_case(c, CASES[c], dtype, args.iters, args.device, scale, with_sk,
                           args.repeats)
            rows.append(row)
            print(f"  done {c} {dt}: " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            ), file=sys.stderr, flush=True)
    print(to_markdown(rows, machine, date))
    # float32 against float64 on emix's own path: the target is >= 1.7x.
    for c in cases:
        r64 = [r for r in rows if r["case"] == c and r["dtype"] == "float64"]
        r32 = [r for r in rows if r["case"] == c and r["dtype"] == "float32"]
        if r64 and r32:
            print(f"case {c}: emix float32 is {r64[0]['emix_ms'] / r32[0]['emix_ms']:.2f}x "
                  "its float64")
    write(dict(date=date, machine=machine, rows=rows))
    bad = [r for r in rows if not r.get("ll_agree", True)]
    return 1 if bad else 0


def gpu_markdown(rows, machine, date):
    def f(r, k, fmt):
        v = r.get(k)
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    head = (
        f"Measured {date} on {machine}.\n\n"
        "| case | N | D | K | cov | dtype | path | emix GPU ms/iter | pass on GPU ms |"
        " ATen ops/iter | CUDA kernels/iter | pomegranate ms/iter | x pomegranate |"
        " emix NumPy CPU ms | sklearn CPU ms | x sklearn | ll rel. diff vs NumPy |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        if "N" not in r:
            continue
        lines.append(
            f"| {r['case']} | {r['N']:,} | {r['D']} | {r['K']} | {r['covariance']} | "
            f"{r['dtype']} | {r.get('path', '-')} | {f(r, 'emix_gpu_ms', '.2f')} | "
            f"{f(r, 'pass_device_ms', '.2f')} | {f(r, 'aten_ops_per_iter', '.0f')} | "
            f"{f(r, 'cuda_kernels_per_iter', '.0f')} | {f(r, 'pomegranate_gpu_ms', '.2f')} | "
            f"{f(r, 'speedup_vs_pomegranate', '.1f')} | {f(r, 'emix_numpy_cpu_ms', '.0f')} | "
            f"{f(r, 'sklearn_cpu_ms', '.0f')} | {f(r, 'gpu_speedup_vs_sklearn', '.0f')} | "
            f"{f(r, 'll_rel_diff_gpu_vs_numpy', '.1e')} |"
            + (f" ERROR {r['error']}" if "error" in r else "")
        )
    return head + "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
