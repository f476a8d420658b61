#!/usr/bin/env bash
# A 2-column tail counted in scalar registers inside the 6x4 pair tiles
# (scalar-tail-6x4.patch: right C), against HEAD in one process (ab.c),
# after ops.c showed 4 scalar words beside 8 triples costing nothing
# measurable on the quiet machine. From the repo root after scripts/run build.
set -ex
res=bench/results/cifar-export/budget-2026-12-05
w=$(mktemp -d)
F="-O2 -mavx2 -mpopcnt -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vnni -mavx512cd -Iruntime"
L="build/runtime/libqatrt_kern.a build/runtime/libqatrt_kern_avx512.a build/runtime/libqatrt_kern_avx2.a build/runtime/libqatrt_kern_u8bpk_avx512.a"
gcc $F -c -Dqatrt_kernels_avx512=kA runtime/kern_avx512.c -o $w/kA.o
patch -s -o $w/st.c runtime/kern_avx512.c < $res/scalar-tail-6x4.patch
gcc $F -c -Dqatrt_kernels_avx512=kB $w/st.c -o $w/st.o
gcc -O2 -Iruntime $res/ab.c $w/kA.o $w/st.o $L -o $w/ab
for r in 1 2 3; do
  for s in "64 50 500" "64 48 500" "24 34 800"; do taskset -c 1 $w/ab $s 400; done
done > $res/ab-scalar-tail.txt
gcc $F -S $w/st.c -o $w/st.s
awk '/^pk_tile6x4t2:/,/\.size\tpk_tile6x4t2/' $w/st.s | grep -c '(%rsp)' > $res/scalar-tail-stack-refs.txt
