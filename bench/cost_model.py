#!/usr/bin/env python3
"""bench/cost_model.py INPUTS.json [--check | --when]: the cost model of a
data-parallel step in docs/distributed.md, as markdown tables.

A step of global batch B on K machines (one rank each, no overlap of the
exchange with the backward, which is how qat runs it):

  T(K) = B / (K R)                         compute, R = one machine's images/s
       + codec(K)                          encode P values, decode K payloads
       + fp32:  2 (K-1)/K * 4P / bw + 2 (K-1) alpha     ring allreduce
         lossy:   (K-1) * bytes(P) / bw +   (K-1) alpha  ring allgather

INPUTS holds per config its trainable parameters P (qat summary) and the
measured R, the codecs' encode and decode-add seconds per value
(build/bench/bench_comm) and the networks' bandwidth and latency.
--check prints the model against the -np 2 / -np 4 runs listed in INPUTS;
--when the bandwidth under which each lossy code beats fp32, by K.
"""
import json
import math
import sys

BLOCK = 256
KS = [2, 4, 8, 16, 32, 64, 128, 256]


def payload(kind, p):
    nb = math.ceil(p / BLOCK)
    r4 = lambda b: (b + 3) // 4 * 4
    return {"fp32": 4 * p, "fp16": r4(2 * p), "int8": 4 * nb + r4(p), "1bit": 4 * nb + r4(math.ceil(p / 8))}[kind]


def step_time(kind, p, b, k, rate, bw, alpha, codec):
    """seconds of one step, and its parts"""
    comp = b / (k * rate)
    if k == 1:
        comm = 0.0
    elif kind == "fp32":
        comm = 2 * (k - 1) / k * 4 * p / bw + 2 * (k - 1) * alpha
    else:
        comm = (k - 1) * payload(kind, p) / bw + (k - 1) * alpha
    cod = 0.0 if kind == "fp32" else p * codec[kind]["encode"] + k * p * codec[kind]["decode"]
    return comp + comm + cod, comp, comm, cod


def main():
    inp = json.load(open(sys.argv[1]))
    codec = inp["codec_s_per_value"]
    kinds = ["fp32", "fp16", "int8", "1bit"]
    if "--when" in sys.argv:
        # a lossy code beats fp32 when the bytes it saves take longer than its codec:
        # (8 (K-1)/K - (K-1) c) P / bw > P (t_enc + K t_dec), c its bytes a value (latency left out)
        p = 1 << 20
        print("| grad_comm | bytes a value | " + " | ".join(f"K={k}" for k in KS) + " |")
        print("|---|---|" + "---|" * len(KS))
        for kd in kinds[1:]:
            c = payload(kd, p) / p
            row = []
            for k in KS:
                saved = 8 * (k - 1) / k - (k - 1) * c
                cost = codec[kd]["encode"] + k * codec[kd]["decode"]
                row.append(f"< {saved / cost * 8 / 1e9:.1f} Gb/s" if saved > 0 else "never")
            print(f"| {kd} | {c:.3f} | " + " | ".join(row) + " |")
        return
    if "--check" in sys.argv:
        print("| run | model images/s | measured images/s | model exchange a step | measured comm_seconds a step |")
        print("|---|---|---|---|---|")
        for c in inp["check"]:
            t, comp, comm, cod = step_time(c["grad_comm"], c["params"], c["batch"], c["ranks"], c["rank_rate"],
                                           c["bw"], c["alpha"], codec)
            print(f"| {c['name']} | {c['batch'] / t:.0f} | {c['measured_images_per_s']:.0f} | "
                  f"{(comm + cod) * 1e3:.2f} ms | {c['measured_comm_s_per_step'] * 1e3:.2f} ms |")
        return
    print("| config | trainable parameters | fp32 | fp16 | int8 | 1bit |")
    print("|---|---|---|---|---|---|")
    for name, c in inp["configs"].items():
        print(f"| {name} | {c['params']:,} | " + " | ".join(f"{payload(k, c['params']) / 1e6:.3f} MB" for k in kinds)
              + " |")
    ks = KS
    for name, c in inp["configs"].items():
        if "rate" not in c:
            continue
        for weak in (0, 1):
            what = ("128 images a machine (global batch 128 K)" if weak else
                    f"the cfg's global batch {c['batch']} split K ways")
            print(f"\n**{name}**, {what}: P = {c['params']:,}, R = {c['rate']:.0f} images/s a machine. "
                  "Images/s over K R (1 = linear); the best of a column in bold\n")
            print("| network | grad_comm | " + " | ".join(f"K={k}" for k in ks) + " |")
            print("|---|---|" + "---|" * len(ks))
            for net in inp["networks"]:
                eff = {}
                for kd in kinds:
                    for k in ks:
                        b = 128 * k if weak else c["batch"]
                        if k > b:
                            continue
                        t = step_time(kd, c["params"], b, k, c["rate"], net["bw"], net["alpha"], codec)[0]
                        eff[kd, k] = b / t / (k * c["rate"])
                for kd in kinds:
                    row = []
                    for k in ks:
                        if (kd, k) not in eff:
                            row.append("B < K")
                            continue
                        best = max(eff[x, k] for x in kinds)
                        cell = f"{eff[kd, k]:.2f}"
                        row.append(f"**{cell}**" if eff[kd, k] == best else cell)
                    print(f"| {net['name']} | {kd} | " + " | ".join(row) + " |")

if __name__ == "__main__":
    main()
