#!/usr/bin/env bash
# tests/report_browser.sh QAT SRC_ROOT [SCREENSHOT.png]: qat report checked in
# a real browser. Two short real runs (MINW-Net's AQE BNN, whose config records
# histograms, and the STE BNN), an export with --verify, then a report of one
# run (written by qat train --report) and of both with --model. Headless
# Chromium lays each page out; tests/report_check.js, appended to a copy,
# measures every chart (numbered ticks on both axes, legend entries, text
# boxes that overlap or leave the chart) and the DOM it dumps is checked
# here. A screenshot of the single-run page is taken (and copied to
# SCREENSHOT.png when given: how docs/report.png is made).
# Data: $QAT_DATA/mnist, else Debian's Fashion-MNIST (tests/idx_data.sh);
# exit 77 (skip) without chromium or data.
set -uo pipefail
qat=$1 root=$2 shot=${3:-}
chrome=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chrome" ] || { echo "skip: chromium is not installed (apt-get install chromium)"; exit 77; }
. "$root/tests/idx_data.sh"
tmp=$(mktemp -d /tmp/qat-report-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export QAT_NO_REEXEC=1
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$qat" train "$root/configs/mnist/lenet5_aqe_bnn.cfg" "${data_args[@]}" --epochs 5 --max-steps 20 --threads 2 --quiet \
    --report --out "$tmp/aqe" || { echo "FAIL: training aqe"; exit 1; }
"$qat" train "$root/configs/mnist/lenet5_bnn.cfg" "${data_args[@]}" --epochs 3 --max-steps 20 --threads 2 --quiet \
    --out "$tmp/ste" || { echo "FAIL: training ste"; exit 1; }
"$qat" export "$tmp/ste/last.ckpt" -o "$tmp/ste.qnn" --verify --data "$data" --threads 2 >"$tmp/export.txt" ||
    { cat "$tmp/export.txt"; echo "FAIL: export --verify"; exit 1; }
[ -f "$tmp/ste.qnn.verify.json" ] || bad "export --verify wrote no $tmp/ste.qnn.verify.json"
"$qat" report "$tmp/aqe" "$tmp/ste" --model "$tmp/ste.qnn" -o "$tmp/both.html" >/dev/null || { echo "FAIL: qat report"; exit 1; }

# self-contained: no script, no external reference
for page in "$tmp/aqe/report.html" "$tmp/both.html"; do
    grep -qi '<script' "$page" && bad "$page holds a script"
    grep -Eqi '(src|href)="|url\(|@import' "$page" && bad "$page refers to another file"
done

# chromium prints the DOM after the checker ran; its own messages go to a file
render() { # PAGE NAME
    { sed 's/<details>/<details open>/g; s#</body></html>##' "$1"; echo '<script>'; cat "$root/tests/report_check.js"
      echo '</script></body></html>'; } >"$tmp/$2.check.html"
    timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/chrome" --window-size=1480,1000 \
        --dump-dom "file://$tmp/$2.check.html" >"$tmp/$2.dom" 2>>"$tmp/chrome.log" ||
        { tail -5 "$tmp/chrome.log"; bad "chromium could not render $2"; }
    sed -n '/<pre id="qat-check">/,/<\/pre>/p' "$tmp/$2.dom" >"$tmp/$2.check"
    [ -s "$tmp/$2.check" ] || bad "$2: the checker wrote nothing (did the page load?)"
}
# expect NAME CHART [LEGEND_MIN]: the chart was laid out with numbers on both
# axes, at least LEGEND_MIN legend entries, no text overlapping or outside
expect() {
    local line
    line=$(grep -m1 "^chart $2 " "$tmp/$1.check")
    [ -n "$line" ] || { bad "$1: no chart '$2'"; return; }
    read -r _ _ _ w _ nx _ ny _ nl _ ov _ os _ sc <<<"$line"
    [ "$w" -gt 100 ] || bad "$1: $2 is $w px wide"
    [ "$nx" -ge 2 ] && [ "$ny" -ge 2 ] || bad "$1: $2 has $nx x and $ny y numbered ticks"
    [ "$nl" -ge "${3:-1}" ] || bad "$1: $2 has $nl legend entries, expected ${3:-1}"
    [ "$ov" -eq 0 ] && [ "$os" -eq 0 ] || bad "$1: $2: $ov overlapping texts, $os outside the chart"
}

render "$tmp/aqe/report.html" one
for c in loss:3 accuracy:3 lr:1 images_per_s:1 sparsity:4 near_level:4; do expect one "${c%%:*}" "${c#*:}"; done
# the histograms of epochs 1 and 5, with the quantizer's levels in the legend
for c in hist-conv1-weight hist-conv2-weight_train hist-fc1-act hist-fc2-weight; do expect one "$c" 3; done
grep -q 'aqe levels' "$tmp/one.dom" || bad "one: no quantizer levels marked"
grep -q 'class="layers"' "$tmp/one.dom" || bad "one: no layer table"
grep -q 'XNOR' "$tmp/one.dom" || bad "one: the layer table lacks MINW-Net's operation"
grep -q 'lenet5_aqe_bnn.cfg --' "$tmp/one.dom" || bad "one: no command"
grep -q 'aqe_alpha' "$tmp/one.dom" || bad "one: no config text"
while read -r l; do bad "one: $l"; done < <(grep '^chart ' "$tmp/one.check" | grep -v ' overlaps 0 outside 0 ')

render "$tmp/both.html" two
for c in cmp-test_acc cmp-val_acc cmp-train_loss cmp-test_loss cmp-lr cmp-images_per_s; do expect two "$c" 2; done
grep -q 'flip_ratio' "$tmp/two.check" || bad "two: the STE run's flip ratio chart is missing"
grep -q 'class="final"' "$tmp/two.dom" || bad "two: no table of final numbers"
grep -Eq 'parity: <b>[0-9]+</b> predictions differ' "$tmp/two.dom" || bad "two: no parity count of the .qnn"
grep -Eq '<b>[0-9]+ bytes</b>' "$tmp/two.dom" || bad "two: no size of the .qnn"
[ "$(grep -c '^chart ' "$tmp/two.check")" -gt 20 ] || bad "two: expected both runs' charts"
while read -r l; do bad "two: $l"; done < <(grep '^chart ' "$tmp/two.check" | grep -v ' overlaps 0 outside 0 ')

# the screenshot: a real picture of the single-run page
timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/chrome" --hide-scrollbars \
    --window-size=1480,2500 --screenshot="$tmp/report.png" "file://$tmp/aqe/report.html" >/dev/null 2>>"$tmp/chrome.log"
size=$(stat -c %s "$tmp/report.png" 2>/dev/null || echo 0)
[ "$size" -gt 50000 ] || bad "the screenshot is $size bytes"
[ -n "$shot" ] && [ "$size" -gt 0 ] && cp "$tmp/report.png" "$shot"
cat "$tmp/one.check" "$tmp/two.check" | grep -c '^chart ' | sed 's/^/charts measured: /'
[ $fail -eq 0 ] && echo "report in chromium: ok ($(stat -c %s "$tmp/both.html") bytes for two runs)"
exit $fail
