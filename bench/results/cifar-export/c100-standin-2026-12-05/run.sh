#!/usr/bin/env bash
# The CIFAR-100 configs (MINW-Net A-D, AQE) trained briefly on a stand-in
# made from CIFAR-10 (make_standin.py: CIFAR-10's images and classes in
# CIFAR-100's format, fine labels 0..9 of 100), then exported with --verify
# on its 10,000 test images. Run from the repository root; logs beside this.
set -u
R=bench/results/cifar-export/c100-standin-2026-12-05
D=${D:-runs/c100-standin}
mkdir -p $D/data
python3 $R/make_standin.py ${QAT_DATA:-../shared/data}/cifar-10-batches-bin $D/data
export QAT_DATA=$D/data
: > $R/status.txt
for m in a b c d; do
  n=minw_${m}_aqe
  build/qat train configs/cifar100/$n.cfg --epochs 1 --max-steps 30 --threads 1 --quiet --out $D/$n > $R/$n.train.log 2>&1 || { echo "$n: train failed" >> $R/status.txt; continue; }
  build/qat export $D/$n/best.ckpt -o $D/$n.qnn --verify --threads 1 > $R/$n.export.log 2>&1 || { echo "$n: export failed: $(tail -1 $R/$n.export.log)" >> $R/status.txt; continue; }
  echo "$n: $(grep 'verify on' $R/$n.export.log)" >> $R/status.txt
done
