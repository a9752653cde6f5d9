"""The PyTorch reference of examples/ais_rbm.rs: the same forward AIS loop on a random
784-500 Bernoulli RBM, M = 100 chains, the 14,500-step Salakhutdinov & Murray schedule
(or linear(STEPS) with an argument), f32 matrix products and f64 log-weights.

    ~/.cache/gm/torch-2.13.0/bin/python crates/gm-eval/examples/ais_rbm.py [STEPS] [--same-ops]

By default it is the straightforward PyTorch loop (the reference): the hidden term of the
weight update as the difference of two f64 softplus values, `torch.bernoulli` draws.
`--same-ops` uses the operations gm's Rust target uses instead (the fused, f32
−log1p(σ(a)·expm1(b − a)) hidden term; `rand < p` draws; `addmm`), so that the time
difference due to the language and the one due to the choice of kernels can be told apart.

(The random RBM is drawn by torch's generator, so its log Z differs from the Rust run's:
the comparison is of time, not of values.)
"""

import math
import resource
import sys
import time

import torch
import torch.nn.functional as F


def salakhutdinov_murray():
    betas = [k * 1e-3 for k in range(500)]
    betas += [0.5 + k * 1e-4 for k in range(4000)]
    betas += [0.9 + k * 1e-5 for k in range(10000)]
    return betas + [1.0]


def bern(p):
    return (torch.rand_like(p) < p).to(p.dtype)


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


def stats(log_w, log_z_base, m):
    lw = log_w.tolist()
    mx = max(lw)
    ws = [math.exp(x - mx) for x in lw]
    mean = sum(ws) / m
    var = sum((x - mean) ** 2 for x in ws) / (m - 1)
    return log_z_base + mx + math.log(mean), math.sqrt(var / m) / mean, sum(ws) ** 2 / sum(x * x for x in ws)


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


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    same_ops = "--same-ops" in sys.argv
    if args:
        n = int(args[0])
        betas = [k / n for k in range(n + 1)]
    else:
        betas = salakhutdinov_murray()
    torch.manual_seed(0)
    d, h, m = 784, 500, 100
    w = torch.randn(d, h) * 0.05
    p = torch.rand(d) * 0.49 + 0.01
    b = torch.logit(p.clamp(1e-3, 1 - 1e-3))
    c = torch.full((h,), -1.0)
    t = time.perf_counter()
    log_z, se, ess = (ais_same_ops if same_ops else ais)(w, b, c, b.clone(), betas, m)
    secs = time.perf_counter() - t
    steps = len(betas) - 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"pytorch ais{' (same ops as rust)' if same_ops else ''}: {steps} steps, {m} chains, {torch.get_num_threads()} threads: {secs:.2f} s "
        f"({secs / steps * 1e6:.1f} µs/step), log Z = {log_z:.4f} ± {se:.4f}, ESS {ess:.1f}, "
        f"peak RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
