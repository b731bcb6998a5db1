#!/usr/bin/env bash
# jaxgan vs its PyTorch baseline on one GPU (H100/H200): one prepared run, one table.
#
#   bash experiments/gpu_check.sh                  # full grid, within ~8 minutes
#   SIZES=32 BATCHES=1 DTYPES=float32 DEVICE=cpu EXPERIMENTS=cyclegan \
#       bash experiments/gpu_check.sh              # CPU smoke test
#
# Runs from the working tree, nothing installed: PYTHONPATH=. (plus any pure-Python
# wheels in experiments/wheels/ or .whl/ whose module the interpreter lacks, imported
# from the wheel file itself: the GPU image has jax, flax, optax, orbax and torch but
# not ml_collections, so experiments/wheels/ holds ml_collections 1.1.0, 77 KB). Prints the GPU and versions, then runs
# experiments/gpu_table.py over CycleGAN and pix2pix x 64/128/256 x batch 1/8/32 x
# float32/bfloat16, most important rows first, within BUDGET_S seconds (rows that
# would overrun are marked 'skipped: budget'), and prints the table; then
# experiments/convt_check.py (transposed convs: phase split vs XLA's dilated conv,
# CONVT_TIMEOUT_S 60). Results land in $OUT as they come: gpu_table.md,
# gpu_table.jsonl, gpu_table.log, convt_check.md, gpu_check.log.
#
# Options (environment): OUT (/tmp/gpu_check_out), BUDGET_S (400), ROW_TIMEOUT_S
# (150), EXPERIMENTS (cyclegan,pix2pix), SIZES (64,128,256), BATCHES (1,8,32),
# DTYPES (float32,bfloat16), DEVICE (cuda | cpu), SIDES (jaxgan,torch), STEPS (10),
# WARMUP (2), CONVT_BATCHES (1,8), CONVT_MAX_SIZE (1024), PEAK_TFLOPS (790), TORCH_CHANNELS_LAST (bfloat16 | all | none),
# COUNT_CHECK (once | every | never), EXTRA (more bench_step.py arguments, e.g.
# '--config.model.ngf=8'), TORCH_EXTRA (more torch_baseline.py arguments), PYTHON
# (.venv/bin/python if present, else python3), JAX_CACHE_DIR (/tmp/jaxgan_jax_cache;
# empty: no persistent compilation cache).
# Exit status: gpu_table.py's (0 when every row ran on both sides).

set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
# Each side runs in its own process per row; without preallocation JAX's allocator
# peak is the row's own and torch finds the memory free.
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
JAX_CACHE_DIR=${JAX_CACHE_DIR-/tmp/jaxgan_jax_cache}
if [ -n "$JAX_CACHE_DIR" ]; then
  mkdir -p "$JAX_CACHE_DIR"
  export JAX_COMPILATION_CACHE_DIR=$JAX_CACHE_DIR
fi

{
  echo "== gpu_check $(date -Is) on $(hostname): $(nproc) CPUs, repo $(pwd)"
  echo "== git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
       "$(git status --porcelain 2>/dev/null | wc -l | tr -d ' ') changed paths"

  # Pure-Python wheels (committed or carried) for modules this interpreter lacks.
  for whl in experiments/wheels/*-py3-none-any.whl .whl/*-py3-none-any.whl .whl/*-py2.py3-none-any.whl; do
    [ -f "$whl" ] || continue
    mod=$(basename "$whl"); mod=${mod%%-*}
    if "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$mod') is None)" \
        2>/dev/null; then
      echo "== $mod: installed; $whl not used"
    else
      export PYTHONPATH=$PYTHONPATH:$(pwd)/$whl
      echo "== $mod: from $whl"
    fi
  done

  if [ "$DEVICE" = cuda ]; then
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,temperature.gpu,clocks.sm,clocks.max.sm,power.draw,power.limit \
                 --format=csv
      nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader
    else
      echo "== nvidia-smi: not found"
    fi
  fi
  echo "== $PYTHON: $("$PYTHON" -c 'import sys; print(sys.version.split()[0], sys.executable)')"
  "$PYTHON" - <<'EOF'
import importlib.metadata as md
names = ('jax', 'jaxlib', 'jax-cuda13-plugin', 'jax-cuda13-pjrt', 'jax-cuda12-plugin',
         'flax', 'optax', 'orbax-checkpoint', 'ml-collections', 'clu', 'tensorflow',
         'tensorflow-cpu', 'tensorflow-datasets', 'numpy', 'torch', 'nvidia-cudnn-cu13')
have = []
for n in names:
  try:
    have.append(f'{n} {md.version(n)}')
  except md.PackageNotFoundError:
    have.append(f'{n} -')
print('== packages: ' + ', '.join(have))
EOF
  echo "== PYTHONPATH=$PYTHONPATH XLA_PYTHON_CLIENT_PREALLOCATE=$XLA_PYTHON_CLIENT_PREALLOCATE" \
       "JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-} XLA_FLAGS=${XLA_FLAGS:-}"

  "$PYTHON" experiments/gpu_table.py --out "$OUT" --device "$DEVICE" \
      --budget-s "${BUDGET_S:-400}" --row-timeout-s "${ROW_TIMEOUT_S:-150}" \
      --experiments "${EXPERIMENTS:-cyclegan,pix2pix}" --sizes "${SIZES:-64,128,256}" \
      --batches "${BATCHES:-1,8,32}" --dtypes "${DTYPES:-float32,bfloat16}" \
      --sides "${SIDES:-jaxgan,torch}" --steps "${STEPS:-10}" --warmup "${WARMUP:-2}" \
      --peak-tflops "${PEAK_TFLOPS:-790}" \
      --torch-channels-last "${TORCH_CHANNELS_LAST:-bfloat16}" \
      --count-check "${COUNT_CHECK:-once}" --python "$PYTHON" \
      --extra="${EXTRA:-}" --torch-extra="${TORCH_EXTRA:-}"
  rc=$?
  # Transposed convs: phase split vs XLA's dilated conv on this backend (~1 minute).
  timeout "${CONVT_TIMEOUT_S:-60}" "$PYTHON" experiments/convt_check.py --out "$OUT" \
      --batches "${CONVT_BATCHES:-1,8}" --max-size "${CONVT_MAX_SIZE:-1024}" ||
    echo "== convt_check: exit status $? (124: over CONVT_TIMEOUT_S)"
  echo "== gpu_check done $(date -Is): exit status $rc; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
  exit $rc
} 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
