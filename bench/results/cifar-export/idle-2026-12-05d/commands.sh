#!/usr/bin/env bash
# idle-machine measurements after the batch-1 stream (pk_row), the lazy
# half-word test, the narrow tail's plain stores and bench_kernels' bounds
# timed in the kernels' rounds (run from the repo root, nothing else of ours
# running). The models are trained 3 steps: speed does not depend on the
# weights (the verified architectures and file sizes). Raw outputs beside this.
set -x
res=${RES:-bench/results/cifar-export/idle-2026-12-05d} # RES, OUT: another record (idle-2026-12-06 reruns this)
out=${OUT:-runs/idle-d}
mkdir -p $out
export QAT_DATA=${QAT_DATA:-../shared/data}
uptime > $res/load-start.txt
for c in vgg_small_q_bnn resnet20_bnn; do
  build/qat train configs/cifar10/$c.cfg --epochs 1 --max-steps 3 --threads 1 --quiet --out $out/$c > /dev/null 2>&1
  build/qat export $out/$c/best.ckpt -o $out/$c.qnn > $res/$c.export.txt 2>&1
done
for r in 1 2 3; do
  env -u OPENBLAS_CORETYPE build/bench/bench_kernels --kernel bgemm_pk --reps 15 --json $res/bgemm_pk-$r.json > $res/bgemm_pk-$r.txt 2>&1
done
env -u OPENBLAS_CORETYPE /usr/bin/python3 bench/infer_compare.py --qnn vgg_small_q_bnn=$out/vgg_small_q_bnn.qnn --qnn resnet20_bnn=$out/resnet20_bnn.qnn --peer-model vgg_small_q --data $QAT_DATA/cifar-10-batches-bin --rounds 3 --out $res/infer_compare.json > $res/infer_compare.txt 2>&1
uptime > $res/load-end.txt
