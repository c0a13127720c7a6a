#!/usr/bin/env bash
# Every GPU check and benchmark of the project in one run, for a machine with an NVIDIA GPU but
# no Rust toolchain: correctness of the CUDA backends (f32, f16, bf16) through the test binaries,
# decode throughput against transformers, the kernel table, and one GSPO update against PyTorch.
#
#   benches/gpu/check.sh BIN_DIR OUT_DIR [SECONDS]
#
# BIN_DIR holds `xtask` and the test binaries `fused_kernels`, `tiny_parity`, `training_device`
# built with `--features cuda` (benches/gpu/build.sh makes them). Everything printed goes to
# OUT_DIR/log.txt, every JSON figure to OUT_DIR/results.jsonl. Steps run in order of priority;
# a step that would start after SECONDS (default 480) have passed is skipped and says so.
# On a machine without CUDA, `DEVICE=wgpu` runs the same checks on wgpu (binaries built with
# `--features wgpu`; the Python baselines need a CUDA torch and are skipped).
set -uo pipefail
bin=$(cd "$1" && pwd)
out=$(mkdir -p "$2" && cd "$2" && pwd)
budget=${3:-480}
device=${DEVICE:-cuda}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
start=$(date +%s)
log="$out/log.txt"
results="$out/results.jsonl"
: >"$log"
: >"$results"
export CARGO_MANIFEST_DIR="$repo/tests" RUST_BACKTRACE=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} PYTHONUNBUFFERED=1

note() { echo "== $*" | tee -a "$log"; }

# step NAME LIMIT COMMAND...: runs COMMAND under a time limit, output into the log, JSON lines
# (those starting with '{') also into results.jsonl.
step() {
    local name=$1 limit=$2
    shift 2
    local now=$(($(date +%s) - start))
    if [ $((now + 10)) -gt "$budget" ]; then
        note "$name: skipped ($now s of $budget s used)"
        return
    fi
    if [ $((now + limit)) -gt "$budget" ]; then
        limit=$((budget - now))
    fi
    note "$name (at $now s, limit $limit s): $*"
    local t0=$(date +%s.%N)
    timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$log" | grep '^{' >>"$results"
    local rc=${PIPESTATUS[0]}
    local t1=$(date +%s.%N)
    note "$name: exit $rc after $(awk "BEGIN {print $t1 - $t0}") s"
    echo "{\"figure\": \"step\", \"name\": \"$name\", \"exit\": $rc}" >>"$results"
}

tests() {
    local dev=$1 limit=$2
    shift 2
    for t in "$@"; do
        step "$t on $dev" "$limit" env MARS2_TEST_DEVICE="$dev" "$bin/$t" --nocapture --test-threads 1
    done
}

# CubeCL compiles its kernels at run time with NVRTC: make every copy of it on the machine
# findable (the CUDA toolkit's, or the one PyTorch ships).
if [ "$device" = cuda ]; then
    for lib in $(find /usr/local /opt /usr/lib -name 'libnvrtc.so*' -not -path '*stubs*' 2>/dev/null | head -20); do
        LD_LIBRARY_PATH="$(dirname "$lib"):${LD_LIBRARY_PATH:-}"
    done
    export LD_LIBRARY_PATH
fi

note "machine"
{ nvidia-smi || true; uname -a; nproc; python3 --version; echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; } >>"$log" 2>&1
python3 - >>"$log" 2>&1 <<'PY' || true
import torch, transformers
print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.version.cuda)
PY
python_cuda=0
if [ "${SKIP_PYTHON:-0}" != 1 ] &&
    python3 -c 'import torch, transformers, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python_cuda=1
fi

# 1. Correctness in f32; decode against transformers on both models' shapes.
tests "$device" 150 fused_kernels tiny_parity training_device
step "engine decode, smollm2-135m shape" 150 "$bin/xtask" bench engine --model random:smollm2-135m \
    --device "$device" --batches 1,32,256 --new-tokens 32 --no-tree --profile --json
[ $python_cuda = 1 ] && step "transformers decode, smollm2-135m shape" 100 \
    python3 benches/python/hf_decode_bench.py --shape smollm2-135m --batches 1,32,256 --new-tokens 32
step "engine decode, qwen2.5-coder-0.5b shape" 150 "$bin/xtask" bench engine \
    --model random:qwen2.5-coder-0.5b --device "$device" --batches 1,32,256 --new-tokens 32 \
    --no-tree --profile --json
[ $python_cuda = 1 ] && step "transformers decode, qwen2.5-coder-0.5b shape" 100 \
    python3 benches/python/hf_decode_bench.py --shape qwen2.5-coder-0.5b --batches 1,32,256 --new-tokens 32
# 2. Half precision.
if [ "$device" = cuda ]; then
    tests cuda-bf16 100 fused_kernels tiny_parity
    tests cuda-f16 100 fused_kernels tiny_parity
else
    tests "$device-f16" 100 fused_kernels tiny_parity
fi
# 3. The kernel table, one GSPO update against PyTorch, decode in bf16.
step "kernels" 90 "$bin/xtask" bench kernels --device "$device" --json
step "train step, smollm2-135m shape" 120 "$bin/xtask" bench train-step --model random:smollm2-135m \
    --device "$device" --json
[ $python_cuda = 1 ] && step "pytorch train step, smollm2-135m shape" 90 \
    python3 benches/python/torch_gspo_step.py --shape smollm2-135m --device cuda
if [ "$device" = cuda ]; then
    step "engine decode bf16, smollm2-135m shape" 120 "$bin/xtask" bench engine \
        --model random:smollm2-135m --device cuda-bf16 --batches 1,32,256 --new-tokens 32 --no-tree --json
fi
note "done after $(($(date +%s) - start)) s"
