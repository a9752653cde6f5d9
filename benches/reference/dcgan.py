#!/usr/bin/env python3
"""PyTorch reference of gm's `bench-dcgan`: a DCGAN on 28x28 MNIST trained as in pytorch/examples.

Model (as gm_gan::dcgan with its defaults, configs/dcgan-mnist.toml): generator z (100) ->
Linear (no bias) -> [128, 7, 7] -> BatchNorm, ReLU -> ConvTranspose2d(128, 64, 4, 2, 1, no
bias) -> BatchNorm, ReLU -> ConvTranspose2d(64, 1, 4, 2, 1) -> Sigmoid; discriminator
Conv2d(1, 64, 4, 2, 1) -> LeakyReLU(0.2) -> Conv2d(64, 128, 4, 2, 1, no bias) -> BatchNorm,
LeakyReLU(0.2) -> Linear(128*7*7, 1) -> Sigmoid. Weights N(0, 0.02^2), batch-norm scales
N(1, 0.02^2) (pytorch/examples' weights_init). Training step as pytorch/examples' dcgan: one
discriminator update (BCE on a real batch with label 1, then on G(z).detach() with label 0,
gradients summed), then one generator update (BCE of D(G(z)) against label 1, the same G(z));
two Adam(lr 2e-4, betas (0.5, 0.999)), batch 64. Data: MNIST's first 50,000 training images
(gm's train split), scaled to [0, 1], from gm's cache, reshuffled every epoch.

After WARMUP_STEPS untimed steps, --steps steps are timed; every LOG_EVERY steps the
accumulated metrics (both losses, D(x), D(G(z))) are read back to the host, as gm's trainer
does (pytorch/examples calls .item() every step instead).

    python benches/reference/dcgan.py --steps 300 --threads 2 --json out.json

Writes one JSON object with the keys `cargo xtask bench` requires (see xtask/src/bench.rs).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (LOG_EVERY, WARMUP_STEPS, busy_warning, data_dir, matmul_gflops,  # noqa: E402
                    peak_rss_mb, threading_env)

import torch  # noqa: E402
from torch import nn  # noqa: E402

NZ, G_CH, D_CH = 100, 64, 64
TRAIN = 50_000


def read_idx_images(path: Path, count: int) -> torch.Tensor:
    """The first `count` images of an idx3 file as float32 [count, 1, 28, 28] in [0, 1]."""
    if not path.exists():
        sys.exit(f"{path} is missing: run `cargo xtask data mnist`")
    raw = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
    images = raw[16:].view(-1, 1, 28, 28)
    if images.shape[0] < count:
        sys.exit(f"{path}: {images.shape[0]} images, expected at least {count}")
    return images[:count].to(torch.float32) / 255.0


def macs_per_example():
    """Forward multiply-adds of one example through G and through D (transposed convolutions
    counted per input position: positions x c_in x c_out x k^2)."""
    g = NZ * 2 * G_CH * 49 + 49 * 2 * G_CH * G_CH * 16 + 196 * G_CH * 1 * 16
    d = 196 * D_CH * 1 * 16 + 49 * 2 * D_CH * D_CH * 16 + 2 * D_CH * 49
    return g, d


def flops_per_example():
    """One step: G forward + backward (3 forwards) and three D passes with backward (real,
    detached fake, fake for G): 3 F_G + 9 F_D, x2 flops per multiply-add."""
    g, d = macs_per_example()
    return 2 * (3 * g + 9 * d)


def weights_init(m):
    name = m.__class__.__name__
    if "Conv" in name or "Linear" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(NZ, 2 * G_CH * 7 * 7, bias=False)
        self.main = nn.Sequential(
            nn.BatchNorm2d(2 * G_CH),
            nn.ReLU(True),
            nn.ConvTranspose2d(2 * G_CH, G_CH, 4, 2, 1, bias=False),
            nn.BatchNorm2d(G_CH),
            nn.ReLU(True),
            nn.ConvTranspose2d(G_CH, 1, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.main(self.fc(z).view(-1, 2 * G_CH, 7, 7))


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, D_CH, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(D_CH, 2 * D_CH, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * D_CH),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
            nn.Linear(2 * D_CH * 7 * 7, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.steps <= 0 or a.threads <= 0 or a.batch_size <= 0:
        sys.exit("--steps, --threads and --batch-size must be positive")
    torch.set_num_threads(a.threads)
    matmul = matmul_gflops()

    t0 = time.perf_counter()
    train = read_idx_images(data_dir() / "mnist" / "train-images-idx3-ubyte", TRAIN)
    load_seconds = time.perf_counter() - t0

    torch.manual_seed(a.seed)
    net_g, net_d = Generator(), Discriminator()
    net_g.apply(weights_init)
    net_d.apply(weights_init)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(a.seed)

    def batches():
        epoch = 0
        n = train.shape[0] - train.shape[0] % a.batch_size  # full batches only
        while True:
            order = torch.randperm(train.shape[0], generator=gen)
            for s in range(0, n, a.batch_size):
                yield epoch, train.index_select(0, order[s : s + a.batch_size])
            epoch += 1

    def step(real):
        b = real.shape[0]
        ones, zeros = torch.ones(b), torch.zeros(b)
        net_d.zero_grad(set_to_none=True)
        out_real = net_d(real)
        err_real = criterion(out_real, ones)
        err_real.backward()
        fake = net_g(torch.randn(b, NZ))
        out_fake = net_d(fake.detach())
        err_fake = criterion(out_fake, zeros)
        err_fake.backward()
        opt_d.step()
        net_g.zero_grad(set_to_none=True)
        out_g = net_d(fake)
        err_g = criterion(out_g, ones)
        err_g.backward()
        opt_g.step()
        return torch.stack([(err_real + err_fake).detach(), err_g.detach(), out_real.detach().mean(),
                            out_fake.detach().mean()])

    stream = batches()
    window, window_n, steps, last, epoch = None, 0, 0, None, 0

    def run(k):
        nonlocal window, window_n, steps, last, epoch
        examples = 0
        for _ in range(k):
            epoch, x = next(stream)
            nb = x.shape[0]
            m = step(x) * nb
            window = m if window is None else window + m
            window_n += nb
            examples += nb
            steps += 1
            if steps % LOG_EVERY == 0:
                last = (window / window_n).tolist()
                if not all(v == v and abs(v) != float("inf") for v in last):
                    sys.exit(f"training metrics {last} after step {steps}")
                window, window_n = None, 0
        if window is not None:
            last = (window / window_n).tolist()
            window, window_n = None, 0
        return examples

    net_g.train()
    net_d.train()
    run(WARMUP_STEPS)
    busy_warning()
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    examples = run(a.steps)
    seconds = time.perf_counter() - start
    load_after = list(os.getloadavg())

    peak = peak_rss_mb()
    g_macs, d_macs = macs_per_example()
    result = {
        "impl": "pytorch",
        "steps": a.steps,
        "warmup_steps": WARMUP_STEPS,
        "batch_size": a.batch_size,
        "threads": a.threads,
        "seconds": seconds,
        "ms_per_step": 1000.0 * seconds / a.steps,
        "examples_per_sec": examples / seconds,
        "gflops": examples * flops_per_example() / seconds / 1e9,
        "matmul_gflops": matmul,
        "g_forward_macs_per_example": g_macs,
        "d_forward_macs_per_example": d_macs,
        "d_loss_last_window": last[0],
        "g_loss_last_window": last[1],
        "d_real_last_window": last[2],
        "d_fake_last_window": last[3],
        "epochs_touched": epoch + 1,
        "load_seconds": load_seconds,
        "peak_rss_mb": peak,
        "dataset": "mnist",
        "model": "dcgan 28x28: G 100-[128,7,7]-convT-[64,14,14]-convT-[1,28,28], D conv-conv-linear, batch norm",
        "optimizer": {"kind": "adam", "lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "eps": 1e-8},
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "env": threading_env(),
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
    }
    a.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"pytorch dcgan: {a.steps} steps x {a.batch_size} in {seconds:.2f}s "
        f"({examples / seconds:.0f} examples/s, {1000.0 * seconds / a.steps:.2f} ms/step), "
        f"D loss {last[0]:.3f}, G loss {last[1]:.3f}, D(x) {last[2]:.3f}, D(G(z)) {last[3]:.3f}, "
        f"peak RSS {peak:.0f} MB, {a.threads} threads"
    )


if __name__ == "__main__":
    main()
