#!/usr/bin/env bash
# Run the study on one GPU with NPROC sweep processes sharing it (the organism is too small to fill a
# GPU from one process: each step is a few kernel launches), stop generating after LIMIT seconds (the
# prompts are interleaved by tag, so the completed prefix is balanced; the sweep resumes where it
# stopped when run again), then reduce the store's done samples to the tables the findings page reads.
#   NPROC=14 LIMIT=300 STORE=/tmp/study.zarr TABLES=traces/study/tables.npz bash traces/study/run_study.sh
set -u
NPROC=${NPROC:-14}
LIMIT=${LIMIT:-300}
STORE=${STORE:-traces/out/organism_study.zarr}
TABLES=${TABLES:-traces/study/tables.npz}
export OMP_NUM_THREADS=1
start=$(date +%s)
timeout -s TERM "$LIMIT" torchrun --standalone --nproc_per_node "$NPROC" -m interp.cli sweep \
    traces/study/organism_study.toml --store "$STORE" --no-progress
echo "sweep exit $? after $(( $(date +%s) - start )) s"
python -m interp.analysis.study_tables "$STORE" "$TABLES" --workers "$NPROC" --block 128
echo "total $(( $(date +%s) - start )) s"
