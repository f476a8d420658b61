# Sourced by this directory's scripts (from the repo root, after
# scripts/run build): the record's directory, a scratch directory, the
# flags runtime/ builds kern_avx512.c with, the kernel libraries, and
# HEAD's kern_avx512.c built as the table kA.
res=bench/results/cifar-export/budget-2026-12-05
w=$(mktemp -d)
F="-O2 -mavx2 -mpopcnt -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vnni -mavx512cd -Iruntime"
L="build/runtime/libqatrt_kern.a build/runtime/libqatrt_kern_avx512.a build/runtime/libqatrt_kern_avx2.a build/runtime/libqatrt_kern_u8bpk_avx512.a"
gcc $F -c -Dqatrt_kernels_avx512=kA runtime/kern_avx512.c -o $w/kA.o
