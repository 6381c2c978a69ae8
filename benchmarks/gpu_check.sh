#!/usr/bin/env bash
# Every GPU test and measurement, bounded (~7.5 min): see benchmarks/gpu_check.py and
# docs/benchmarks.md "GPU check". On the device machine, after `python -m benchmarks.gpu_prepare`
# here and with carry [".gpu"]: installs the carried wheels, points the default backbone, heads
# and dev sets at .gpu/, runs the steps, and copies the results into $OUT when it is set.
# Arguments go to benchmarks.gpu_check (--dry-run, --only, --budget-s ...).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extra=()
if [ -d .gpu ]; then
  if [ -d .gpu/wheels ] && [[ " $* " != *" --dry-run "* ]]; then
    "$PY" -m pip install -q --no-index --no-compile --find-links .gpu/wheels \
      fastapi pydantic-settings uvicorn orjson fastapi-offline seqeval || exit 3
  fi
  export PYTHONPATH="$PWD:$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}"
  export SIDETASK_HEADS_DIR="$PWD/.gpu/heads"
  extra+=(--heads-dir "$PWD/.gpu/heads" --data-dir "$PWD/.gpu/data")
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -n "${OUT:-}" ]; then
  extra+=(--collect "$OUT")
fi
exec "$PY" -m benchmarks.gpu_check --python "$PY" "${extra[@]}" "$@"
