#!/usr/bin/env bash
# tests/full_disk.sh QAT SRC_ROOT: every write qat train and qat export make,
# under a file-size limit (ulimit -f) small enough to stop it at different
# points, ends with exit 1, a message naming the file, no temporary file
# left, and whatever checkpoint is there loadable. Trains on $QAT_DATA/mnist,
# else Debian's Fashion-MNIST (tests/idx_data.sh); exit 77 without either.
set -uo pipefail
qat=$1 root=$2
. "$root/tests/idx_data.sh"
tmp=$(mktemp -d /tmp/qat-full-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export QAT_NO_REEXEC=1
cfg=$root/configs/mnist/lenet5_bnn.cfg
fail=0
# limits in KiB: 0 stops the lock file, then the checkpoints (a LeNet-5's
# holds weights and Adam state, ~5 MB) part way at 1 KiB, 1 MiB and 4 MiB
for kib in 0 1 1024 4096; do
    out=$tmp/run$kib
    mkdir -p "$out"
    # stderr through a pipe: the limit would stop a message written to a file too
    ( ulimit -f "$kib"; exec "$qat" train "$cfg" "${data_args[@]}" --epochs 2 --max-steps 3 --threads 2 --quiet --out "$out" ) \
        2>&1 >/dev/null | cat >"$tmp/err"
    rc=${PIPESTATUS[0]}
    msg=$(cat "$tmp/err")
    if [ $rc -ne 1 ] || ! grep -q "$out" "$tmp/err"; then
        echo "FAIL limit $kib KiB: exit $rc, message '$msg' (expected exit 1 naming a file in $out)"; fail=1
    fi
    left=$(find "$out" -name '*.tmp*' | wc -l)
    [ "$left" -eq 0 ] || { echo "FAIL limit $kib KiB: $left temporary files left"; fail=1; }
    for c in last best; do
        if [ -f "$out/$c.ckpt" ] && ! "$qat" eval "$out/$c.ckpt" --data "$data" --json >/dev/null 2>&1; then
            echo "FAIL limit $kib KiB: $c.ckpt is there but does not load"; fail=1
        fi
    done
    echo "limit $kib KiB: exit $rc: $msg"
done
# a full disk for the metrics and a histogram (files that are not written
# through a temporary): /dev/full takes the writes and fails them with ENOSPC
for f in metrics.jsonl hist/conv1.weight.e001.csv; do
    out=$tmp/full-$(basename "$f")
    mkdir -p "$out/hist"
    ln -s /dev/full "$out/$f"
    "$qat" train "$root/configs/mnist/lenet5_aqe_bnn.cfg" "${data_args[@]}" --epochs 1 --max-steps 3 --threads 2 --quiet \
        --out "$out" 2>&1 >/dev/null | cat >"$tmp/err"
    rc=${PIPESTATUS[0]}
    if [ $rc -ne 1 ] || ! grep -q "$(basename "$f")" "$tmp/err" || ! grep -q "No space left" "$tmp/err"; then
        echo "FAIL full $f: exit $rc, '$(cat "$tmp/err")'"; fail=1
    fi
    left=$(find "$out" -name '*.tmp*' | wc -l)
    [ "$left" -eq 0 ] || { echo "FAIL full $f: $left temporary files left"; fail=1; }
    echo "$f on a full disk: exit $rc: $(cat "$tmp/err")"
done
# export: the .qnn write
"$qat" train "$cfg" "${data_args[@]}" --epochs 1 --max-steps 3 --threads 2 --quiet --out "$tmp/ok" || { echo "FAIL: run"; exit 1; }
( ulimit -f 16; exec "$qat" export "$tmp/ok/last.ckpt" -o "$tmp/m.qnn" ) 2>&1 >/dev/null | cat >"$tmp/err"
rc=${PIPESTATUS[0]}
if [ $rc -ne 1 ] || ! grep -q "m.qnn" "$tmp/err" || [ -e "$tmp/m.qnn" ] || ls "$tmp" | grep -q 'm.qnn.tmp'; then
    echo "FAIL export under 16 KiB: exit $rc, '$(cat "$tmp/err")', files: $(ls "$tmp")"; fail=1
fi
echo "export under 16 KiB: exit $rc: $(cat "$tmp/err")"
[ $fail -eq 0 ] && echo ok || echo FAILED
exit $fail
