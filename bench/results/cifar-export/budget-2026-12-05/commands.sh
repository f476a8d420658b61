#!/usr/bin/env bash
# The 64x50x500 budget (2026-12-05, late): what bgemm_pk's instructions cost
# on this core (ops.c), the kernel at HEAD against the registers-only bound
# on the shape and its parts (probe.c), and four variants of
# runtime/kern_avx512.c against HEAD in one process (ab.c: both kernels,
# interleaved rounds, pinned to one core; "DIFFER" = the variant's C is not
# HEAD's, expected for the two that skip work). From the repo root after
# scripts/run build, on a quiet machine.
set -ex
. bench/results/cifar-export/budget-2026-12-05/env.sh
uptime > $res/load-start.txt
lscpu > $res/lscpu.txt
gcc -O2 -mavx512f -mavx512vpopcntdq -mavx512vnni -mpopcnt $res/ops.c -o $w/ops
taskset -c 1 $w/ops > $res/ops.txt
gcc -O2 -Iruntime -Ibench $res/probe.c $w/kA.o $L -o $w/probe
for r in 1 2 3; do
  taskset -c 1 $w/probe 300 64 50 500 64 48 500 64 2 500 8 2 500 64 48 512 64 64 500 128 1024 1024
done > $res/probe.txt
for v in fused-tail fused-tail-uncounted no-backtransform vpdpwssd-epilogue; do
  patch -s -o $w/$v.c runtime/kern_avx512.c < $res/$v.patch
  AB_NOCHECK=1 ab_variant $v "64 50 500" "64 48 500" "128 1024 1024"
done
uptime > $res/load-end.txt
