#!/usr/bin/env bash
# 64x50x500 against the bound over time, in one process (mode.c), 60 s
# pinned to one core, then six bench_kernels runs of the shape back to back.
# From the repo root after scripts/run build.
set -ex
. bench/results/cifar-export/budget-2026-12-05/env.sh
gcc -O2 -Iruntime -Ibench $res/mode.c $w/kA.o $L -o $w/mode
uptime > $res/modes-load-start.txt
taskset -c 1 $w/mode 60 > $res/modes.txt
for r in 1 2 3 4 5 6; do
  env -u OPENBLAS_CORETYPE build/bench/bench_kernels --kernel bgemm_pk --reps 15 --shape 1 2>&1 | grep "bgemm_pk "
done > $res/modes-bench_kernels.txt
uptime > $res/modes-load-end.txt
