#!/usr/bin/env bash
# vgg_small_q_alq and vgg_small_q_alq_uniform1 (ALQ multi-bit weights, float
# activations) trained briefly from a briefly trained float model, then
# exported with --verify; resnet20_twn retrained and verified again (its
# X64 layers' fixed point changed: sized by the rows' sums of |weights|).
# Run from the repository root with ../shared beside it. Logs: R/*.log.
set -eu
export QAT_DATA=${QAT_DATA:-../shared/data}
Q=build/qat R=${R:-runs/alq-2026-12-05}
mkdir -p $R
$Q train configs/cifar10/vgg_small_q_fp32.cfg --epochs 1 --max-steps 150 --threads 1 --out $R/pre > $R/pre.log 2>&1
# one basis epoch of the schedule (6 bits, no pruning yet)
$Q train configs/cifar10/vgg_small_q_alq.cfg --init-from $R/pre/best.ckpt --epochs 1 --max-steps 60 --threads 1 --out $R/alq1 > $R/alq1.log 2>&1
# the first round of the 36-epoch schedule (5 basis, 3 coordinate, 1 pruning epoch: 4.22 bits), 12 steps an epoch
$Q train configs/cifar10/vgg_small_q_alq.cfg --init-from $R/pre/best.ckpt --epochs 36 --until 9 --max-steps 12 --threads 1 --out $R/alqp > $R/alqp.log 2>&1
$Q train configs/cifar10/vgg_small_q_alq_uniform1.cfg --init-from $R/pre/best.ckpt --epochs 1 --max-steps 60 --threads 1 --out $R/alqu1 > $R/alqu1.log 2>&1
$Q train configs/cifar10/resnet20_twn.cfg --epochs 1 --max-steps 250 --threads 1 --out $R/r20twn > $R/r20twn.log 2>&1
for n in alq1 alqp alqu1 r20twn; do
  $Q export $R/$n/best.ckpt -o $R/$n.qnn --verify --threads 1 > $R/$n.export.log 2>&1
done
