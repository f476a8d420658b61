#!/usr/bin/env bash
# idle-machine measurements for the closing note (run from the repo root)
set -x
out=/work/runs/final-$(date +%H%M)
mkdir -p $out
export QAT_DATA=/work/shared/data
uptime > $out/load-start.txt
build/qat export /work/runs/q_bnn_qat/best.ckpt -o $out/q.qnn > $out/q.export.txt 2>&1
build/qat export /work/runs/e17/r20bnn/best.ckpt -o $out/r20.qnn > $out/r20.export.txt 2>&1
env -u OPENBLAS_CORETYPE build/bench/bench_kernels > $out/kernels.txt 2>&1
env -u OPENBLAS_CORETYPE /usr/bin/python3 bench/infer_compare.py --qnn vgg_small_q_bnn=$out/q.qnn --qnn resnet20_bnn=$out/r20.qnn --peer-model vgg_small_q --data /work/shared/data/cifar-10-batches-bin --rounds 3 --out $out/infer_compare.json > $out/infer_compare.txt 2>&1
bench/mpi_scaling.sh $out/mpi-scaling configs/mnist/lenet5_bnn.cfg 3 > $out/mpi.txt 2>&1
uptime > $out/load-end.txt
