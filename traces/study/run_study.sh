#!/usr/bin/env bash
# Run the study (traces/study/organism_study.toml) and write its tables, findings page and cost to OUT:
#   OUT=/tmp/study BUDGET=190 LIMIT=120 NPROC=14 bash traces/study/run_study.sh          # one GPU
#   OUT=/tmp/study PER_TAG=2 SEEDS=1 NPROC=1 LIMIT=3600 bash traces/study/run_study.sh   # small, CPU
#
# 1. The sweep runs NPROC processes (torchrun; the organism is too small to fill a GPU from one process:
#    each step is a few kernel launches) and is stopped after LIMIT seconds. The prompt file is
#    interleaved by tag and the ranks take prompts round robin, so what is done is balanced by tag; the
#    analysis keeps only the units (caption line, seed) that every condition finished. Run again with the
#    same STORE to resume.
# 2. The store's done samples are reduced to OUT/tables.npz (interp.analysis.study_tables).
# 3. The run's cost (device, processes, sweep seconds, samples generated, samples/s) goes into WORK/cost.json
#    and into the tables (the page shows it, also when regenerated from the tables alone).
# 4. OUT/findings.md (+ findings.json, every number and the cost; figures in OUT/img/findings) is generated
#    from the tables (`interp findings`). OUT gets these files only; the sweep's log, the cost and a
#    config copy go to WORK (default OUT), the store to STORE (thousands of chunk files).
# BUDGET (seconds, whole script) bounds stages 2-4 so that a run under `timeout` still leaves its files.
# PER_TAG / SEEDS / STEPS / CONDITIONS (comma-separated) run a smaller copy of the recipe
# (traces/study/subset_config.py); the store then lives in WORK unless STORE is given.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONUNBUFFERED=1
OUT=${OUT:-traces/out/study}
NPROC=${NPROC:-14}
LIMIT=${LIMIT:-120}
BUDGET=${BUDGET:-100000}
RESAMPLES=${RESAMPLES:-9999}
WORK=${WORK:-$OUT}
mkdir -p "$OUT" "$WORK"
t0=$(date +%s)
left() {  # seconds of BUDGET left after reserving $1 (at least 1: `timeout 0` would mean no limit)
    local n=$(( BUDGET - ($(date +%s) - t0) - $1 )); echo $(( n > 0 ? n : 1 ))
}

CONFIG=traces/study/organism_study.toml
if [ -n "${PER_TAG:-}${SEEDS:-}${STEPS:-}${CONDITIONS:-}" ]; then
    CONFIG="$WORK/study.toml"
    python traces/study/subset_config.py "$CONFIG" ${PER_TAG:+--per-tag "$PER_TAG"} ${SEEDS:+--seeds "$SEEDS"} \
        ${STEPS:+--steps "$STEPS"} ${CONDITIONS:+--conditions "$CONDITIONS"} || exit 1
    STORE=${STORE:-$WORK/store.zarr}
fi
STORE=${STORE:-/tmp/organism_study.zarr}
before=0
if [ -d "$STORE" ]; then  # resuming: count only what this run generates
    before=$(python -c "import sys, numpy as np, xarray as xr; print(int(np.asarray(xr.open_zarr(sys.argv[1]).done).sum()))" "$STORE")
fi

echo "sweep: $CONFIG -> $STORE, $NPROC process(es), stopped after $LIMIT s"
if [ "$NPROC" -gt 1 ]; then
    timeout -s TERM -k 10 "$LIMIT" python -m torch.distributed.run --standalone --nproc_per_node "$NPROC" \
        -m interp.cli sweep \
        "$CONFIG" --store "$STORE" --no-progress > "$WORK/sweep.log" 2>&1
else
    timeout -s TERM -k 10 "$LIMIT" python -m interp.cli sweep "$CONFIG" --store "$STORE" --no-progress \
        > "$WORK/sweep.log" 2>&1
fi
rc=$?
sweep_s=$(( $(date +%s) - t0 ))
echo "sweep exit $rc after $sweep_s s (124: stopped at the limit)"
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then tail -n 5 "$WORK/sweep.log"; else tail -n 40 "$WORK/sweep.log"; fi

t1=$(date +%s)
timeout -k 5 "$(left 45)" python -m interp.analysis.study_tables "$STORE" "$OUT/tables.npz" \
    --workers "$NPROC" --block 64 || { echo "tables failed or ran out of time"; exit 1; }
tables_s=$(( $(date +%s) - t1 ))

python - "$OUT" "$WORK" "$NPROC" "$LIMIT" "$sweep_s" "$tables_s" "$rc" "$before" <<'EOF'
import json, sys
import numpy as np
import torch
out, work, nproc, limit, sweep_s, tables_s, rc, before = sys.argv[1:]
with np.load(f"{out}/tables.npz") as z:
    done = int(z["sample"].size) - int(before)
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no CUDA)"
cost = {
    "device": device,
    "processes": int(nproc),
    "sweep_limit_s": int(limit),
    "sweep_exit": int(rc),
    "sweep_wall_s": int(sweep_s),
    "samples_generated": done,
    "samples_per_s": round(done / max(int(sweep_s), 1), 3),
    "tables_wall_s": int(tables_s),
}
json.dump(cost, open(f"{work}/cost.json", "w"), indent=1)
with np.load(f"{out}/tables.npz") as z:  # the tables carry their run's cost, so the page regenerates with it
    tables = {k: z[k] for k in z.files}
np.savez_compressed(f"{out}/tables.npz", **tables, cost=np.array(json.dumps(cost)))
print(json.dumps(cost))
EOF

timeout -k 5 "$(left 5)" python -m interp.cli findings "$OUT/tables.npz" --out "$OUT/findings.md" \
    --figures "$OUT/img/findings" --json "$OUT/findings.json" --resamples "$RESAMPLES" --label "tables.npz" \
    || echo "findings failed or ran out of time: regenerate the page from tables.npz with interp findings"
echo "total $(( $(date +%s) - t0 )) s (device seconds of the whole run)"
