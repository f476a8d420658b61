#!/usr/bin/env bash
# 64x50x500 against the bound over time, in one process (mode.c), 60 s
# pinned to one core, then six bench_kernels runs of the shape back to back.
# From the repo root after scripts/run build.
set -ex
res=bench/results/cifar-export/budget-2026-12-05
w=$(mktemp -d)
F="-O2 -mavx2 -mpopcnt -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vnni -mavx512cd -Iruntime"
L="build/runtime/libqatrt_kern.a build/runtime/libqatrt_kern_avx512.a build/runtime/libqatrt_kern_avx2.a build/runtime/libqatrt_kern_u8bpk_avx512.a"
gcc $F -c -Dqatrt_kernels_avx512=kA runtime/kern_avx512.c -o $w/kA.o
gcc -O2 -Iruntime $res/mode.c $w/kA.o $L -o $w/mode
uptime > $res/modes-load-start.txt
taskset -c 1 $w/mode 60 > $res/modes.txt
for r in 1 2 3 4 5 6; do
  env -u OPENBLAS_CORETYPE build/bench/bench_kernels --kernel bgemm_pk --reps 15 --shape 1 2>&1 | grep "bgemm_pk "
done > $res/modes-bench_kernels.txt
uptime > $res/modes-load-end.txt
