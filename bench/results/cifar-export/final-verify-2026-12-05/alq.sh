#!/usr/bin/env bash
# The two ALQ configs as their recipe trains them (from a float model, as
# ../alq-mb-2026-12-05 does): run.sh's 30 steps from scratch leave
# vgg_small_q_alq_uniform1 near chance (11.67 %), which does not decide.
# 150 float steps, then 60 ALQ steps each, exported with --verify.
set -u
R=bench/results/cifar-export/final-verify-2026-12-05
D=${D:-runs/final-verify}
export QAT_DATA=${QAT_DATA:-../shared/data}
: > $R/status-alq.txt
build/qat train configs/cifar10/vgg_small_q_fp32.cfg --epochs 1 --max-steps 150 --threads 1 --quiet --out $D/pre > $R/pre.train.log 2>&1
for c in vgg_small_q_alq vgg_small_q_alq_uniform1; do
  t0=$SECONDS
  build/qat train configs/cifar10/$c.cfg --init-from $D/pre/best.ckpt --epochs 1 --max-steps 60 --threads 1 --quiet --out $D/$c-pre > $R/$c-pre.train.log 2>&1 ||
    { echo "$c: train failed" >> $R/status-alq.txt; continue; }
  build/qat export $D/$c-pre/best.ckpt -o $D/$c-pre.qnn --verify --threads 1 > $R/$c-pre.export.log 2>&1 ||
    { echo "$c: export failed: $(tail -1 $R/$c-pre.export.log)" >> $R/status-alq.txt; continue; }
  echo "$c (from 150 float steps, 60 ALQ steps, $((SECONDS - t0)) s): $(grep 'verify on' $R/$c-pre.export.log)" >> $R/status-alq.txt
done
