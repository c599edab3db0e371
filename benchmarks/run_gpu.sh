#!/usr/bin/env bash
# Everything that needs an NVIDIA GPU, in one call, logs under $OUT (8 files at most):
#   GPU tests (--require-gpu), fused-kernel micro-benchmarks, the training benchmark against
#   peers, the 30-epoch reference run with --device gpu (plus 3 epochs eager, for the ratio),
#   and the per-op profile of one GPU epoch.
# MNIST travels as IDX files in the ignored folder .mnist/ (see README: "GPU runs").
#   device tool:  carry [".mnist"], command: bash benchmarks/run_gpu.sh
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu-$(date +%F)}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TINYGRAD_MLP_DATA=$PWD/.mnist
log=$OUT/gpu-run.log
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python -c "import cupy, numpy, sys; print('python', sys.version.split()[0], 'numpy',
numpy.__version__, 'cupy', cupy.__version__, 'cuda', cupy.cuda.runtime.runtimeGetVersion())"
  nvcc --version | tail -1
} 2>&1 | tee "$log"
python -m pytest --require-gpu -q -m "not slow" tests 2>&1 | tee "$OUT/pytest-gpu.log"
python benchmarks/bench_kernels.py --out "$OUT/kernels.json" 2>&1 | tee -a "$log"
python benchmarks/bench_train.py --device gpu --rounds 3 --out "$OUT/bench-train.json" 2>&1 | tee -a "$log"
python -m tinygrad_mlp.train --device gpu --metrics-json "$OUT/train-gpu-30.json" 2>&1 \
  | tee "$OUT/train-gpu-30.log"
python -m tinygrad_mlp.train --device gpu --no-jit --epochs 3 2>&1 | tee -a "$log"
python -m tinygrad_mlp.train --device cpu --epochs 3 2>&1 | tee -a "$log"  # same seed: compare losses
# Per-op profile of one GPU epoch (run eagerly: a replayed graph has no op boundaries).
python -m tinygrad_mlp.train --device gpu --epochs 2 --profile --quiet \
  --metrics-json "$OUT/profile-gpu.json" 2>&1 | tee "$OUT/profile-gpu.log"
