#!/usr/bin/env bash
# each quantized CIFAR-10 config trained 3 steps, exported by the previous
# commit (OLD) and this one (NEW): the files should be byte-identical where
# the lowering did not change
set -u
OLD=${OLD:?build/qat of the commit before (e5eda7f~1)}; NEW=${NEW:-build/qat}; OUT=${OUT:-runs/bytecmp}
for c in vgg_small_bnn vgg_small_q_bnn resnet20_bnn resnet20_twn resnet18_dst_w3a3 minw_a_aqe minw_b_aqe minw_c_aqe minw_d_aqe; do
  $NEW train configs/cifar10/$c.cfg --epochs 1 --max-steps 3 --threads 1 --quiet --out $OUT/$c > /dev/null 2>&1 || { echo "$c: train failed"; continue; }
  $OLD export $OUT/$c/best.ckpt -o $OUT/$c/old.qnn > $OUT/$c/old.log 2>&1; o=$?
  $NEW export $OUT/$c/best.ckpt -o $OUT/$c/new.qnn > $OUT/$c/new.log 2>&1; n=$?
  if [ $o -ne 0 ] || [ $n -ne 0 ]; then echo "$c: export old rc $o, new rc $n"; continue; fi
  if cmp -s $OUT/$c/old.qnn $OUT/$c/new.qnn; then echo "$c: identical ($(stat -c %s $OUT/$c/new.qnn) bytes)"; else echo "$c: differ"; fi
done
