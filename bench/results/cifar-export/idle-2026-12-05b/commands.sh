#!/usr/bin/env bash
# idle-machine measurements after the speed2 merge (run from the repo root,
# nothing else running); raw outputs beside this file
set -x
res=bench/results/cifar-export/idle-2026-12-05b
out=/work/runs/final-b
mkdir -p $out
export QAT_DATA=/work/shared/data
uptime > $res/load-start.txt
build/qat export /work/runs/q_bnn_qat/best.ckpt -o $out/q.qnn > $res/q.export.txt 2>&1
build/qat export /work/runs/e17/r20bnn/best.ckpt -o $out/r20.qnn > $res/r20.export.txt 2>&1
env -u OPENBLAS_CORETYPE build/bench/bench_kernels > $res/kernels.txt 2>&1
env -u OPENBLAS_CORETYPE /usr/bin/python3 bench/infer_compare.py --qnn vgg_small_q_bnn=$out/q.qnn --qnn resnet20_bnn=$out/r20.qnn --peer-model vgg_small_q --data /work/shared/data/cifar-10-batches-bin --rounds 3 --out $res/infer_compare.json > $res/infer_compare.txt 2>&1
for i in 1 2 3 4 5; do env -u OPENBLAS_CORETYPE build/qat infer $out/q.qnn --data /work/shared/data/cifar-10-batches-bin --batch 1 --threads 1 --json; done > $res/q-b1t1-5runs.jsonl 2>&1
uptime > $res/load-end.txt
