#!/usr/bin/env bash
# bgemm_pk against its bounds, three runs, right after commands.sh's
# measurements (the same session, nothing else of ours running), from the
# repo root; kernels as at HEAD (1395cd5's runtime/).
set -x
res=bench/results/cifar-export/budget-2026-12-05
uptime > $res/bk-load-start.txt
for r in 1 2 3; do
  env -u OPENBLAS_CORETYPE build/bench/bench_kernels --kernel bgemm_pk --reps 15 --json $res/bgemm_pk-$r.json > $res/bgemm_pk-$r.txt 2>&1
done
uptime > $res/bk-load-end.txt
