"""Fits beyond memory: a Gaussian mixture streamed from a Parquet file, against the same
fit in memory (and, with ``--dask``, on a two-worker ``LocalCluster``).

The data are written once (16,000,000 x 16 float64 by default, about 2 GB of Parquet in
row groups of 1,000,000 rows) to ``--path``. Each mode runs in its own process, so its
peak resident memory (``ru_maxrss``) is its own: the streamed fit must stay far below the
file's size, the in-memory fit holds the whole array. Every mode starts from the same
means (``means_init``) and runs ``--iters`` EM iterations with ``tol=0``; the time per
iteration is the median gap between the estimator's per-iteration callbacks, so the
start (the seeded sample, k-means) is not counted. All modes must end on the same mean
log-likelihood (1e-9 relative), or the row is flagged.

Usage::

    python benchmarks/bench_stream.py                 # stream vs in-memory, 16M x 16
    python benchmarks/bench_stream.py --dask          # adds a 2-worker LocalCluster
    python benchmarks/bench_stream.py --rows 2000000  # a quick version (256 MB)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

K, D = 8, 16


def make_file(path: str, rows: int, seed: int = 0) -> np.ndarray:
    """Write ``rows`` x 16 float64 in 1,000,000-row groups; return the true means (K, D)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(K, D))
    if os.path.exists(path) and pq.ParquetFile(path).metadata.num_rows == rows:
        return means
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    names = [f"x{j}" for j in range(D)]
    schema = pa.schema([(n, pa.float64()) for n in names])
    tmp = path + ".tmp"
    with pq.ParquetWriter(tmp, schema) as w:
        for a in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - a)
            X = means[rng.integers(0, K, n)] + rng.standard_normal((n, D))
            w.write_table(pa.table({c: X[:, j] for j, c in enumerate(names)}, schema=schema))
    os.replace(tmp, path)
    return means


def run_mode(mode: str, path: str, iters: int, means0: np.ndarray) -> dict:
    """One fit in this process; returns timing, memory and the final log-likelihood."""
    import emix

    stamps = []

    def tick(it, ll, params):
        stamps.append(time.perf_counter())

    gm = emix.GaussianMixture(K, covariance_type="full", means_init=means0, tol=0.0,
                              max_iter=iters, random_state=0, callback=tick)
    client = cluster = None
    t0 = time.perf_counter()
    if mode == "memory":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        X = np.column_stack([table.column(j).to_numpy() for j in range(table.num_columns)])
        del table
        gm.fit(X)
    elif mode == "stream":
        gm.fit(path)
    else:
        import dask.dataframe as dd
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
        client = Client(cluster)
        X = dd.read_parquet(path).to_dask_array(lengths=True)
        gm.fit(X)
    total = time.perf_counter() - t0
    gaps = np.diff(stamps)
    out = {
        "mode": mode,
        "s_per_iter": float(np.median(gaps)) if len(gaps) else float("nan"),
        "total_s": total,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loglik": float(gm.lower_bound_),
    }
    if client is not None:
        client.close()
        cluster.close()
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=16_000_000)
    p.add_argument("--path", default="/tmp/emix-bench/stream-16x.parquet")
    p.add_argument("--iters", type=int, default=4)
    p.add_argument("--dask", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    means = make_file(args.path, args.rows)
    means0 = means + 0.3 * np.random.default_rng(1).normal(size=means.shape)
    if args.child:
        print(json.dumps(run_mode(args.child, args.path, args.iters, means0)))
        return
    size_mib = os.path.getsize(args.path) / 2**20
    modes = ["stream", "memory"] + (["dask"] if args.dask else [])
    rows = []
    for mode in modes:
        cmd = [sys.executable, __file__, "--rows", str(args.rows), "--path", args.path,
               "--iters", str(args.iters), "--child", mode]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"{mode}: failed\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"  done {rows[-1]}", file=sys.stderr)
    ref = next((r["loglik"] for r in rows if r["mode"] == "memory"), None)
    print(f"\nN = {args.rows:,} x {D} float64, K = {K} full, Parquet {size_mib:,.0f} MiB, "
          f"{os.cpu_count()} cores\n")
    print("| mode | s / iteration | peak RSS MiB | log-lik rel. diff vs memory |")
    print("|---|---|---|---|")
    for r in rows:
        diff = abs(r["loglik"] - ref) / abs(ref) if ref else float("nan")
        flag = "" if diff <= 1e-9 else " (DIFFERS)"
        print(f"| {r['mode']} | {r['s_per_iter']:.2f} | {r['peak_rss_mib']:,.0f} | {diff:.1e}{flag} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "file_mib": size_mib, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
