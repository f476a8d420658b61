#!/usr/bin/env bash
# bench/mpi_scaling.sh OUT CFG EPOCHS [SEED]: the same training as -np 2 x 1
# thread and as one process x 2 threads, back to back, the load average
# before each (docs/distributed.md). Raw metrics land in OUT/np2x1t and
# OUT/np1x2t. Root needs --allow-run-as-root; 2 ranks on 2 cores --oversubscribe.
set -euo pipefail
out=$1 cfg=$2 epochs=$3 seed=${4:-1}
qat=${QAT:-build/qat}
mpi=(mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
mkdir -p "$out"
{ echo "np2x1t: $(uptime)"; } >>"$out/load.txt"
"${mpi[@]}" -np 2 "$qat" train "$cfg" --epochs "$epochs" --seed "$seed" --threads 1 --quiet --out "$out/np2x1t"
{ echo "np1x2t: $(uptime)"; } >>"$out/load.txt"
"$qat" train "$cfg" --epochs "$epochs" --seed "$seed" --threads 2 --quiet --out "$out/np1x2t"
{ echo "end: $(uptime)"; } >>"$out/load.txt"
