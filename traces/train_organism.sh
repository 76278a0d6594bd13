#!/usr/bin/env bash
# Train the model organism on one GPU, evaluate it on held-out captions, and collect the results.
#
# Device-machine job (see docs/organism.md): run from the repository root. Installs carried wheels from
# .carry/wheels when present (the GPU image lacks diffusers), trains CHUNKS chunks (default 1) of MINUTES
# minutes each, resuming between them (TRAIN_ARGS, e.g. "--compile --budget-minutes 13", sizes the run),
# then evaluates with the exact scorer.
# Results go to $OUT (the device tool's return folder) or out/organism.
set -euo pipefail
OUT=${OUT:-out/organism}
RUN=${RUN:-/tmp/organism_run}
MINUTES=${MINUTES:-7}
TRAIN_ARGS=${TRAIN_ARGS:-}
EVAL_ARGS=${EVAL_ARGS:---select 2,3,4,6 --n-per-tag 256 --train-n-per-tag 128 --extra-steps 10}
mkdir -p "$OUT"
if [ "${SKIP_WHEELS:-0}" != 1 ] && ls .carry/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .carry/wheels/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
python3 -c "import sys, torch, diffusers, transformers, tokenizers; print(sys.version.split()[0], torch.__version__, diffusers.__version__, transformers.__version__, tokenizers.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" 2>&1 | tee "$OUT/log.txt"
T0=$(date +%s)
# CHUNKS chunks back to back (each its own process, resuming the last checkpoint), then evaluation
for ((chunk = 1; chunk <= ${CHUNKS:-1}; chunk++)); do
  RESUME=""
  [ "$chunk" -gt 1 ] && RESUME="--resume"
  # shellcheck disable=SC2086
  python3 -m interp.organism.train --out "$RUN" --minutes "$MINUTES" $RESUME $TRAIN_ARGS 2>&1 | tee -a "$OUT/log.txt"
  if python3 -c "import json,sys; sys.exit(0 if json.load(open('$RUN/training.json')).get('done') else 1)"; then
    break
  fi
done
T1=$(date +%s)
cp "$RUN"/transformer.safetensors "$RUN"/text_encoder.safetensors "$RUN"/training.json "$OUT"/
# shellcheck disable=SC2086
python3 -m interp.organism.evaluate --run "$RUN" --out "$OUT/eval.json" --samples "$OUT/samples.png" $EVAL_ARGS 2>&1 | tee -a "$OUT/log.txt"
T2=$(date +%s)
echo "train process $((T1 - T0)) s, evaluation $((T2 - T1)) s" | tee -a "$OUT/log.txt"
