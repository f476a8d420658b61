#!/usr/bin/env bash
# bench/mpi_scaling.sh OUT CFG EPOCHS [SEED]: the same training as one
# process x 1 thread, -np 2 x 1 thread, one process x 2 threads and -np 4 x 1
# thread (oversubscribed: 4 ranks on 2 cores), back to back, with the load
# average before each in OUT/load.txt (docs/distributed.md). Raw metrics in
# OUT/np1x1t, OUT/np2x1t, OUT/np1x2t, OUT/np4x1t. Root needs
# --allow-run-as-root; more ranks than cores --oversubscribe.
set -euo pipefail
out=$1 cfg=$2 epochs=$3 seed=${4:-1}
qat=${QAT:-build/qat}
mpi=(mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
mkdir -p "$out"
run() { # NAME NP THREADS
    echo "$1: $(uptime)" >>"$out/load.txt"
    if [ "$2" = 0 ]; then
        "$qat" train "$cfg" --epochs "$epochs" --seed "$seed" --threads "$3" --quiet --out "$out/$1"
    else
        "${mpi[@]}" -np "$2" "$qat" train "$cfg" --epochs "$epochs" --seed "$seed" --threads "$3" --quiet --out "$out/$1"
    fi
}
run np1x1t 0 1
run np2x1t 2 1
run np1x2t 0 2
run np4x1t 4 1
echo "end: $(uptime)" >>"$out/load.txt"
