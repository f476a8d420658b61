#!/usr/bin/env bash
# A 2-column tail counted in scalar registers inside the 6x4 pair tiles,
# against HEAD in one process (ab.c; both variants give the right C), after
# ops.c showed 4 scalar words beside 8 triples costing nothing measurable
# on the quiet machine:
#   scalar-tail-6x4   the count in C in pk_tile (GCC 12 spills it)
#   scalar-tail-asm   the 6x4 loop written as asm: 24 vector counts and 12
#                     scalar words a step, the scalar counts 16 bits each,
#                     four to a register, nothing on the stack
# From the repo root after scripts/run build.
set -ex
. bench/results/cifar-export/budget-2026-12-05/env.sh
for v in scalar-tail-6x4 scalar-tail-asm; do
  patch -s -o $w/$v.c runtime/kern_avx512.c < $res/$v.patch
  ab_variant $v "64 50 500" "64 48 500" "24 34 800"
done
gcc $F -S $w/scalar-tail-6x4.c -o $w/st.s
awk '/^pk_tile6x4t2:/,/\.size\tpk_tile6x4t2/' $w/st.s | grep -c '(%rsp)' > $res/scalar-tail-stack-refs.txt
