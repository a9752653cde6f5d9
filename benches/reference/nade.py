"""PyTorch reference of `bench-nade` (benches/src/bin/bench-nade.rs): NADE 784-500 (sigmoid
hidden units, identity ordering) on static binarized MNIST, written as one would in PyTorch.

    python benches/reference/nade.py --steps 200 --threads 2 --mode train --json out.json
    python benches/reference/nade.py --steps 5 --threads 2 --mode sample --json out.json

The forward pass is the O(DH) running sum (an exclusive cumulative sum of W[:, j] x_j along
the ordering), as in gm. Training: Adam lr 1e-3 (torch defaults otherwise), batch 100,
`WARMUP_STEPS` untimed steps, then the timed ones; then the exact NLL of the first 1,000
test images. Sampling: `--steps` rounds of `--samples` images, 784 sequential steps each,
batched over the images, with the same per-step operations as gm (sigmoid, matrix-vector
product, logistic-noise threshold, rank-one update of the running pre-activation).
"""

import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vae import LOG_EVERY, WARMUP_STEPS, data_dir, read_amat  # noqa: E402

DIM = 784


class Nade(nn.Module):
    def __init__(self, hidden, train):
        super().__init__()
        p = train.double().mean(0).clamp(1e-3, 1 - 1e-3)
        self.w = nn.Parameter(torch.randn(hidden, DIM) / DIM**0.5)
        self.v = nn.Parameter(torch.randn(DIM, hidden) / hidden**0.5)
        self.b = nn.Parameter((p.log() - (-p).log1p()).float())
        self.c = nn.Parameter(torch.zeros(hidden))

    def log_prob(self, x):
        x_prev = F.pad(x[:, :-1], (1, 0))
        w_prev = F.pad(self.w[:, :-1], (1, 0))
        a = (x_prev.unsqueeze(2) * w_prev.t().unsqueeze(0)).cumsum(1) + self.c
        logits = (torch.sigmoid(a) * self.v.unsqueeze(0)).sum(-1) + self.b
        return (x * logits - F.softplus(logits)).sum(-1)

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--mode", choices=["train", "sample"], required=True)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = data_dir() / "binarized-mnist"
    train = read_amat(d / "binarized_mnist_train.amat", 50_000)
    torch.manual_seed(a.seed)
    model = Nade(a.hidden, train)
    out = {"impl": "pytorch", "mode": a.mode, "hidden": a.hidden, "threads": a.threads,
           "torch_version": torch.__version__}
    if a.mode == "train":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(a.seed)

        def batches():
            while True:
                order = torch.randperm(train.shape[0], generator=gen)
                for s in range(0, train.shape[0], a.batch_size):
                    yield train.index_select(0, order[s : s + a.batch_size])

        stream = batches()
        last = [float("nan")]

        def run(k):
            window, n = None, 0
            for s in range(k):
                x = next(stream)
                loss = -model.log_prob(x).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                l = loss.detach() * x.shape[0]
                window = l if window is None else window + l
                n += x.shape[0]
                if (s + 1) % LOG_EVERY == 0:
                    last[0] = (window / n).item()
                    window, n = None, 0
            if window is not None:
                last[0] = (window / n).item()

        run(WARMUP_STEPS)
        load_before = list(os.getloadavg())
        t = time.perf_counter()
        run(a.steps)
        secs = time.perf_counter() - t
        load_after = list(os.getloadavg())
        test = read_amat(d / "binarized_mnist_test.amat", 10_000)[:1000]
        with torch.no_grad():
            nll = -model.log_prob(test).double().mean().item()
        out.update({"steps": a.steps, "warmup_steps": WARMUP_STEPS, "batch_size": a.batch_size,
                    "examples_per_sec": a.steps * a.batch_size / secs,
                    "ms_per_step": 1000 * secs / a.steps, "train_nll_last_window": last[0],
                    "test_nll_1000": nll})
    else:
        model.sample(a.samples)
        load_before = list(os.getloadavg())
        t = time.perf_counter()
        mean = 0.0
        for _ in range(a.steps):
            mean += model.sample(a.samples).double().mean().item()
        secs = time.perf_counter() - t
        load_after = list(os.getloadavg())
        out.update({"steps": a.steps, "samples": a.samples,
                    "samples_per_sec": a.steps * a.samples / secs,
                    "ms_per_round": 1000 * secs / a.steps, "mean_pixel": mean / a.steps})
    out.update({"seconds": secs, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "loadavg_before": load_before, "loadavg_after": load_after})
    with open(a.json, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"pytorch nade {a.mode}: {json.dumps(out)}")


if __name__ == "__main__":
    main()
