# Sourced by this directory's scripts (from the repo root, after
# scripts/run build): the record's directory, a scratch directory, the
# flags runtime/ builds kern_avx512.c with, the kernel libraries, and
# HEAD's kern_avx512.c built as the table kA.
res=bench/results/cifar-export/budget-2026-12-05
w=$(mktemp -d)
F="-O2 -mavx2 -mpopcnt -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vnni -mavx512cd -Iruntime"
L="build/runtime/libqatrt_kern.a build/runtime/libqatrt_kern_avx512.a build/runtime/libqatrt_kern_avx2.a build/runtime/libqatrt_kern_u8bpk_avx512.a"
gcc $F -c -Dqatrt_kernels_avx512=kA runtime/kern_avx512.c -o $w/kA.o
# ab_variant V [SHAPE ...]: $w/V.c (a patched kern_avx512.c) built as kB
# beside kA into $w/ab-V, then three passes of 400 rounds over the shapes
# ("M N K" each) into $res/ab-V.txt. AB_NOCHECK=1 in the caller's
# environment times a variant whose C differs (one that skips work).
ab_variant() {
  local v=$1
  shift
  gcc $F -c -Dqatrt_kernels_avx512=kB $w/$v.c -o $w/$v.o
  gcc -O2 -Iruntime $res/ab.c $w/kA.o $w/$v.o $L -o $w/ab-$v
  for r in 1 2 3; do
    for s in "$@"; do taskset -c 1 $w/ab-$v $s 400; done
  done > $res/ab-$v.txt
}
