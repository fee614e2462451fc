#!/usr/bin/env bash
# One prepared run on a lent GPU machine (torch, numpy, scipy, numba, scikit-learn,
# pytest and hypothesis present; no network). Carried wheels in .whl/ (hmmlearn,
# pomegranate and its pure-Python deps) are installed into a private folder. Results go
# to $OUT as they are produced, so a run cut short by its time limit still reports.
#
#   first, here: bash benchmarks/gpu/fetch_wheels.sh
#   there:       OUT=/some/dir bash benchmarks/gpu/run_h200.sh [gmm_seconds] [hmm_seconds]
#   (device tool: carry [".whl"], timeout_s about 450)
set -u
OUT=${OUT:-/tmp/emix-gpu}
mkdir -p "$OUT"
GMM_BUDGET=${1:-200}
HMM_BUDGET=${2:-120}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:$PWD/.pydeps" EMIX_HYPOTHESIS_PROFILE=ci
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import sys, torch, numpy, scipy, sklearn; print(sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__, 'sklearn', sklearn.__version__)"
  nproc
} >"$OUT/machine.txt" 2>&1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-deps --no-index --target .pydeps .whl/*.whl >"$OUT/pip.txt" 2>&1 || true
fi
python3 -c "import hmmlearn, pomegranate; print('peers ok', hmmlearn.__version__)" >>"$OUT/machine.txt" 2>&1

# 1. The CUDA tests (and their CPU twins): torch backend, GPU pass form, streamed
#    passes, the HMM scan and the batched forward-backward.
timeout 110 python3 -m pytest -q -p no:cacheprovider -n 8 \
  tests/backends/test_torch_backend.py tests/backends/test_torch_gpu_form.py \
  tests/models/test_fb_scan.py tests/models/test_fb_torch.py \
  tests/models/test_missing_gaussian.py \
  >"$OUT/tests.txt" 2>&1
echo "tests exit $?" >>"$OUT/tests.txt"

# 2. Gaussian mixtures: cases a, b, c, g, h against pomegranate (GPU), scikit-learn and
#    emix NumPy on this machine's cores.
timeout $((GMM_BUDGET + 40)) python3 benchmarks/bench_gmm.py --device cuda \
  --max-seconds "$GMM_BUDGET" ${GMM_ARGS:-} --out "$OUT/gmm.json" >"$OUT/gmm.txt" 2>&1
echo "bench_gmm exit $?" >>"$OUT/gmm.txt"

# 3. HMMs: Baum-Welch at T = 10,000,000 on the GPU against hmmlearn on the CPU.
timeout $((HMM_BUDGET + 40)) python3 benchmarks/bench_hmm.py --device cuda \
  --max-seconds "$HMM_BUDGET" ${HMM_ARGS:-} --out "$OUT/hmm.json" >"$OUT/hmm.txt" 2>&1
echo "bench_hmm exit $?" >>"$OUT/hmm.txt"

# 4. Missing values: 1,000,000 x 16, K=8 full, 10% of cells missing, on the GPU.
timeout 90 python3 benchmarks/bench_missing.py --device cuda --iters 3 --repeats 2 \
  >"$OUT/missing.txt" 2>&1
echo "bench_missing exit $?" >>"$OUT/missing.txt"
