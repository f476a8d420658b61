#!/usr/bin/env bash
# Float layers as X64 ops (kernel 11), 2026-12-05: the exports and --verify
# runs of this folder (run from a folder beside the checkpoints; QAT_DATA set).
# r20twn: resnet20_twn, 3 epochs (train: qat train configs/cifar10/resnet20_twn.cfg --epochs 3 --threads 1 --out r20twn)
# r18: resnet18_dst_w3a3, 150 steps (train: qat train configs/cifar10/resnet18_dst_w3a3.cfg --epochs 1 --max-steps 150 --threads 1 --out r18)
export QAT_DATA=/work/shared/data
# TWN: every layer on float activations as X64 (commit 3a9de0d)
qat export ../r20twn/best.ckpt -o r20twn.qnn --verify --threads 1 > r20twn.log
# DST, X64 first layer, the float model's first conv still a float32 GEMM (commit 3a9de0d): r18.log (44 differ)
qat export ../r18/best.ckpt -o r18.qnn --verify --threads 1 > r18.log
# DST, the float model's first conv summed exactly (layers/exactconv.c, commit 042537f): r18b.log (0 differ)
qat export ../r18/best.ckpt -o r18b.qnn --verify --threads 1 > r18b.log
