#!/usr/bin/env bash
# The GPU path in one prepared run, for the GPU machine this project is lent now and then
# (one H200, no internet, a Python with torch, Lightning, torchvision, torchmetrics, scipy,
# matplotlib and tensorboard; 15 minutes in all). One summary line per step.
#
#   bash scripts/gpu_check.sh --prepare   # here: the missing packages' wheels (CPython 3.12,
#                                         # x86-64 Linux) and MNIST into .gpu_check/ (ignored)
#   bash scripts/gpu_check.sh             # there, from the repository root, .gpu_check/ carried
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 DATA_DIR=... bash scripts/gpu_check.sh
#                                         # the CPU rehearsal (tests/test_gpu_check.py)
#
# Steps: install what is missing from the carried wheels; the tests marked cuda; the bench on
# the device (framework vs hand-written loops at batch 64 and 256, packs of K = 1, 8, 32, 64
# seeds); seed 000's protocol (LeNet-5, MNIST, 10 epochs, batch 64) as one job, wall time with
# start-up; 8 one-epoch jobs with hydra/launcher=parallel parallel.jobs_per_gpu=8 against the
# same 8 one after another. Everything it prints is kept in $OUT (or .gpu_check/out).
set -uo pipefail
cd "$(dirname "$0")/.."
HERE=.gpu_check
PY=${PYTHON:-python3}

if [ "${1:-}" = "--prepare" ]; then
    set -e
    mkdir -p "$HERE/wheels" "$HERE/data/MNIST/raw"
    # the packages the device lacks, at the versions this checkout's environment runs
    "$PY" - > "$HERE/requirements.txt" <<'EOF'
import importlib.metadata as md, re
present = {"torch", "torchvision", "lightning", "torchmetrics", "scipy", "matplotlib",
           "tensorboard", "numpy", "pillow", "triton", "setuptools", "pip", "packaging",
           "lightning-utilities", "pytorch-lightning", "fsspec", "filelock", "jinja2",
           "markupsafe", "sympy", "networkx", "mpmath", "typing-extensions", "protobuf",
           "grpcio", "absl-py", "markdown", "werkzeug", "tensorboard-data-server", "contourpy",
           "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "six",
           "aiohttp"}
seen = set()
def walk(name):
    name = re.sub(r"[-_.]+", "-", name).lower()
    if name in seen or name in present or name.startswith("nvidia"):
        return
    seen.add(name)
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return
    print(f"{name}=={dist.version}")
    for req in dist.requires or []:
        if "extra ==" not in req:
            walk(re.split(r"[ ;<>=!~\[(]", req, 1)[0])
for top in ("hydra-core", "hydra-joblib-launcher", "wandb", "pandas", "pytest"):
    walk(top)
EOF
    grep -v '^antlr4' "$HERE/requirements.txt" | "$PY" -m pip download -q --no-deps \
        --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$HERE/wheels" -r /dev/stdin
    # antlr4's runtime is published as a source archive only: built here, pure Python
    "$PY" -m pip wheel -q --no-deps -w "$HERE/wheels" "$(grep '^antlr4' "$HERE/requirements.txt")"
    cp "${REAL_DATA:-../shared/data}"/MNIST/raw/*.gz "$HERE/data/MNIST/raw/"
    du -sh "$HERE"
    exit 0
fi

DEVICE=${GPU_CHECK_DEVICE:-cuda}
QUICK=${GPU_CHECK_QUICK:-0}
OUTDIR=${OUT:-$HERE/out}
mkdir -p "$OUTDIR"
export DATA_DIR=${DATA_DIR:-$PWD/$HERE/data}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE=offline WANDB_SILENT=true
ACCEL=$([ "$DEVICE" = cuda ] && echo gpu || echo cpu)
FAILED=0

# step NAME COMMAND...: run it (its output in $OUTDIR/NAME.log), then one summary line
step() {
    local name=$1; shift
    local start end status
    start=$(date +%s.%N)
    "$@" > "$OUTDIR/$name.log" 2>&1
    status=$?
    end=$(date +%s.%N)
    local seconds
    seconds=$("$PY" -c "print(f'{$end - $start:.1f}')")
    if [ $status -eq 0 ]; then
        echo "step $name: ok ($seconds s) $(summary "$name")"
    else
        FAILED=1
        echo "step $name: FAILED, exit $status ($seconds s): $(tail -n 3 "$OUTDIR/$name.log" | tr '\n' ' ' | cut -c1-300)"
    fi
}

# the figures of a step's log worth a line
summary() {
    case $1 in
        versions) tail -n 1 "$OUTDIR/versions.log" ;;
        tests) tail -n 1 "$OUTDIR/tests.log" ;;
        bench) grep -E '^(framework|packed)/' "$OUTDIR/bench.log" | tr '\n' ' ' ;;
        seed000) grep -E '^test, on' "$OUTDIR/seed000.log" | cut -c1-120 ;;
        sweep_*) grep -E 'jobs with results' "$OUTDIR/$1.log" | sed 's/.*: \([0-9]* jobs with results\)/\1/' ;;
        *) echo "" ;;
    esac
}

install() {
    "$PY" -c "import hydra, omegaconf, hydra_plugins.hydra_joblib_launcher, wandb, pandas, pytest" \
        2>/dev/null && { echo "nothing missing"; return 0; }
    "$PY" -m pip install --no-index --find-links "$HERE/wheels" -r "$HERE/requirements.txt"
}

versions() {
    "$PY" -c "
import torch, lightning, sys
name = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'
print(f'python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), lightning {lightning.__version__}, {name}')"
}

if [ "$QUICK" = 1 ]; then
    SMALL=(dataset.val_size=100 dataset.eval_batch_size=100 dataset.verify_checksums=false)
    BENCH=(--batch-sizes 16 32 --steps 3 --rounds 1 --startup-runs 0 --pack-sizes 1 2
           --pack-steps 3 --set "${SMALL[@]}")
    TRAIN=("${SMALL[@]}" trainer.max_epochs=1 trainer.limit_train_batches=4
           evaluation.shift=false evaluation.feature_maps=false)
    SEEDS="seed=0,1"
    TESTS=(-m cuda tests/test_gpu_check.py)  # on CPU: collected and skipped
else
    BENCH=(--batch-sizes 64 256 --pack-sizes 1 8 32 64)
    TRAIN=(trainer.max_epochs=1)
    SMALL=()
    SEEDS="seed=range(8)"
    TESTS=(-m cuda tests/test_gpu_check.py)
fi

[ "$DEVICE" = cuda ] && step install install
step versions versions
step tests "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
step bench "$PY" -m benchmarks --device "$DEVICE" --dataset mnist \
    --data-dir "$DATA_DIR" "${BENCH[@]}"
step seed000 "$PY" -m downsample_study accelerator=$ACCEL dataset=mnist model=lenet5 \
    downsample=maxpool dataset.batch_size=64 trainer.max_epochs=10 logger=none \
    paths.data_dir="$DATA_DIR" hydra.run.dir="$OUTDIR/seed000" \
    $([ "$QUICK" = 1 ] && echo "${TRAIN[@]}" trainer.max_epochs=1)
SWEEP=(-m accelerator=$ACCEL logger=none paths.data_dir="$DATA_DIR" "${TRAIN[@]}" "$SEEDS")
step sweep_sequential "$PY" -m downsample_study "${SWEEP[@]}" \
    hydra.sweep.dir="$OUTDIR/sweep_sequential"
step sweep_parallel "$PY" -m downsample_study "${SWEEP[@]}" hydra/launcher=parallel \
    parallel.jobs_per_gpu=8 hydra.sweep.dir="$OUTDIR/sweep_parallel"
exit $FAILED
