#!/usr/bin/env python3
"""End-to-end inference of exported models against the PyTorch peer, same run.

Trains lenet5_bnn and mlp_bnn briefly (speed does not depend on accuracy;
pass --ckpt-dir to reuse checkpoints), exports them to .qnn (mlp_bnn's float
last layer quantized to int16 after training), then measures `qat infer
--data mnist --json` at batch 1 and 128 with 1 and 2 threads, runs
../shared/bench/torch_peer.py (inference, lenet5: FP32 and int8 oneDNN) with
the same thread counts, measures qat again, and reports images/s and the
ratios qat / PyTorch FP32 at batch 1 and qat / PyTorch int8 at batch 128.

  python3 bench/infer_compare.py [--build build] [--out bench/results/infer.json]

CIFAR-10: give exported models and the peer's model to set them against,
  python3 bench/infer_compare.py --qnn vgg_small_q_bnn=q.qnn --qnn resnet20_bnn=r.qnn \
      --peer-model vgg_small_q --data ../shared/data/cifar-10-batches-bin
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "..", "shared", "bench", "torch_peer.py")
MODELS = [("lenet5_bnn", []), ("mlp_bnn", ["--float-layers", "int16"])]


def qat(args, *argv, env=None):
    return subprocess.run([os.path.join(ROOT, args.build, "qat"), *argv], cwd=ROOT, check=True,
                          capture_output=True, text=True, env=env).stdout


def infer(args, qnn, batch, threads):
    out = qat(args, "infer", qnn, "--data", args.data, "--batch", str(batch), "--threads", str(threads), "--json")
    return json.loads(out)


def peer(args, threads, path):
    subprocess.run(["/usr/bin/python3", PEER, "--threads", str(threads), "--only", "inference", "--out", path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = json.load(open(path))["inference"]
    pm = args.peer_model
    out = {"fp32": {b: d["%s/fp32/%s" % (pm, b)]["images_per_s"] for b in ("b1", "b128")}}
    i8 = d.get("%s/int8_onednn" % pm, {})
    if not i8.get("ran"):
        raise SystemExit("torch_peer.py did not run int8 (onednn): %s" % i8.get("reason"))
    out["int8_onednn"] = {b: i8[b]["images_per_s"] for b in ("b1", "b128")}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default=os.path.join(os.environ.get("QAT_DATA", "../shared/data"), "mnist"))
    ap.add_argument("--ckpt-dir", default="/tmp/qat-infer-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--qnn", action="append", default=[], help="NAME=PATH: an exported model (no training)")
    ap.add_argument("--peer-model", default="lenet5", help="torch_peer.py's model: lenet5 | vgg_small_q")
    args = ap.parse_args()
    os.makedirs(args.ckpt_dir, exist_ok=True)
    qnns = dict(q.split("=", 1) for q in args.qnn)
    for name, extra in ([] if qnns else MODELS):
        d = os.path.join(args.ckpt_dir, name)
        ck = os.path.join(d, "last.ckpt")
        if not os.path.exists(ck):
            qat(args, "train", "configs/mnist/%s.cfg" % name, "--data", args.data, "--epochs", "1", "--out", d,
                "--quiet")
        qnns[name] = os.path.join(d, name + ".qnn")
        qat(args, "export", ck, "-o", qnns[name], "--data", args.data, *extra)
    cases = [(m, b, t) for m in qnns for b in (1, 128) for t in (1, 2)]
    runs = {c: [] for c in cases}

    def measure():
        for c in cases:
            runs[c].append(infer(args, qnns[c[0]], c[1], c[2]))

    for _ in range(args.rounds):
        measure()
    peers = {t: peer(args, t, "/tmp/qat-infer-peer-%dt.json" % t) for t in (1, 2)}
    for _ in range(args.rounds):
        measure()
    result = {"peer": peers, "qat": {}}
    print("%-16s %5s %7s %12s %12s %12s %14s %14s" % ("model", "batch", "threads", "qat img/s", "torch fp32",
                                                     "torch int8", "x fp32", "x int8"))
    for (m, b, t), rs in runs.items():
        ips = statistics.median(r["images_per_s"] for r in rs)
        fp, i8 = peers[t]["fp32"]["b%d" % b], peers[t]["int8_onednn"]["b%d" % b]
        result["qat"]["%s/b%d/%dt" % (m, b, t)] = {"images_per_s": ips, "accuracy": rs[0]["accuracy"],
                                                    "x_torch_fp32": ips / fp, "x_torch_int8": ips / i8,
                                                    "isa": rs[0]["isa"], "runs": [r["images_per_s"] for r in rs]}
        print("%-16s %5d %7d %12.0f %12.0f %12.0f %13.1fx %13.1fx" % (m, b, t, ips, fp, i8, ips / fp, ips / i8))
    for name, p in qnns.items():
        result.setdefault("files", {})[name] = os.path.getsize(p)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
