#!/usr/bin/env bash
# vgg_small_q_alq (6 bits, and pruned to 4.22 bits) and
# vgg_small_q_alq_uniform1 exported with their X64 layers' weights as ALQ's
# planes and coefficients (FLAGS bit 5) instead of 16-bit integers: trained
# briefly from a briefly trained float model as in alq-2026-12-05, then
# exported with --verify, and the pruned one's C source checked. Run from the
# repository root with ../shared beside it. Logs beside this file.
set -eu
export QAT_DATA=${QAT_DATA:-../shared/data}
Q=build/qat R=${R:-runs/alq-mb} L=bench/results/cifar-export/alq-mb-2026-12-05
mkdir -p $R
$Q train configs/cifar10/vgg_small_q_fp32.cfg --epochs 1 --max-steps 150 --threads 1 --out $R/pre > $L/pre.train.log 2>&1
$Q train configs/cifar10/vgg_small_q_alq.cfg --init-from $R/pre/best.ckpt --epochs 1 --max-steps 60 --threads 1 --out $R/alq1 > $L/alq1.train.log 2>&1
$Q train configs/cifar10/vgg_small_q_alq.cfg --init-from $R/pre/best.ckpt --epochs 36 --until 9 --max-steps 12 --threads 1 --out $R/alqp > $L/alqp.train.log 2>&1
$Q train configs/cifar10/vgg_small_q_alq_uniform1.cfg --init-from $R/pre/best.ckpt --epochs 1 --max-steps 60 --threads 1 --out $R/alqu1 > $L/alqu1.train.log 2>&1
for n in alq1 alqp alqu1; do
  $Q export $R/$n/best.ckpt -o $R/$n.qnn --verify --threads 1 > $L/$n.export.log 2>&1
done
scripts/check-csource $R/alqp/best.ckpt $QAT_DATA/cifar-10-batches-bin 20 > $L/check-csource-alqp.txt 2>&1
