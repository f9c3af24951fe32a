#!/usr/bin/env bash
# Per-run wall time of a 2,000-step glyphs run before and after the long track's cost reductions
# (docs/claims.md), 3 repeats in rotating order, with an A/A control; prints one line per run:
#   scripts/time_long_runs.sh OLD_TREE NEW_TREE OUT
# OLD_TREE: a checkout of 90e80ce (the last commit whose meta-test trained eager under
# runner.compile=true); NEW_TREE: a checkout of today's code; both with .venv. Variants:
#   T0 tune run before (eager), T1 tune run after (compiled: training and meta-test),
#   R0 report run before (OLD_TREE: training compiled, meta-test eager), R1 report run after,
#   AA R1 again (the noise floor). A tune run meta-tests only the final phi; a report run also
#   8 saved phis and 3 limited-data sizes. Each run starts from an empty folder under OUT.
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); out=$(realpath -m "$3"); mkdir -p "$out"
base=(method=ours method.meta_lr=0.077 method.reset_every=100 seed=100 train.steps=2000 checkpoint.every=250
      runner.threads=1)
report=("metatest.at_steps=[25,50,100,200,400,700,1000,1500]" "metatest.train_sizes=[1,3,7]")
run() {  # repeat name tree args...
  local rep=$1 name=$2 tree=$3; shift 3
  rm -rf "${out:?}/$name"
  local t0; t0=$(date +%s.%N)
  (cd "$tree" && .venv/bin/python -m benchmark.run "${base[@]}" "$@" "results_dir=$out/$name" > "$out/$name.log" 2>&1)
  echo "$rep $name $(echo "$(date +%s.%N) - $t0" | bc)"
}
for rep in 0 1 2; do
  case $rep in 0) seq=(T0 T1 R0 R1 AA) ;; 1) seq=(AA R1 R0 T1 T0) ;; 2) seq=(R0 AA T1 T0 R1) ;; esac
  for v in "${seq[@]}"; do
    case $v in
      T0) run $rep T0 "$new" runner.compile=false ;;
      T1) run $rep T1 "$new" runner.compile=true ;;
      R0) run $rep R0 "$old" runner.compile=true "${report[@]}" ;;
      R1) run $rep R1 "$new" runner.compile=true "${report[@]}" ;;
      AA) run $rep AA "$new" runner.compile=true "${report[@]}" ;;
    esac
  done
done
