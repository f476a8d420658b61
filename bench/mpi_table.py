#!/usr/bin/env python3
"""bench/mpi_table.py RUN_DIR...: one markdown row per run folder of qat
train (its metrics.jsonl): ranks, grad_comm, test accuracy per epoch, images/s
(median over epochs), exchange seconds per step and bytes per step, for
docs/distributed.md."""
import json
import statistics
import sys

print("| run | ranks | grad_comm | test acc per epoch | images/s (median) | exchange ms/step | bytes/step sent |")
print("|---|---|---|---|---|---|---|")
for d in sys.argv[1:]:
    lines = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
    acc = ", ".join(f"{100 * m['test_acc']:.2f}" for m in lines)
    ips = statistics.median(m["images_per_s"] for m in lines)
    ranks = lines[0].get("ranks", 1)
    gc = lines[0].get("grad_comm", "-")
    comm = "-"
    if "comm_seconds" in lines[0]:
        # comm_seconds is per epoch; runs from before "steps" was kept: MNIST 55000 / 128, CIFAR 45000 / 128
        nsteps = lines[0].get("steps") or (430 if "mnist" in open(f"{d}/summary.json").read() else 352)
        comm = f"{1e3 * statistics.median(m['comm_seconds'] for m in lines) / nsteps:.2f}"
    sent = lines[0].get("sent_bytes_per_step", "-")
    print(f"| {d.rstrip('/').split('/')[-2]}/{d.rstrip('/').split('/')[-1]} | {ranks} | {gc} | {acc} | {ips:.0f} | "
          f"{comm} | {sent} |")
