"""PyTorch CPU eager peer of fourf's training and inference benchmarks
(nn/benches/train.rs): vit-fmnist and gfnet-fmnist with the identical
architecture (patch 4 → 49 tokens, dim 64, depth 4, MLP ratio 2, 4 heads for the
ViT, GFNet global filter 7×4×64, LayerNorm eps 1e-6, exact GELU), AdamW,
label smoothing 0.1, batch 128 for training and 64 for inference.

Run with 2 threads: python3 benches/peers/torch_fmnist.py  (torch from PyPI,
in a venv; never a dependency of fourf). Prints images/s per case as JSON lines.
"""
import json
import time

import torch
import torch.nn as nn

torch.set_num_threads(2)
torch.manual_seed(0)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        a = a.softmax(dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, d))


class GlobalFilter(nn.Module):
    def __init__(self, dim, h, w):
        super().__init__()
        self.h, self.w = h, w
        self.complex_weight = nn.Parameter(torch.randn(h, w // 2 + 1, dim, 2) * 0.02)

    def forward(self, x):
        b, n, c = x.shape
        x = x.view(b, self.h, self.w, c)
        x = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
        x = x * torch.view_as_complex(self.complex_weight)
        x = torch.fft.irfft2(x, s=(self.h, self.w), dim=(1, 2), norm="ortho")
        return x.reshape(b, n, c)


def mlp(dim, hidden):
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    def __init__(self, kind, dim, heads, grid):
        super().__init__()
        self.kind = kind
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mixer = Attention(dim, heads) if kind == "vit" else GlobalFilter(dim, grid, grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = mlp(dim, 2 * dim)

    def forward(self, x):
        if self.kind == "vit":
            x = x + self.mixer(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        return x + self.mlp(self.norm2(self.mixer(self.norm1(x))))


class Net(nn.Module):
    def __init__(self, kind, dim=64, depth=4, heads=4, patch=4, image=28, classes=10):
        super().__init__()
        grid = image // patch
        self.kind = kind
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if kind == "vit" else None
        tokens = grid * grid + (1 if kind == "vit" else 0)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(kind, dim, heads, grid) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x + self.pos_embed)
        x = self.norm(x)
        x = x[:, 0] if self.kind == "vit" else x.mean(1)
        return self.head(x)


def bench(fn, images, seconds=5.0):
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return images * n / (time.perf_counter() - t0)


for kind, name in [("vit", "vit-fmnist"), ("gfnet", "gfnet-fmnist")]:
    net = Net(kind)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.rand(128, 1, 28, 28) * 2 - 1
    y = torch.arange(128) % 10

    def step():
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()

    print(json.dumps({"case": f"train/{name}/batch128", "images_per_s": bench(step, 128)}))
    x64 = x[:64]

    def infer():
        with torch.no_grad():
            net(x64)

    print(json.dumps({"case": f"infer/{name}/batch64", "images_per_s": bench(infer, 64)}))
