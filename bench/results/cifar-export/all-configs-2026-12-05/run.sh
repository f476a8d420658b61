#!/usr/bin/env bash
# brief training + export --verify for the CIFAR configs not verified before
export QAT_DATA=/work/shared/data
Q=/work/main/build/qat
for cfg in "$@"; do
  n=$(basename $(dirname $cfg))-$(basename $cfg .cfg)
  $Q train $cfg --epochs 1 --max-steps 30 --threads 1 --quiet --out $n > $n.train.log 2>&1 || { echo "$n: train failed" >> status.txt; continue; }
  $Q export $n/best.ckpt -o $n.qnn --verify --threads 1 > $n.export.log 2>&1 || { echo "$n: export failed: $(tail -1 $n.export.log)" >> status.txt; continue; }
  echo "$n: $(grep 'verify on' $n.export.log)" >> status.txt
done
