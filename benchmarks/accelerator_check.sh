#!/usr/bin/env bash
# One prepared check of jaxvi on an accelerator: install, test, benchmark; every result under $OUT.
#
#   OUT=results bash benchmarks/accelerator_check.sh
#
# On a machine with an NVIDIA GPU (nvidia-smi works) it:
#   1. installs the project with JAX's CUDA build into a fresh venv (jax[cuda12]; set
#      JAXVI_CHECK_JAX_EXTRA=cuda13 for a CUDA 13 driver), with the `cli` and `check` extras;
#   2. runs the device-agnostic tests on the GPU (kernels, references, gradients, fit with every
#      engine, compile counts, float64 in its own process);
#   3. runs `jaxvi bench --json --plot` (padded solve, device-resident ragged statistics, fit from
#      host NumPy against jnp.sum, the host-to-device copy and the nominal bandwidth; NumPy and
#      numba peers) and prints the issue's targets against it;
#   4. runs the padded and ragged pytest-benchmark suites.
# Without a GPU it does the same on the CPU. Each step is time-boxed so that the whole stays
# within 8 minutes on a 16-core GPU machine; a failing step does not stop the next ones, and
# the exit code is non-zero if any failed. $OUT/steps.tsv lists each step's exit code and time.
#
# Knobs (environment):
#   OUT                      where results go (default: ./accelerator_check_out)
#   JAXVI_CHECK_MODE         gpu | cpu (default: gpu when nvidia-smi lists a GPU)
#   JAXVI_CHECK_SCALE        workload size factor (default 1: 10^6 ragged, 2*10^6 padded rows)
#   JAXVI_CHECK_PYTHON       an interpreter that already has jaxvi: skip the venv and install
#   JAXVI_CHECK_TESTS        the test files to run (default: the device-agnostic set below)
#   JAXVI_CHECK_REPS         repetitions of jaxvi bench (default 5)
set -uo pipefail
# Started from a pytest-xdist worker (the suite), its pytest runs would count as xdist workers
# too, and pytest-benchmark would refuse to time.
unset PYTEST_XDIST_WORKER PYTEST_XDIST_WORKER_COUNT PYTEST_XDIST_TESTRUNUID
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/accelerator_check_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SCALE=${JAXVI_CHECK_SCALE:-1}
REPS=${JAXVI_CHECK_REPS:-5}
TESTS=${JAXVI_CHECK_TESTS:-"tests/test_solve.py tests/test_closed_form.py tests/test_exact.py \
tests/test_stats.py tests/test_padding.py tests/test_grad.py tests/test_batch.py \
tests/test_validate.py tests/test_compile.py tests/test_estimate_lam.py \
tests/test_reference_closed_form.py tests/test_reference_exact.py tests/test_float64.py"}
if [ -z "${JAXVI_CHECK_MODE:-}" ]; then
  if nvidia-smi -L >/dev/null 2>&1; then JAXVI_CHECK_MODE=gpu; else JAXVI_CHECK_MODE=cpu; fi
fi
MODE=$JAXVI_CHECK_MODE
FAILED=0
printf 'step\texit\tseconds\n' >"$OUT/steps.tsv"

# step NAME TIMEOUT_S COMMAND...: run it, its output in $OUT/NAME.log, its exit code and time
# in steps.tsv.
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "== $name (at most ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$OUT/steps.tsv"
  tail -n 5 "$OUT/$name.log"
  if [ "$rc" -ne 0 ]; then
    echo "   $name failed (exit $rc); see $OUT/$name.log"
    FAILED=1
  fi
  return "$rc"
}

echo "jaxvi accelerator check: mode $MODE, scale $SCALE, results in $OUT"
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  uname -a
  nproc
  git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo "not a git checkout"
  if [ "$MODE" = gpu ]; then nvidia-smi; fi
} >"$OUT/machine.txt" 2>&1

install() {
  local venv=$1 extras="cli,check"
  python3 -m venv "$venv" || return 1
  local pkgs=("-e" "$ROOT[$extras]")
  if [ "$MODE" = gpu ]; then pkgs+=("jax[${JAXVI_CHECK_JAX_EXTRA:-cuda12}]"); fi
  "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install "${pkgs[@]}"
}

export -f install
export MODE ROOT

if [ -n "${JAXVI_CHECK_PYTHON:-}" ]; then
  PY=$JAXVI_CHECK_PYTHON
  echo "using $PY as it is (no install)" >"$OUT/install.log"
else
  VENV=$(mktemp -d)/venv
  step install 300 bash -c 'install "$0"' "$VENV" || { echo "install failed: nothing else can run"; exit 1; }
  PY=$VENV/bin/python
fi
BIN=$(dirname "$PY")
export PATH="$BIN:$PATH"
# Tests start processes of their own (float64, the CLI): no process may take the GPU's memory
# up front, or the next one finds none left.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

step devices 60 "$PY" -c "
import jax, jaxlib, jaxvi
print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'jaxvi', jaxvi.__version__)
print(jax.devices())
want = '$MODE'
got = jax.devices()[0].platform
assert got == want, f'expected the {want} backend, JAX chose {got}'
"

# shellcheck disable=SC2086  # TESTS is a list of paths
step tests 240 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" $TESTS \
  --junitxml="$OUT/tests.xml"

N=$("$PY" -c "print(max(int(1_000_000 * $SCALE), 1000))")
ROWS=$("$PY" -c "print(max(int(2_000_000 * $SCALE), 1000))")
step bench 180 "$PY" -m jaxvi bench -n "$N" --padded-rows "$ROWS" --peers numpy,numba \
  --reps "$REPS" --json "$OUT/bench.json" --plot "$OUT/bench.png"
if [ -f "$OUT/bench.json" ]; then
  step targets 30 "$PY" "$ROOT/benchmarks/accelerator_targets.py" "$OUT/bench.json"
fi

step benchmarks 150 env JAXVI_BENCH_SCALE="$SCALE" "$PY" -m pytest -q -p no:cacheprovider \
  -o addopts="" benchmarks/test_padded.py benchmarks/test_ragged.py --benchmark-enable \
  --benchmark-json="$OUT/benchmarks.json" --benchmark-columns=min,median,max,rounds

echo "== done: $OUT"
column -t "$OUT/steps.tsv" 2>/dev/null || cat "$OUT/steps.tsv"
exit "$FAILED"
