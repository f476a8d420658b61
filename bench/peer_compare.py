#!/usr/bin/env python3
"""Training throughput of qat against the PyTorch peer, measured in the same run.

Runs `qat bench train` for each config, then ../shared/bench/torch_peer.py
(training only, the same models, same batch and threads), then qat again,
and reports qat / PyTorch ratios for the median and the best step. qat's
figure is the median over all its runs (before and after the peer), so a
noisy neighbour hits both sides.

  python3 bench/peer_compare.py [--set mnist|cifar] [--threads 2] [--batch 128] [--out FILE]

vgg_small steps take seconds: use --steps 5 --rounds 1 with --set cifar.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "..", "shared", "bench", "torch_peer.py")
SETS = {  # (qat config, peer figure)
    "mnist": [
        ("configs/mnist/lenet5_fp32.cfg", "lenet5/fp32"),
        ("configs/mnist/mlp_fp32.cfg", "mlp/fp32"),
    ],
    # issue 14's targets: vgg_small fp32 >= 1.0x, bnn >= 1.5x; vgg_small_q
    # fp32 and bnn >= 1.3x; LeNet-5 fp32 >= 1.5x
    "cifar": [
        ("configs/cifar10/vgg_small_q_fp32.cfg", "vgg_small_q/fp32"),
        ("configs/cifar10/vgg_small_q_bnn.cfg", "vgg_small_q/bnn"),
        ("configs/cifar10/vgg_small_fp32.cfg", "vgg_small/fp32"),
        ("configs/cifar10/vgg_small_bnn.cfg", "vgg_small/bnn"),
        ("configs/mnist/lenet5_fp32.cfg", "lenet5/fp32"),
    ],
}


def qat_bench(cfg, args):
    out = subprocess.run([os.path.join(ROOT, args.build, "qat"), "bench", "train", cfg, "--batch", str(args.batch),
                          "--threads", str(args.threads), "--steps", str(args.steps), "--json"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3, help="qat runs before and after the peer, each")
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", default="mnist", choices=sorted(SETS))
    ap.add_argument("--configs", default=None, help="comma list of config:peer_figure pairs (instead of --set)")
    ap.add_argument("--peer-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for the peer, e.g. OPENBLAS_CORETYPE=SkylakeX (its OpenBLAS also falls back "
                         "to SSE3 kernels on CPUs it does not know)")
    args = ap.parse_args()
    cases = SETS[args.set]
    if args.configs:
        cases = [tuple(c.split(":")) for c in args.configs.split(",")]
    models = sorted({fig.split("/")[0] for _, fig in cases})

    runs = {cfg: [] for cfg, _ in cases}
    for _ in range(args.rounds):
        for cfg, _fig in cases:
            runs[cfg].append(qat_bench(cfg, args))
    peer_out = args.out + ".peer.json" if args.out else "/tmp/qat-peer-%d.json" % os.getpid()
    t0 = time.time()
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in args.peer_env)
    subprocess.run(["/usr/bin/python3", PEER, str(args.threads), "--batch", str(args.batch), "--only", "training",
                    "--models", ",".join(models), "--out", peer_out], check=True, stdout=subprocess.DEVNULL, env=env)
    peer_s = time.time() - t0
    for _ in range(args.rounds):
        for cfg, _fig in cases:
            runs[cfg].append(qat_bench(cfg, args))
    peer = json.load(open(peer_out))["training"]

    result = {"threads": args.threads, "batch": args.batch, "peer_seconds": round(peer_s, 1),
              "peer_env": args.peer_env, "peer_openblas_core": json.load(open(peer_out))["backend"].get("openblas_get_corename"),
              "cases": []}
    print("| model | qat images/s (median, best) | PyTorch images/s (median, best) | ratio median | ratio best |")
    print("|---|---:|---:|---:|---:|")
    for cfg, fig in cases:
        med = statistics.median(r["images_per_s"] for r in runs[cfg])
        best = max(r["images_per_s_best"] for r in runs[cfg])
        p = peer[fig]
        row = {"config": cfg, "peer_figure": fig, "qat_images_per_s": round(med, 1),
               "qat_images_per_s_best": round(best, 1), "qat_runs": [r["images_per_s"] for r in runs[cfg]],
               "peer_images_per_s": round(p["images_per_s"], 1), "peer_images_per_s_best": round(p["images_per_s_best"], 1),
               "ratio": round(med / p["images_per_s"], 3), "ratio_best": round(best / p["images_per_s_best"], 3),
               "qat_peak_rss_mb": runs[cfg][-1]["peak_rss_mb"]}
        result["cases"].append(row)
        print("| %s | %.0f, %.0f | %.0f, %.0f | %.2fx | %.2fx |" % (fig, med, best, p["images_per_s"],
                                                                    p["images_per_s_best"], row["ratio"], row["ratio_best"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
