#!/usr/bin/env python3
"""A stand-in for CIFAR-100, which this machine does not have: CIFAR-10's
images and labels written in CIFAR-100's binary format (coarse byte, fine
byte, 3072 pixel bytes), fine label = the CIFAR-10 class (so only fine
labels 0..9 of 100 occur), coarse label = fine // 5. It exercises the
CIFAR-100 configs' 100-way models and their export, not their accuracy.

    make_standin.py CIFAR10_DIR OUT_DIR   (writes OUT_DIR/cifar-100-binary/)
"""
import os
import sys

src, out = sys.argv[1], os.path.join(sys.argv[2], "cifar-100-binary")
os.makedirs(out, exist_ok=True)


def convert(names, dst):
    with open(os.path.join(out, dst), "wb") as f:
        for n in names:
            b = open(os.path.join(src, n), "rb").read()
            assert len(b) % 3073 == 0, n
            for i in range(0, len(b), 3073):
                fine = b[i]
                f.write(bytes([fine // 5, fine]) + b[i + 1:i + 3073])


convert([f"data_batch_{k}.bin" for k in range(1, 6)], "train.bin")
convert(["test_batch.bin"], "test.bin")
c10 = open(os.path.join(src, "batches.meta.txt")).read().split()
with open(os.path.join(out, "fine_label_names.txt"), "w") as f:
    f.write("\n".join(c10 + [f"unused_{k}" for k in range(10, 100)]) + "\n")
with open(os.path.join(out, "coarse_label_names.txt"), "w") as f:
    f.write("\n".join(f"coarse_{k}" for k in range(20)) + "\n")
