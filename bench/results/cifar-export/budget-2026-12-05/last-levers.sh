#!/usr/bin/env bash
# Two last variants against HEAD in one process (ab.c), 2026-12-05 late:
#   tiles-8x3        8 x 3 tiles (24 counts, 8 broadcasts + 3 panel loads a
#                    word, pairs of them over 48 columns, no rows left when
#                    M % 8 = 0) in place of the 6 x 4 pairs; right C
#   both-levers      fused-tail.patch and no-backtransform.patch together:
#                    the most the levers found so far give, C wrong (the
#                    popcount-out contract would need every consumer changed)
#   gather-copy      pk_narrow's copy of the tail columns as masked gathers
#                    and whole-vector stores (no memset, no scalar stores
#                    under the 512-bit loads); right C
# probe.c on the tail alone (64 x 2, 16 x 2, 8 x 2) and on 64 x 48, 64 x 50:
# best against best and the per-round ratios, so the statistic is not what
# keeps 64 x 50 short.
# Then bench_kernels' own share of the bound, three runs. From the repo root
# after scripts/run build, on a quiet machine.
set -ex
. bench/results/cifar-export/budget-2026-12-05/env.sh
patch -s -o $w/tiles-8x3.c runtime/kern_avx512.c < $res/tiles-8x3.patch
patch -s -o $w/both-levers.c runtime/kern_avx512.c < $res/fused-tail.patch
patch -s $w/both-levers.c < $res/no-backtransform.patch
patch -s -o $w/gather-copy.c runtime/kern_avx512.c < $res/gather-copy.patch
uptime > $res/last-levers-load-start.txt
for v in tiles-8x3 both-levers gather-copy; do
  AB_NOCHECK=1 ab_variant $v "64 50 500" "64 48 500" "128 1024 1024"
done
gcc -O2 -Iruntime -Ibench $res/probe.c $w/kA.o $L -o $w/probe
for r in 1 2 3; do
  taskset -c 1 $w/probe 600 64 2 500 16 2 500 8 2 500 64 48 500 64 50 500 256 256 4096
done > $res/last-levers-probe.txt
for r in 1 2 3; do
  env -u OPENBLAS_CORETYPE build/bench/bench_kernels --kernel bgemm_pk --reps 15
done > $res/last-levers-bench_kernels.txt
uptime > $res/last-levers-load-end.txt
