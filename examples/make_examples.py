#!/usr/bin/env python3
"""Writes the shipped example inputs of `fourf conv` (standard library only).

- fashion_mnist_16.npy: the first 16 images of the Fashion-MNIST test set,
  float32 in [0, 1], shape (16, 28, 28). Source: Debian's dataset-fashion-mnist
  (/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz). Fashion-MNIST is
  (c) Zalando SE, MIT licence: https://github.com/zalandoresearch/fashion-mnist
- edge_5x5.npy: a 5x5 Laplacian-of-Gaussian edge kernel (sigma = 1 sample),
  float32, zero sum.

Run from this directory: python3 make_examples.py
"""
import gzip
import math
import struct

IDX = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def write_npy(path, shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % (
        "".join("%d, " % s for s in shape) if len(shape) > 1 else "%d," % shape[0]
    )
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(struct.pack("<%df" % len(values), *values))


with gzip.open(IDX, "rb") as f:
    magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
    assert magic == 0x803, "not an IDX3 image file"
    count = 16
    pixels = f.read(count * rows * cols)
write_npy("fashion_mnist_16.npy", (count, rows, cols), [p / 255.0 for p in pixels])

sigma = 1.0
log = []
for y in range(-2, 3):
    for x in range(-2, 3):
        r2 = (x * x + y * y) / (2 * sigma * sigma)
        log.append((r2 - 1.0) * math.exp(-r2))
mean = sum(log) / len(log)
write_npy("edge_5x5.npy", (5, 5), [v - mean for v in log])
