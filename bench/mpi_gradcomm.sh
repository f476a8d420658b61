#!/usr/bin/env bash
# bench/mpi_gradcomm.sh OUT CFG EPOCHS NP SEED...: trains CFG on NP ranks
# (one thread each) with every grad_comm (fp32, fp16, int8, 1bit) for each
# seed, the load average before each run in OUT/load.txt; raw metrics in
# OUT/<grad_comm>-s<seed>/ (docs/distributed.md).
set -euo pipefail
out=$1 cfg=$2 epochs=$3 np=$4
shift 4
qat=${QAT:-build/qat}
mpi=(mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
mkdir -p "$out"
for seed in "$@"; do
    for gc in fp32 fp16 int8 1bit; do
        c=$out/$(basename "$cfg" .cfg)_$gc.cfg
        sed "s/^\[net\]\$/[net]\ngrad_comm = $gc/" "$cfg" >"$c"
        echo "$gc seed $seed: $(uptime)" >>"$out/load.txt"
        "${mpi[@]}" -np "$np" "$qat" train "$c" --epochs "$epochs" --seed "$seed" --threads 1 --quiet \
            --out "$out/$gc-s$seed"
    done
done
