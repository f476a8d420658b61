#!/usr/bin/env bash
# tests/kill_loop.sh QAT SRC_ROOT [TRIES]: qat train killed at random moments
# (SIGKILL and SIGTERM, TRIES times) and resumed until it finishes must end
# with the checkpoints of an uninterrupted run, byte for byte, metrics.jsonl with one line per epoch in order, and no
# temporary file left. Trains on $QAT_DATA/mnist, else Debian's Fashion-MNIST
# (tests/idx_data.sh); exit 77 without either.
set -uo pipefail
qat=$1 root=$2 tries=${3:-24}
. "$root/tests/idx_data.sh"
tmp=$(mktemp -d /tmp/qat-kill-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cfg=$root/tests/fixtures/train/lenet5_dropout.cfg
args=("${data_args[@]}" --epochs 4 --max-steps 30 --threads 2 --quiet)
export QAT_NO_REEXEC=1
"$qat" train "$cfg" "${args[@]}" --out "$tmp/straight" || { echo "FAIL: uninterrupted run"; exit 1; }
RANDOM=7
fail=0
for t in $(seq 1 "$tries"); do
    out=$tmp/killed$t
    sig=$([ $((t % 2)) -eq 0 ] && echo KILL || echo TERM)
    kills=0
    for round in $(seq 1 40); do
        res=()
        [ -f "$out/last.ckpt" ] && res=(--resume "$out/last.ckpt")
        "$qat" train "$cfg" "${args[@]}" --out "$out" "${res[@]}" 2>"$tmp/err" &
        pid=$!
        # a kill somewhere in the first 0.05 .. 1.5 s of this attempt, at most 3 per try
        if [ $kills -lt 3 ]; then
            sleep "0.$(printf '%02d' $((5 + RANDOM % 95)))"
            [ $((RANDOM % 3)) -eq 0 ] && sleep 0.5
            kill -s "$sig" "$pid" 2>/dev/null && kills=$((kills + 1))
        fi
        wait "$pid"
        rc=$?
        if [ $rc -eq 0 ]; then break; fi
        if [ "$sig" = TERM ] && [ $rc -ne 1 ] && [ $rc -ne 143 ]; then
            echo "FAIL try $t: SIGTERM gave exit $rc: $(cat "$tmp/err")"; fail=1
        fi
    done
    if ! cmp -s "$tmp/straight/last.ckpt" "$out/last.ckpt"; then
        echo "FAIL try $t ($sig, $kills kills): final last.ckpt differs from the uninterrupted run's"; fail=1
    fi
    if [ -f "$tmp/straight/best.ckpt" ] && ! cmp -s "$tmp/straight/best.ckpt" "$out/best.ckpt"; then
        echo "FAIL try $t ($sig, $kills kills): best.ckpt differs from the uninterrupted run's"; fail=1
    fi
    left=$(find "$out" -name '*.tmp*' | wc -l)
    [ "$left" -eq 0 ] || { echo "FAIL try $t: $left temporary files left"; fail=1; }
    epochs=$(grep -o '"epoch": [0-9]*' "$out/metrics.jsonl" | awk '{print $2}' | tr '\n' ' ')
    [ "$epochs" = "1 2 3 4 " ] || { echo "FAIL try $t: metrics.jsonl epochs '$epochs', expected '1 2 3 4 '"; fail=1; }
    echo "try $t: SIG$sig x $kills, resumed to the end: same checkpoint, metrics epochs $epochs"
done
[ $fail -eq 0 ] && echo "ok: $tries tries" || echo FAILED
exit $fail
