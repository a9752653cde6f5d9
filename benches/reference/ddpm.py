#!/usr/bin/env python3
"""PyTorch reference of gm's `bench-ddpm`: DDPM training steps on 28x28 MNIST, as a PyTorch user writes them.

Model (as gm_diffusion::ddpm with configs/ddpm-mnist.toml): T = 1000, beta linear from 1e-4 to
0.02; eps-prediction U-Net with channels 32-64-64 at 28, 14, 7 pixels: timestep sinusoidal
embedding (128) -> Linear -> SiLU -> Linear; conv_in 3x3; per level a residual block
(GroupNorm(8), SiLU, conv 3x3, + Linear(SiLU(temb)), GroupNorm, SiLU, dropout 0.1, conv 3x3,
1x1 shortcut when channels change), a stride-2 3x3 convolution between levels; middle:
residual block, single-head self-attention (GroupNorm, 1x1 qkv, scaled_dot_product_attention,
1x1 out, residual), residual block; up: per level a residual block on [h, skip], nearest
upsampling + 3x3 conv between levels; GroupNorm, SiLU, conv 3x3 out (zero-initialised).
Step: t ~ U{1..T}, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, MSE(eps_theta(x_t, t), eps),
backward, clip_grad_norm_(1.0), Adam(2e-4). Data: MNIST's first 50,000 training images
from gm's cache, dequantized as gm does ((k + u) / 256 * 2 - 1), reshuffled every epoch.
Sampling (timed once each, seconds per image): 1000-step ancestral (sigma_t^2 = beta_t) and
50-step DDIM (eta = 0), x0-hat clamped to [-1, 1], under torch.no_grad() in eval mode.

    python benches/reference/ddpm.py --steps 30 --threads 2 --json out.json

Writes one JSON object with the keys `cargo xtask bench` requires (see xtask/src/bench.rs).
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir, shuffled_batches, timed_steps, timing_fields, write_result  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

T, CH, TRAIN = 1000, (32, 64, 64), 50_000


def read_idx_images(path: Path, count: int) -> torch.Tensor:
    if not path.exists():
        sys.exit(f"{path} is missing: run `cargo xtask data mnist`")
    raw = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
    return raw[16:].view(-1, 1, 28, 28)[:count].to(torch.float32)


def sinusoidal(t, dim):
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10_000.0) / half))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, dropout):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.n2, self.c2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.temb(F.silu(e))[:, :, None, None]
        h = self.c2(self.drop(F.silu(self.n2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm, self.qkv, self.out = nn.GroupNorm(8, c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, 3, c, h * w).transpose(2, 3).unbind(1)
        o = F.scaled_dot_product_attention(q, k, v)  # [b, hw, c]
        return x + self.out(o.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, ch=CH, dropout=0.1):
        super().__init__()
        temb = 4 * ch[0]
        self.temb_dim = temb
        self.time = nn.Sequential(nn.Linear(temb, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(1, ch[0], 3, padding=1)
        prev, self.down = ch[0], nn.ModuleList()
        for c in ch:
            self.down.append(ResBlock(prev, c, temb, dropout))
            prev = c
        self.downsample = nn.ModuleList(nn.Conv2d(ch[l], ch[l], 3, stride=2, padding=1) for l in range(len(ch) - 1))
        top = ch[-1]
        self.mid1, self.attn, self.mid2 = ResBlock(top, top, temb, dropout), Attention(top), ResBlock(top, top, temb, dropout)
        self.up = nn.ModuleList(
            ResBlock((top if l == len(ch) - 1 else ch[l + 1]) + ch[l], ch[l], temb, dropout) for l in range(len(ch)))
        self.upsample = nn.ModuleList(nn.Conv2d(ch[l], ch[l], 3, padding=1) for l in range(1, len(ch)))
        self.norm_out, self.conv_out = nn.GroupNorm(8, ch[0]), nn.Conv2d(ch[0], 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x, t):
        e = self.time(sinusoidal(t, self.temb_dim))
        h, skips = self.conv_in(x), []
        for l, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if l < len(self.downsample):
                h = self.downsample[l](h)
        h = self.mid2(self.attn(self.mid1(h, e)), e)
        for l in reversed(range(len(self.up))):
            h = self.up[l](torch.cat([h, skips[l]], 1), e)
            if l > 0:
                h = self.upsample[l - 1](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def macs_per_example(ch=CH):
    """Forward multiply-adds of one example (gm's bench-ddpm counts the same)."""
    temb, px = 4 * ch[0], (784, 196, 49)

    def conv(p, i, o, k):
        return p * i * o * k * k

    def res(p, i, o):
        return conv(p, i, o, 3) + conv(p, o, o, 3) + temb * o + (conv(p, i, o, 1) if i != o else 0)

    m, prev = conv(784, 1, ch[0], 3) + 2 * temb * temb, ch[0]
    for l, c in enumerate(ch):
        m += res(px[l], prev, c)
        prev = c
        if l < 2:
            m += conv(px[l + 1], c, c, 3)
    top = ch[2]
    m += 2 * res(49, top, top) + conv(49, top, 3 * top, 1) + 2 * 49 * 49 * top + conv(49, top, top, 1)
    for l in reversed(range(3)):
        m += res(px[l], (top if l == 2 else ch[l + 1]) + ch[l], ch[l])
        if l > 0:
            m += conv(px[l - 1], ch[l], ch[l], 3)
    return m + conv(784, ch[0], 1, 3)


@torch.no_grad()
def sample(net, n, abar, betas, ddim_steps=None):
    """n images from noise: ancestral over all T steps, or DDIM (eta = 0) on ddim_steps evenly spaced ones."""
    if ddim_steps is None:
        ts = list(range(T, 0, -1))
    else:
        ts = sorted({1 + round((T - 1) * i / (ddim_steps - 1)) for i in range(ddim_steps)}, reverse=True)
    x = torch.randn(n, 1, 28, 28)
    for i, t in enumerate(ts):
        eps = net(x, torch.full((n,), t))
        ab = abar[t - 1]
        x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
        if ddim_steps is None:
            ab_prev = abar[t - 2] if t > 1 else torch.tensor(1.0)
            beta = betas[t - 1]
            mean = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x) / (1 - ab)
            x = mean + beta.sqrt() * torch.randn_like(x) if t > 1 else mean
        else:
            nxt = ts[i + 1] if i + 1 < len(ts) else 0
            ab_next = abar[nxt - 1] if nxt > 0 else torch.tensor(1.0)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
    return x


def time_sampling(net, n, abar, betas):
    if n <= 0:
        return None
    net.eval()
    out = {"images": n}
    for key, steps in (("ddim_50_s_per_image", 50), ("ancestral_1000_s_per_image", None)):
        start = time.perf_counter()
        x = sample(net, n, abar, betas, steps)
        assert x.shape[0] == n
        out[key] = (time.perf_counter() - start) / n
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-images", type=int, default=8)
    a = p.parse_args()
    if a.steps <= 0 or a.threads <= 0 or a.batch_size <= 0:
        sys.exit("--steps, --threads and --batch-size must be positive")
    torch.set_num_threads(a.threads)
    k = read_idx_images(data_dir() / "mnist" / "train-images-idx3-ubyte", TRAIN)
    torch.manual_seed(a.seed)
    net = UNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    betas = torch.linspace(1e-4, 0.02, T)
    abar = torch.cumprod(1 - betas, 0)
    stream = shuffled_batches(k, a.batch_size, a.seed)
    last = []

    def update(kb):
        x0 = (kb + torch.rand_like(kb)) / 256 * 2 - 1
        t = torch.randint(1, T + 1, (kb.shape[0],))
        noise = torch.randn_like(x0)
        ab = abar[t - 1].view(-1, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        loss = F.mse_loss(net(xt, t), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        last.append(loss.detach())

    net.train()
    timed = timed_steps(update, stream, a.steps)
    macs = macs_per_example()
    out = {"impl": "pytorch", "threads": a.threads, "forward_macs_per_example": macs,
           "loss_last_window": torch.stack(last[-20:]).mean().item(),
           **timing_fields(timed, a.batch_size, 2.0 * 3.0 * macs * a.batch_size),
           "sampling": time_sampling(net, a.sample_images, abar, betas)}
    write_result(a.json, "pytorch ddpm", out)


if __name__ == "__main__":
    main()
