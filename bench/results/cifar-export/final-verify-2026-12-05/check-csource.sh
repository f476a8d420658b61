#!/usr/bin/env bash
# The generated C source against the runtime's logits (scripts/check-csource)
# on the first 50 CIFAR-10 test images, for the models run.sh and alq.sh
# trained: one per kind of layer the issue lists.
set -u
R=bench/results/cifar-export/final-verify-2026-12-05
D=${D:-runs/final-verify}
DATA=${QAT_DATA:-../shared/data}/cifar-10-batches-bin
for n in vgg_small_q_bnn resnet20_bnn resnet20_twn resnet18_dst_w3a3 minw_d_w3a3 vgg_small_q_alq-pre; do
  scripts/check-csource $D/$n/best.ckpt $DATA 50 > $R/check-csource-$n.txt 2>&1
  echo "$n: exit $? $(tail -1 $R/check-csource-$n.txt)"
done > $R/check-csource.txt
