#!/usr/bin/env bash
# idle-machine measurements after the bgemm-tail merge (run from the repo
# root, nothing else running); the models are trained 3 steps (speed does
# not depend on the weights: the same architectures and file sizes as the
# verified ones, 118,288 and 47,240 bytes); raw outputs beside this file
set -x
res=bench/results/cifar-export/idle-2026-12-05c
out=${OUT:-runs/idle-c}
mkdir -p $out
export QAT_DATA=${QAT_DATA:-../shared/data}
uptime > $res/load-start.txt
for c in vgg_small_q_bnn resnet20_bnn; do
  build/qat train configs/cifar10/$c.cfg --epochs 1 --max-steps 3 --threads 1 --quiet --out $out/$c > /dev/null 2>&1
  build/qat export $out/$c/best.ckpt -o $out/$c.qnn > $res/$c.export.txt 2>&1
done
env -u OPENBLAS_CORETYPE /usr/bin/python3 bench/infer_compare.py --qnn vgg_small_q_bnn=$out/vgg_small_q_bnn.qnn --qnn resnet20_bnn=$out/resnet20_bnn.qnn --peer-model vgg_small_q --data $QAT_DATA/cifar-10-batches-bin --rounds 3 --out $res/infer_compare.json > $res/infer_compare.txt 2>&1
env -u OPENBLAS_CORETYPE build/bench/bench_kernels --kernel bgemm_pk --reps 15 --json $res/bgemm_pk.json > $res/bgemm_pk.txt 2>&1
uptime > $res/load-end.txt
