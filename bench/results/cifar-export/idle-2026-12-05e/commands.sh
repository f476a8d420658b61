#!/usr/bin/env bash
# bgemm_pk against its bounds on a quiet machine (nothing else of ours
# running), three runs, from the repo root at 755cd85 (kernels as at
# 1e6a5ad's idle-2026-12-05d).
set -x
res=bench/results/cifar-export/idle-2026-12-05e
uptime > $res/load-start.txt
lscpu > $res/lscpu.txt
for r in 1 2 3; do
  env -u OPENBLAS_CORETYPE build/bench/bench_kernels --kernel bgemm_pk --reps 15 --json $res/bgemm_pk-$r.json > $res/bgemm_pk-$r.txt 2>&1
done
uptime > $res/load-end.txt
