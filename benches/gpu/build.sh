#!/usr/bin/env bash
# Builds what benches/gpu/check.sh runs, on a machine that needs no GPU to build it:
#
#   benches/gpu/build.sh FEATURE DEST
#
# FEATURE is `cuda` or `wgpu`. DEST gets `xtask` and the test binaries `fused_kernels`,
# `tiny_parity`, `training_device`, stripped (CUDA and wgpu are loaded at run time, so the
# binaries run on a machine with a driver and no toolkit).
set -euo pipefail
feature=$1
dest=$2
cd "$(dirname "$0")/../.."
mkdir -p "$dest"
cargo build -p xtask --features "$feature"
tests=(fused_kernels tiny_parity training_device)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
cargo test -p mars2-tests --features "$feature" "${args[@]}" --no-run --message-format=json \
    | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name path; do
    cp "$path" "$dest/$name"
done
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cp "$target/debug/xtask" "$dest/xtask"
strip "$dest"/*
ls -l "$dest"
