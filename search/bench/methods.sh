#!/usr/bin/env bash
# Compares the search methods on the same node budget: runs `cargo xtask eval` once per
# method into OUT/<method>/ and prints one table (markdown) from the summaries.
#
#   search/bench/methods.sh [OUT] [extra eval arguments...]
#
# Defaults: HumanEval, first 10 problems, SmolLM2-135M-Instruct, budget 4, 256 new tokens.
# Pass@1 comes from 4 fresh samples per problem drawn in the `sample` run (it does not
# depend on the method). Runs resume: rerunning skips finished problems.
set -euo pipefail
out="${1:-target/eval-methods}"
shift || true
common=(--benchmark humaneval --agent smollm2-135m-instruct --budget 4 --limit 10
        --max-new-tokens 256 --concurrency 10 --seed 1 "$@")
for method in sample chain abmcts tplus; do
  samples=0
  [ "$method" = sample ] && samples=4
  cargo xtask eval "${common[@]}" --method "$method" --samples "$samples" --out "$out/$method"
done
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
pct = lambda x: "–" if x is None else f"{100 * x:.1f}%"
print("| method | problems | Pass@1 | Pass@1(MCTS) | PassN | AEC | nodes | mean depth | tokens | wall s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for m in ["sample", "chain", "abmcts", "tplus"]:
    s = json.loads((out / m / "summary.json").read_text())
    print(f"| {m} | {s['problems']} | {pct(s['pass1'])} | {pct(s['pass1_mcts'])} | {pct(s['passN'])} "
          f"| {pct(s['aec'])} | {s['nodes']} | {s['mean_depth']:.2f} | {s['tokens_generated']} | {s['wall_seconds']:.0f} |")
PY
