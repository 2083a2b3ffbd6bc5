#!/usr/bin/env bash
# Re-measure the README's result tables on the real MNIST / FashionMNIST (the folder DATA_DIR
# points to): the seed presets and the operator study, each a sweep of variants × 10 seeds
# (packed), two jobs at a time (hydra/launcher=parallel), then its report.
#   DATA_DIR=/path/to/data scripts/readme_results.sh [PRESET ...]   # default: all of them
# Sweeps go to multirun/readme/<preset>/; a re-run finishes only what is missing there. Each
# report (markdown, CSV, PNG and SVG plots) is then copied to docs/results/<preset>/.
# The sweep's record (results, per-epoch metrics, configs, tuned rates; no checkpoints) is
# kept in docs/results/<preset>/record/: every 10 minutes while the sweep runs and when it
# ends or is stopped. A sweep begun on another machine (multirun/ is not committed) goes on
# from that record: what it holds is not trained again.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=$(realpath "${DATA_DIR:?set DATA_DIR to the folder that holds MNIST/ and FashionMNIST/}")
[ -d "$DATA_DIR" ] || { echo "DATA_DIR=$DATA_DIR: no such folder (the one that holds MNIST/ and FashionMNIST/)" >&2; exit 2; }
PY=${PY:-.venv/bin/python}
SAVE_EVERY_S=${SAVE_EVERY_S:-600}
declare -A OVERRIDES=(
    [seed000]=""
    [seed001]="dataset=mnist,fashion_mnist"   # no CIFAR-10 copy where these were measured
    [seed002]=""
    [operators]=""
)
# a stop (kill, Ctrl-C) reaches the sweep, which stops cleanly; this script then saves the
# record before it exits
trap 'echo "stopped: saving the record"' TERM INT
record() { "$PY" -m downsample_study.sweeps.record "$@"; }
for preset in ${@:-}; do  # every one known before the first sweep starts
    [[ -v "OVERRIDES[$preset]" ]] || {
        echo "unknown preset $preset; the presets: $(printf "%s " "${!OVERRIDES[@]}" | xargs -n1 | sort | xargs)" >&2; exit 2; }
done
for name in "${@:-seed000 seed001 seed002 operators}"; do
    for preset in $name; do
        sweep=multirun/readme/$preset
        kept=docs/results/$preset/record
        if [ -d "$kept" ]; then record "$kept" "$sweep"; fi
        ( while sleep "$SAVE_EVERY_S"; do record "$sweep" "$kept" >/dev/null 2>&1 || true; done ) &
        saver=$!
        start=$(date +%s)
        status=0
        # shellcheck disable=SC2086  # the overrides are words
        "$PY" -m downsample_study -m "experiment=$preset" ${OVERRIDES[$preset]} \
            hydra/launcher=parallel "paths.data_dir=$DATA_DIR" "hydra.sweep.dir=$sweep" \
            || status=$?
        kill "$saver" 2>/dev/null || true
        record "$sweep" "$kept" || true
        [ "$status" -eq 0 ] || exit "$status"
        echo "$preset: sweep took $(( $(date +%s) - start )) s"
        "$PY" -m downsample_study.report "$sweep"
        find "docs/results/$preset" -maxdepth 1 -type f -delete
        cp "$sweep"/{report.md,results.csv,comparisons.csv} "$sweep"/*.png "$sweep"/*.svg \
            "docs/results/$preset/"
    done
done
