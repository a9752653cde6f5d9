#!/usr/bin/env python3
"""PyTorch reference of gm's `bench-vae`: the same VAE, trained the same way, timed the same way.

With --iw-samples K > 1 it is the IWAE of Burda et al. (2015) with the same networks: the
encoder once, K draws z ~ q(z|x) of shape [K, B, 50], the decoder on all of them, log weights
log p(x|z) + log p(z) - log q(z|x), loss = -mean over the batch of (logsumexp over K - log K);
the test metrics are the K-sample ELBO estimate (mean log weight) and the bound L_K.

Model (as configs/vae-binarized-mnist.toml and gm_vae::vae): encoder 784-200-200 (tanh) and one
linear head 200 -> 100 giving (mu, log sigma^2); decoder 50-200-200 (tanh) -> 784 Bernoulli
logits; weights initialised as gm's (tch's default: Kaiming-uniform for ReLU gain, bound
sqrt(6 / fan_in)), biases as nn.Linear's; loss = mean over the batch of
BCE-with-logits summed over pixels + analytic KL(q(z|x) || N(0, I)); Adam(lr=1e-3, eps=1e-4)
with PyTorch's default implementation choice. Data: Larochelle's statically binarized MNIST
from gm's cache ($GM_DATA_DIR, else ${XDG_CACHE_HOME:-~/.cache}/gm/datasets), shuffled batches
every epoch. After WARMUP_STEPS untimed steps, --steps steps are timed; every LOG_EVERY steps the
accumulated loss is read back to the host (as gm's trainer does). Then the test ELBO (one z per
example) is averaged over the 10,000 test examples in batches of 1000.

    python benches/reference/vae.py --steps 2000 --threads 2 --json out.json

Writes one JSON object with the keys `cargo xtask bench` requires (see xtask/src/bench.rs).
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (DIM, LOG_EVERY, THREADING_ENV, WARMUP_STEPS, data_dir, matmul_gflops,  # noqa: E402,F401
                    peak_rss_mb, read_amat)

HIDDEN, LATENT = 200, 50
LOG_2PI = math.log(2 * math.pi)
EVAL_BATCH = 1000


def flops_per_example(k=1):
    """Forward multiply-adds of the encoder once and the decoder k times, x2 for flops, x3 for
    forward + backward."""
    encoder = [(DIM, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 2 * LATENT)]
    decoder = [(LATENT, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, DIM)]
    return 3 * 2 * (sum(i * o for i, o in encoder) + k * sum(i * o for i, o in decoder))


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Linear(DIM, HIDDEN)
        self.enc2 = nn.Linear(HIDDEN, HIDDEN)
        self.enc_head = nn.Linear(HIDDEN, 2 * LATENT)  # mu and log sigma^2 in one matmul
        self.dec1 = nn.Linear(LATENT, HIDDEN)
        self.dec2 = nn.Linear(HIDDEN, HIDDEN)
        self.dec_head = nn.Linear(HIDDEN, DIM)
        # Same weight initialisation as gm (tch's nn::linear default), so that the ELBOs
        # reached after the same number of steps are comparable.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")

    def encode(self, x):
        h = torch.tanh(self.enc2(torch.tanh(self.enc1(x))))
        mu, log_var = self.enc_head(h).chunk(2, dim=1)
        return mu, log_var

    def decode(self, z):
        return self.dec_head(torch.tanh(self.dec2(torch.tanh(self.dec1(z)))))

    def forward(self, x):
        """Per-example reconstruction term -log p(x|z) and KL, each [B]."""
        mu, log_var = self.encode(x)
        std = torch.exp(0.5 * log_var)
        z = mu + std * torch.randn_like(std)
        logits = self.decode(z)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        kl = 0.5 * (mu.square() + log_var.exp() - log_var - 1.0).sum(1)
        return rec, kl

    def log_weights(self, x, k):
        """log p(x, z) - log q(z|x) for k draws of z per example, [k, B]."""
        mu, log_var = self.encode(x)
        eps = torch.randn((k,) + mu.shape)
        z = mu + torch.exp(0.5 * log_var) * eps
        logits = self.decode(z)
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        log_pz = -0.5 * (z.square() + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.square() + log_var + LOG_2PI).sum(-1)
        return log_px + log_pz - log_qz


def iwae_bound(lw):
    """L_k per example from log weights [k, B]."""
    return torch.logsumexp(lw, 0) - math.log(lw.shape[0])


def adam_implementation(params) -> str:
    """Which Adam PyTorch picks by default for these parameters (for the record)."""
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach

        fused, foreach = _default_to_fused_or_foreach(list(params), differentiable=False, use_fused=False)
        return "fused" if fused else ("foreach" if foreach else "single-tensor (for-loop)")
    except Exception:  # private helper: absent or changed in some version
        return "default"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--dataset", default="binarized-mnist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iw-samples", type=int, default=1)
    a = p.parse_args()
    if a.dataset != "binarized-mnist":
        sys.exit("the reference reads binarized-mnist only")
    if a.steps <= 0 or a.threads <= 0 or a.batch_size <= 0 or a.iw_samples <= 0:
        sys.exit("--steps, --threads, --batch-size and --iw-samples must be positive")
    k = a.iw_samples
    torch.set_num_threads(a.threads)
    matmul = matmul_gflops()

    t0 = time.perf_counter()
    d = data_dir() / "binarized-mnist"
    train = read_amat(d / "binarized_mnist_train.amat", 50_000)
    test = read_amat(d / "binarized_mnist_test.amat", 10_000)
    load_seconds = time.perf_counter() - t0

    torch.manual_seed(a.seed)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4)
    gen = torch.Generator().manual_seed(a.seed)

    def batches():
        epoch = 0
        n = train.shape[0]
        while True:
            order = torch.randperm(n, generator=gen)
            for s in range(0, n, a.batch_size):
                yield epoch, train.index_select(0, order[s : s + a.batch_size])
            epoch += 1

    def step(x):
        if k > 1:
            loss = -iwae_bound(model.log_weights(x, k)).mean()
        else:
            rec, kl = model(x)
            loss = (rec + kl).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    stream = batches()
    window, window_n, steps, last_loss, epoch = None, 0, 0, float("nan"), 0

    def run(k):
        nonlocal window, window_n, steps, last_loss, epoch
        examples = 0
        for _ in range(k):
            epoch, x = next(stream)
            nb = x.shape[0]
            loss = step(x) * nb
            window = loss if window is None else window + loss
            window_n += nb
            examples += nb
            steps += 1
            if steps % LOG_EVERY == 0:
                last_loss = (window / window_n).item()
                if not torch.isfinite(torch.tensor(last_loss)):
                    sys.exit(f"training loss is {last_loss} after step {steps}")
                window, window_n = None, 0
        if window is not None:
            last_loss = (window / window_n).item()
            window, window_n = None, 0
        return examples

    model.train()
    run(WARMUP_STEPS)
    cores = len(os.sched_getaffinity(0))
    if os.getloadavg()[0] > cores:
        print(
            f"warning: load average {os.getloadavg()[0]:.1f} on {cores} cores: other work competes "
            "for the CPU and these timings are not reliable (OMP_WAIT_POLICY=passive steadies them)",
            file=sys.stderr,
        )
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    examples = run(a.steps)
    seconds = time.perf_counter() - start
    load_after = list(os.getloadavg())

    t_eval = time.perf_counter()
    torch.manual_seed(a.seed + 1)
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    total_iwae = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for s in range(0, test.shape[0], EVAL_BATCH):
            x = test[s : s + EVAL_BATCH]
            if k > 1:
                lw = model.log_weights(x, k)
                total += lw.mean(0).sum(dtype=torch.float64)
                total_iwae += iwae_bound(lw).sum(dtype=torch.float64)
            else:
                rec, kl = model(x)
                total += (-(rec + kl)).sum(dtype=torch.float64)
    test_elbo = (total / test.shape[0]).item()
    test_iwae = (total_iwae / test.shape[0]).item()
    eval_seconds = time.perf_counter() - t_eval

    peak = peak_rss_mb()
    result = {
        "impl": "pytorch",
        "steps": a.steps,
        "warmup_steps": WARMUP_STEPS,
        "batch_size": a.batch_size,
        "threads": a.threads,
        "seconds": seconds,
        "ms_per_step": 1000.0 * seconds / a.steps,
        "examples_per_sec": examples / seconds,
        "gflops": examples * flops_per_example(k) / seconds / 1e9,
        "matmul_gflops": matmul,
        "test_elbo": test_elbo,
        "test_examples": test.shape[0],
        "eval_seconds": eval_seconds,
        "train_loss_last_window": last_loss,
        "epochs_touched": epoch + 1,
        "load_seconds": load_seconds,
        "peak_rss_mb": peak,
        "dataset": "binarized-mnist",
        "binarization": "static-file",
        "iw_samples": k,
        "model": (f"iwae k={k} 784-200-200-50 tanh, Bernoulli decoder" if k > 1
                  else "vae 784-200-200-50 tanh, Bernoulli decoder, analytic KL"),
        "optimizer": {
            "kind": "adam",
            "lr": 1e-3,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-4,
            "implementation": adam_implementation(model.parameters()),
        },
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "env": {k: os.environ[k] for k in THREADING_ENV if k in os.environ},
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
    }
    if k > 1:
        result["test_iwae"] = test_iwae
    a.json.write_text(json.dumps(result, indent=2) + "\n")
    bound = f", L_{k} {test_iwae:.2f}" if k > 1 else ""
    print(
        f"pytorch {'iwae' if k > 1 else 'vae'}: {a.steps} steps x {a.batch_size} in {seconds:.2f}s "
        f"({examples / seconds:.0f} examples/s, {1000.0 * seconds / a.steps:.2f} ms/step), "
        f"test ELBO {test_elbo:.2f}{bound} nats, peak RSS {peak:.0f} MB, {a.threads} threads"
    )


if __name__ == "__main__":
    main()
