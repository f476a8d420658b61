#!/usr/bin/env bash
# Issue 17's parity item on the tree as it lands: every quantized CIFAR
# config trained briefly (STEPS, 30 unless given; the ResNets longer, to
# decide well above chance), exported with --verify on the 10,000 CIFAR-10
# test images, one thread each, in two queues. The four CIFAR-100 configs
# run on the stand-in of ../c100-standin-2026-12-05 (CIFAR-10's images and
# classes in CIFAR-100's format): their 100-way models, on CIFAR-10's test
# set. From the repository root after scripts/run build:
#   bash bench/results/cifar-export/final-verify-2026-12-05/run.sh
set -u
R=bench/results/cifar-export/final-verify-2026-12-05
D=${D:-runs/final-verify}
DATA=${QAT_DATA:-../shared/data}
mkdir -p $D/c100
python3 bench/results/cifar-export/c100-standin-2026-12-05/make_standin.py $DATA/cifar-10-batches-bin $D/c100
: > $R/status.txt
one() { # name config steps data
  local n=$1 cfg=$2 steps=$3 data=$4 t0=$SECONDS
  QAT_DATA=$data build/qat train $cfg --epochs 1 --max-steps $steps --threads 1 --quiet --out $D/$n > $R/$n.train.log 2>&1 ||
    { echo "$n: train failed" >> $R/status.txt; return; }
  QAT_DATA=$data build/qat export $D/$n/best.ckpt -o $D/$n.qnn --verify --threads 1 > $R/$n.export.log 2>&1 ||
    { echo "$n: export failed: $(tail -1 $R/$n.export.log)" >> $R/status.txt; return; }
  echo "$n ($steps steps, $((SECONDS - t0)) s): $(grep 'verify on' $R/$n.export.log)" >> $R/status.txt
}
q1() {
  for c in vgg_small_q_bnn vgg_small_bnn vgg_small_q_alq vgg_small_q_alq_uniform1 minw_a_aqe minw_b_aqe; do
    one $c configs/cifar10/$c.cfg 30 $DATA
  done
  for m in a b; do one c100-minw_${m}_aqe configs/cifar100/minw_${m}_aqe.cfg 30 $D/c100; done
}
q2() {
  one resnet20_bnn configs/cifar10/resnet20_bnn.cfg 100 $DATA
  one resnet20_twn configs/cifar10/resnet20_twn.cfg 100 $DATA
  one resnet18_dst_w3a3 configs/cifar10/resnet18_dst_w3a3.cfg 100 $DATA
  one minw_d_w3a3 bench/results/cifar-export/minw_d_w3a3.cfg 60 $DATA
  for c in minw_c_aqe minw_d_aqe; do one $c configs/cifar10/$c.cfg 30 $DATA; done
  for m in c d; do one c100-minw_${m}_aqe configs/cifar100/minw_${m}_aqe.cfg 30 $D/c100; done
}
q1 & q2 & wait
