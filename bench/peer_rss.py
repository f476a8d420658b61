#!/usr/bin/env python3
"""Peak RSS of a training step, qat against the PyTorch peer, same model and batch.

Both sides train a few steps on synthetic data (no dataset in memory):
qat through `qat bench train CONFIG` (its peak_rss_mb), PyTorch through
../shared/bench/torch_peer.py's model, Adam and CrossEntropy (ru_maxrss of
a fresh process).

  python3 bench/peer_rss.py [--build build] [--threads 2] [--batch 128] [--out FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_DIR = os.path.join(ROOT, "..", "shared", "bench")
CASES = [("configs/cifar10/vgg_small_fp32.cfg", "vgg_small", "fp32"),
         ("configs/cifar10/vgg_small_bnn.cfg", "vgg_small", "bnn"),
         ("configs/cifar10/vgg_small_q_fp32.cfg", "vgg_small_q", "fp32")]

PEER = r"""
import os, resource, sys
sys.path.insert(0, sys.argv[1])
import torch_peer
torch_peer.__file__ = os.path.abspath(__file__)  # its BLAS pinning re-executes this file
torch_peer._select_blas()
import torch, torch.nn as nn
name, bnn, threads, batch = sys.argv[2], sys.argv[3] == "bnn", int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
m = torch_peer.build(name, bnn)
x, y = torch_peer.synthetic(torch_peer.MODELS[name][1], batch)
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
loss = nn.CrossEntropyLoss()
for _ in range(3):
    opt.zero_grad(set_to_none=True)
    loss(m(x), y).backward()
    opt.step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rows = []
    print("| model | qat peak RSS MB | PyTorch peak RSS MB | ratio |")
    print("|---|---:|---:|---:|")
    for cfg, name, form in CASES:
        q = json.loads(subprocess.run([os.path.join(ROOT, a.build, "qat"), "bench", "train", cfg, "--batch",
                                       str(a.batch), "--threads", str(a.threads), "--steps", "3", "--warmup", "1",
                                       "--json"], cwd=ROOT, check=True, capture_output=True, text=True).stdout)
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(PEER)
        try:
            p = float(subprocess.run(["/usr/bin/python3", f.name, PEER_DIR, name, form, str(a.threads), str(a.batch)],
                                     check=True, capture_output=True, text=True).stdout.split()[-1])
        finally:
            os.unlink(f.name)
        row = {"config": cfg, "model": name + "/" + form, "qat_peak_rss_mb": q["peak_rss_mb"], "peer_peak_rss_mb": round(p, 1),
               "ratio": round(q["peak_rss_mb"] / p, 3)}
        rows.append(row)
        print("| %s | %.0f | %.0f | %.2f |" % (row["model"], row["qat_peak_rss_mb"], p, row["ratio"]))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"threads": a.threads, "batch": a.batch, "cases": rows}, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
