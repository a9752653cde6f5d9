"""PyTorch references of `bench-nade` (benches/src/bin/bench-nade.rs): NADE 784-500 (sigmoid
hidden units, identity ordering) on static binarized MNIST.

    python benches/reference/nade.py --steps 100 --threads 2 --mode train --form loop --json out.json
    python benches/reference/nade.py --steps 100 --threads 2 --mode train --form blocked --json out.json
    python benches/reference/nade.py --steps 5 --threads 2 --mode sample --json out.json

Training forms:
- `loop`: the NADE a PyTorch user writes (pytorch-generative's form, sigmoid hidden units):
  the running pre-activation a updated one dimension at a time in a Python loop over the 784
  dimensions, logits stacked, BCE-with-logits, autograd through the loop.
- `blocked`: gm's own algorithm written in PyTorch: the ordering processed in blocks of
  `--block` positions (carry of each block start, in-block sums as one masked matrix product)
  and the hand-written gradient walked backwards over the blocks; autograd unused.
Both: Adam lr 1e-3 (torch defaults otherwise), batch 100, WARMUP_STEPS untimed steps, then the
timed ones; then the exact NLL of the first 1,000 test images (the same form, no gradients).
GFLOP/s counts the algorithm's 10·D·B·H multiply-adds×2 of a step (see bench-nade.rs).

Sampling: `--steps` rounds of `--samples` images, 784 sequential steps each, batched over the
images (sigmoid, matrix-vector product, logistic-noise threshold, rank-one update).
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (DIM, LOG_EVERY, WARMUP_STEPS, busy_warning, data_dir, matmul_gflops,  # noqa: E402
                    peak_rss_mb, read_amat, shuffled_batches, threading_env)


def step_flops(batch, hidden):
    """Flops of one training step as counted on both sides: forward running sum and output
    dot products (2 multiply-adds per (i, b, h)), backward output, hidden and input gradients
    (3 more): 5 multiply-adds = 10 flops per (i, b, h)."""
    return 10.0 * DIM * batch * hidden


class Nade(nn.Module):
    def __init__(self, hidden, train):
        super().__init__()
        p = train.double().mean(0).clamp(1e-3, 1 - 1e-3)
        self.w = nn.Parameter(torch.randn(hidden, DIM) / DIM**0.5)
        self.v = nn.Parameter(torch.randn(DIM, hidden) / hidden**0.5)
        self.b = nn.Parameter((p.log() - (-p).log1p()).float())
        self.c = nn.Parameter(torch.zeros(hidden))

    def log_prob(self, x):
        """The loop form: one conditional per iteration, autograd through the loop."""
        a = self.c.expand(x.shape[0], -1)
        logits = []
        for i in range(DIM):
            h = torch.sigmoid(a)
            logits.append(h @ self.v[i] + self.b[i])
            if i + 1 < DIM:
                a = a + x[:, i : i + 1] * self.w[:, i]
        logits = torch.stack(logits, 1)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)

    @torch.no_grad()
    def blocked(self, x, block, grads):
        """gm's blocked pass: log p(x) [B], and with `grads` the mean-NLL gradients in .grad."""
        xt, wt = x.t().contiguous(), self.w.t().contiguous()
        d, bsz = xt.shape
        spans = [(s, min(block, d - s)) for s in range(0, d, block)]
        carries, carry = [], self.c.expand(bsz, -1).clone()
        for s, k in spans:
            carries.append(carry)
            carry = torch.addmm(carry, xt[s : s + k].t(), wt[s : s + k])
        lp = torch.zeros(bsz)
        dwt, dv, db = torch.empty_like(wt), torch.empty_like(self.v), torch.empty_like(self.b)
        r = torch.zeros_like(carry)
        h = torch.empty(block, bsz, wt.shape[1])
        for (s, k), carry in reversed(list(zip(spans, carries))):
            xb, hb = xt[s : s + k], h[:k]
            # Running sum in the block: carry, then one row addition per position.
            hb[0] = carry
            torch.mul(xb[:-1].unsqueeze(2), wt[s : s + k - 1].unsqueeze(1), out=hb[1:])
            for t in range(1, k):
                hb[t] += hb[t - 1]
            hb.sigmoid_()
            vb = self.v[s : s + k]
            logits = torch.bmm(vb.unsqueeze(1), hb.transpose(1, 2)).squeeze(1) + self.b[s : s + k].unsqueeze(1)
            lp += (xb * logits - F.softplus(logits)).sum(0)
            if not grads:
                continue
            g = (torch.sigmoid(logits) - xb) / bsz
            db[s : s + k] = g.sum(1)
            dv[s : s + k] = torch.bmm(g.unsqueeze(1), hb).squeeze(1)
            da = hb.mul_(1 - hb).mul_(g.unsqueeze(2) * vb.unsqueeze(1))
            # Suffix sums seeded with R (carried from the later blocks).
            dwt[s + k - 1] = xb[k - 1] @ r
            da[k - 1] += r
            for t in range(k - 2, -1, -1):
                da[t] += da[t + 1]
            dwt[s : s + k - 1] = torch.bmm(xb[:-1].unsqueeze(1), da[1:]).squeeze(1)
            r = da[0].clone()
        if grads:
            self.w.grad, self.v.grad, self.b.grad, self.c.grad = dwt.t().contiguous(), dv, db, r.sum(0)
        return lp

    @torch.no_grad()
    def sample(self, n):
        w_rows = self.w.t().contiguous()
        u = torch.rand(DIM, n).clamp(1e-12, 1 - 1e-7)
        noise = u.log() - (-u).log1p()
        x = torch.zeros(DIM, n)
        a = self.c.unsqueeze(0).repeat(n, 1)
        h = torch.empty_like(a)
        for i in range(DIM):
            torch.sigmoid(a, out=h)
            logit = h.mv(self.v[i]) + self.b[i]
            xi = (logit > noise[i]).float()
            x[i].copy_(xi)
            a.addr_(xi, w_rows[i])
        return x.t().contiguous()


def train(a, model, train_x, test_x):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    stream, last = shuffled_batches(train_x, a.batch_size, a.seed), [float("nan")]

    def step(x):
        opt.zero_grad(set_to_none=True)
        if a.form == "loop":
            loss = -model.log_prob(x).mean()
            loss.backward()
        else:
            loss = -model.blocked(x, a.block, True).mean()
        opt.step()
        return loss.detach()

    def run(k):
        window, n = None, 0
        for s in range(k):
            x = next(stream)
            l = step(x) * x.shape[0]
            window = l if window is None else window + l
            n += x.shape[0]
            if (s + 1) % LOG_EVERY == 0:
                last[0] = (window / n).item()
                window, n = None, 0
        if window is not None:
            last[0] = (window / n).item()

    run(WARMUP_STEPS)
    busy_warning()
    load_before = list(os.getloadavg())
    t = time.perf_counter()
    run(a.steps)
    secs = time.perf_counter() - t
    load_after = list(os.getloadavg())
    with torch.no_grad():
        lp = model.log_prob(test_x) if a.form == "loop" else model.blocked(test_x, a.block, False)
    return secs, load_before, load_after, {
        "steps": a.steps, "warmup_steps": WARMUP_STEPS, "batch_size": a.batch_size,
        "examples_per_sec": a.steps * a.batch_size / secs, "ms_per_step": 1000 * secs / a.steps,
        "gflops": step_flops(a.batch_size, a.hidden) * a.steps / secs / 1e9,
        "train_nll_last_window": last[0], "test_nll_1000": -lp.double().mean().item()}


def sample(a, model):
    model.sample(a.samples)
    busy_warning()
    load_before = list(os.getloadavg())
    t = time.perf_counter()
    mean = 0.0
    for _ in range(a.steps):
        mean += model.sample(a.samples).double().mean().item()
    secs = time.perf_counter() - t
    # Per image and step: the matrix-vector product and the rank-one update, 2·H multiply-adds.
    flops = 4.0 * DIM * a.hidden * a.samples * a.steps
    return secs, load_before, list(os.getloadavg()), {
        "steps": a.steps, "samples": a.samples, "samples_per_sec": a.steps * a.samples / secs,
        "examples_per_sec": a.steps * a.samples / secs, "ms_per_round": 1000 * secs / a.steps,
        "gflops": flops / secs / 1e9, "mean_pixel": mean / a.steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--mode", choices=["train", "sample"], required=True)
    ap.add_argument("--form", choices=["loop", "blocked"], default="loop")
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = data_dir() / "binarized-mnist"
    train_x = read_amat(d / "binarized_mnist_train.amat", 50_000)
    torch.manual_seed(a.seed)
    model = Nade(a.hidden, train_x)
    matmul = matmul_gflops()
    if a.mode == "train":
        test_x = read_amat(d / "binarized_mnist_test.amat", 10_000)[:1000]
        secs, lb, la, res = train(a, model, train_x, test_x)
        name = f"pytorch-{a.form}"
    else:
        secs, lb, la, res = sample(a, model)
        name = "pytorch"
    out = {"impl": name, "mode": a.mode, "form": a.form, "hidden": a.hidden, "threads": a.threads,
           "torch_version": torch.__version__, **res, "matmul_gflops": matmul,
           "matmul_fraction": res["gflops"] / matmul, "seconds": secs, "peak_rss_mb": peak_rss_mb(),
           "loadavg_before": lb, "loadavg_after": la, "env": threading_env()}
    with open(a.json, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"pytorch nade {a.mode}: {json.dumps(out)}")


if __name__ == "__main__":
    main()
