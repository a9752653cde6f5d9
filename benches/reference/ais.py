"""PyTorch reference of `bench-ais` (benches/src/bin/bench-ais.rs): forward AIS on the same
fixed 784-500 Bernoulli RBM with M = 100 chains along the 14,500-temperature schedule of
Salakhutdinov & Murray (2008), f32 matrix products and f64 log-weights, written as one
would in PyTorch.

    python benches/reference/ais.py --steps 0 --threads 2 --json out.json [--same-ops]

`--steps 0` is that schedule, `--steps N` linear(N). `--same-ops` uses the operations gm's
Rust target uses (the fused f32 -log1p(sigmoid(a) * expm1(b - a)) hidden term, `rand < p`
draws, `addmm`) instead of the straightforward ones, so that the time difference due to the
language and the one due to the choice of kernels can be told apart.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import matmul_gflops, peak_rss_mb, threading_env  # noqa: E402


def salakhutdinov_murray():
    betas = [k * 1e-3 for k in range(500)]
    betas += [0.5 + k * 1e-4 for k in range(4000)]
    betas += [0.9 + k * 1e-5 for k in range(10000)]
    return betas + [1.0]


def fixed_rbm():
    d, h = 784, 500
    i = torch.arange(d, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(h, dtype=torch.float64).unsqueeze(0)
    w = (torch.sin(i * 12.9898 + j * 78.233 + 0.5) * (0.05 * math.sqrt(2.0))).float()
    i = torch.arange(d, dtype=torch.float64)
    p = (torch.sin(i * 3.7 + 1.1) + 1.0) * 0.245 + 0.01
    base = torch.log(p / (1.0 - p))
    b = (base + torch.sin(i) * 0.2).float()
    c = torch.full((h,), -1.0)
    return w, b, c, base.float()


def bern(p):
    return (torch.rand_like(p) < p).to(p.dtype)


def stats(log_w, log_z_base, m):
    lw = log_w.tolist()
    mx = max(lw)
    ws = [math.exp(x - mx) for x in lw]
    mean = sum(ws) / m
    var = sum((x - mean) ** 2 for x in ws) / (m - 1)
    ess = sum(ws) ** 2 / sum(x * x for x in ws)
    return log_z_base + mx + math.log(mean), math.sqrt(var / m) / mean, ess


@torch.no_grad()
def ais(w, b, c, base_b, betas, m):
    d, h = w.shape
    b_diff = b - base_b
    log_z_base = F.softplus(base_b.double()).sum().item() + h * math.log(2.0)
    v = torch.sigmoid(base_b).expand(m, d).bernoulli()
    log_w = torch.zeros(m, dtype=torch.float64)
    k = len(betas) - 1
    for i in range(1, k + 1):
        bf, bt = betas[i - 1], betas[i]
        u = v @ w + c
        u64 = u.double()
        log_w += (bt - bf) * (v @ b_diff).double() + (F.softplus(bt * u64) - F.softplus(bf * u64)).sum(1)
        if i < k:
            hid = torch.sigmoid(u.mul_(bt)).bernoulli()
            a = (hid @ w.t()).add_(b_diff).mul_(bt).add_(base_b)
            v = torch.sigmoid(a).bernoulli()
    return stats(log_w, log_z_base, m)


@torch.no_grad()
def ais_same_ops(w, b, c, base_b, betas, m):
    d, h = w.shape
    b_diff = b - base_b
    wt = w.t()
    log_z_base = F.softplus(base_b.double()).sum().item() + h * math.log(2.0)
    v = torch.sigmoid(base_b).expand(m, d).bernoulli()
    log_w = torch.zeros(m, dtype=torch.float64)
    k = len(betas) - 1
    for i in range(1, k + 1):
        bf, bt = betas[i - 1], betas[i]
        u = torch.addmm(c, v, w)
        p_h = torch.sigmoid(u * bt)
        x = (u * (bf - bt)).expm1_().mul_(p_h).log1p_()
        log_w += ((v @ b_diff) * (bt - bf) - x.sum(1)).double()
        if i < k:
            hid = bern(p_h)
            a = torch.addmm(b_diff, hid, wt).mul_(bt).add_(base_b)
            v = bern(a.sigmoid_())
    return stats(log_w, log_z_base, m)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--chains", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--same-ops", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    matmul = matmul_gflops()
    torch.manual_seed(a.seed)
    betas = salakhutdinov_murray() if a.steps == 0 else [k / a.steps for k in range(a.steps + 1)]
    w, b, c, base = fixed_rbm()
    f = ais_same_ops if a.same_ops else ais
    f(w, b, c, base, [k / 20 for k in range(21)], a.chains)  # warm-up
    load_before = os.getloadavg()
    t = time.perf_counter()
    log_z, se, ess = f(w, b, c, base, betas, a.chains)
    secs = time.perf_counter() - t
    steps = len(betas) - 1
    rss = peak_rss_mb()
    d, h = w.shape
    out = {
        "impl": "pytorch-same-ops" if a.same_ops else "pytorch-eager",
        # Chain-steps per second; two [M, D] x [D, H] products per temperature.
        "examples_per_sec": a.chains * steps / secs,
        "gflops": 2 * 2 * a.chains * d * h * steps / secs / 1e9,
        "matmul_gflops": matmul,
        "matmul_only_seconds": 2 * 2 * a.chains * d * h * steps / (matmul * 1e9),
        "env": threading_env(),
        "steps": steps,
        "chains": a.chains,
        "threads": a.threads,
        "seconds": secs,
        "us_per_step": secs / steps * 1e6,
        "log_z": log_z,
        "log_z_std_err": se,
        "ess": ess,
        "peak_rss_mb": rss,
        "torch_version": torch.__version__,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }
    with open(a.json, "w") as fh:
        json.dump(out, fh, indent=2)
    print(
        f"{out['impl']} ais: {steps} steps x {a.chains} chains in {secs:.2f}s "
        f"({out['us_per_step']:.1f} us/step), log Z = {log_z:.3f} ± {se:.3f}, ESS {ess:.1f}, "
        f"peak RSS {rss:.0f} MB, {a.threads} threads"
    )


if __name__ == "__main__":
    main()
