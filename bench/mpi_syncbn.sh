#!/usr/bin/env bash
# bench/mpi_syncbn.sh OUT CFG EPOCHS MAX_STEPS SEED...: for each seed, CFG in
# one process, then on 2 and 3 ranks with sync_bn = 1 and without it (one
# thread each; MAX_STEPS 0: whole epochs); the load average before each run
# in OUT/load.txt; metrics.jsonl and summary.json in
# OUT/{np1,np2-sync,np2,np3-sync,np3}-s<seed>/ (docs/distributed.md, sync_bn).
set -euo pipefail
out=$1 cfg=$2 epochs=$3 steps=$4
shift 4
qat=${QAT:-build/qat}
mpi=(mpirun --oversubscribe --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
mkdir -p "$out"
scfg=$out/$(basename "$cfg" .cfg)_syncbn.cfg
sed 's/^\[net\]$/[net]\nsync_bn = 1/' "$cfg" >"$scfg"
args=(--epochs "$epochs" --threads 1 --quiet)
[ "$steps" -gt 0 ] && args+=(--max-steps "$steps")
run() { # NAME SEED NP CFG
    echo "$1 seed $2: $(uptime)" >>"$out/load.txt"
    local dir=$out/$1-s$2
    if [ "$3" = 1 ]; then "$qat" train "$4" "${args[@]}" --seed "$2" --out "$dir"
    else "${mpi[@]}" -np "$3" "$qat" train "$4" "${args[@]}" --seed "$2" --out "$dir"; fi
    rm -f "$dir"/*.ckpt "$dir"/.qat.lock
}
for seed in "$@"; do
    run np1 "$seed" 1 "$cfg"
    run np2-sync "$seed" 2 "$scfg"
    run np2 "$seed" 2 "$cfg"
    run np3-sync "$seed" 3 "$scfg"
    run np3 "$seed" 3 "$cfg"
done
