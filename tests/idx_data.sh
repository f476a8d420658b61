# tests/idx_data.sh, sourced by the script tests that train: the
# MNIST-family set to train on, $QAT_DATA/mnist, else Debian's Fashion-MNIST
# (package dataset-fashion-mnist: the same IDX layout). Sets data (the
# folder) and data_args (what qat train takes); exits 77 (skip) without
# either.
if [ -n "${QAT_DATA:-}" ] && [ -d "$QAT_DATA/mnist" ]; then
    data=$QAT_DATA/mnist
    data_args=(--data "$data")
elif [ -d /usr/share/datasets/fashion-mnist ]; then
    data=/usr/share/datasets/fashion-mnist
    data_args=(--dataset fashion-mnist --data "$data")
    echo "note: no \$QAT_DATA/mnist: training on Fashion-MNIST ($data)"
else
    echo "skip: neither \$QAT_DATA/mnist nor /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)"
    exit 77
fi
