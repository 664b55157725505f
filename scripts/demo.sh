#!/usr/bin/env bash
# The demo: one complete simulated CPM visit in a real PsychoPy window (on a virtual screen when
# there is none), simulated devices and participant, clock 100x faster. Prints the CPM result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
pid="DEMO$(date -u +%H%M%S)"
exec bash scripts/with_display.sh .venv/bin/cpm-session run --participant "$pid" --visit baseline \
    --simulate --speed 100 --seed 1 --data data/demo --screenshots data/demo/screens "$@"
