#!/usr/bin/env bash
# Every check that needs a GPU, in one run, for a machine with CUDA and the
# package's dependencies installed but no network (nothing is installed here):
# the whole test suite (the CUDA tests run where a GPU is seen), the GPU rows
# of the training and sampling benchmarks, and the paper's full recipe
# (`skspivae demo --full`). Run it from the repository root:
#
#     bash benchmarks/gpu_checks.sh [OUTPUT_FOLDER]
#
# Each step's output goes to a log in OUTPUT_FOLDER (default gpu_checks/, or
# $OUT where that is set); a failing step does not stop the next ones, and the
# exit status says whether any failed. About 10 minutes on one H200.
set -uo pipefail
out=${1:-${OUT:-gpu_checks}}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
python=${PYTHON:-python3}
status=0

step() {  # step NAME COMMAND...: run, log to $out/NAME.log, remember a failure
    local name=$1; shift
    echo "== $name: $*"
    local start=$SECONDS
    "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s; last lines:"
    tail -n 25 "$out/$name.log" | sed 's/^/   /'
    [ "$rc" -eq 0 ] || status=1
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
step tests "$python" -m pytest -q -p no:cacheprovider -rs tests skspivae
step bench_training "$python" benchmarks/bench_training.py --cuda
step bench_sampling "$python" benchmarks/bench_sampling.py --device cuda --n 1000 10000 --n-full 1000
step demo_full "$python" -m skspivae demo --full --device cuda --out "$out/demo_full"
exit $status
