#!/usr/bin/env bash
# What the epilogue's backtransform C = kbits - 2s costs (after CI's run,
# the machine quiet): 64x48x500 (no tail), HEAD against five epilogues in
# one process (ab.c), two sets of 400 rounds each:
#   no-backtransform   stores s (0 operations; wrong C)
#   epilogue-sub-only  stores kbits - s (1 operation; wrong C)
#   epilogue-double-only stores s + s (1 operation, no kbits register; wrong C)
#   vpdpwssd-epilogue  kbits - 2s as one VPDPWSSD (right C)
#   kbits-from-memory  kbits broadcast from memory, not from a register (right C)
# From the repo root after scripts/run build.
set -ex
. bench/results/cifar-export/budget-2026-12-05/env.sh
vs="no-backtransform epilogue-sub-only epilogue-double-only vpdpwssd-epilogue kbits-from-memory"
for v in $vs; do
  patch -s -o $w/$v.c runtime/kern_avx512.c < $res/$v.patch
  gcc $F -c -Dqatrt_kernels_avx512=kB $w/$v.c -o $w/$v.o
  gcc -O2 -Iruntime $res/ab.c $w/kA.o $w/$v.o $L -o $w/ab-$v
done
for r in 1 2; do
  for v in $vs; do echo "$v: $(AB_NOCHECK=1 taskset -c 1 $w/ab-$v 64 48 500 400 | grep -v DIFFER)"; done
done > $res/ab-epilogue.txt
