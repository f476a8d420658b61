#!/usr/bin/env bash
# --verify on the merged tree (after the speed2 merge and the X64 ops), one
# thread each; checkpoints: vgg_small_q_bnn 20 epochs, resnet20_bnn 4 epochs,
# MINW-Net D W3A3 2 x 80 steps (minwd), resnet20_twn 3 epochs, resnet18_dst_w3a3 150 steps
export QAT_DATA=/work/shared/data
for m in q_bnn:/work/runs/q_bnn_qat/best.ckpt r20bnn:/work/runs/e17/r20bnn/best.ckpt minwd:/work/runs/e17/minwd/best.ckpt \
         r20twn:/work/runs/e17/r20twn/best.ckpt r18:/work/runs/e17/r18/best.ckpt; do
    n=${m%%:*}; c=${m#*:}
    build/qat export $c -o $n.qnn --verify --threads 1 > $n.log 2>&1
done
