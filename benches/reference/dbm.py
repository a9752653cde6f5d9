"""PyTorch reference of `bench-dbm` (benches/src/bin/bench-dbm.rs): a 784-500-1000 deep
Boltzmann machine trained by Algorithm 20.1 on static binarized MNIST (batch 100, 100
persistent chains, 5 block-Gibbs sweeps, SGD lr 0.005, momentum 0.9, weight decay 2e-4 on
the weights; W ~ N(0, 0.01^2), visible biases from the training marginals, hidden biases 0),
the training loop written as one would in PyTorch.

    python benches/reference/dbm.py --steps 100 --threads 1 --json out.json

Mean field: an up pass, then a fixed --mf-iters iterations of mu1 = sigmoid(v W1 + mu2 W2^T
+ b1), mu2 = sigmoid(mu1 W2 + b2) with the convergence test a user writes (max |change| of
mu1 below a tolerance, here out of reach). Hand-written gradients (negative minus positive
statistics) fed to torch.optim.SGD through .grad. The achieved rate counts the products
this loop performs, 2*B*m*n flops each, beside a plain 2048^3 product timed in the same
process. Then the mean-field reconstruction error of 1,000 test images.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir, read_amat, shuffled_batches, timed_steps, timing_fields, write_result  # noqa: E402

SIZES = (784, 500, 1000)
BATCH = 100


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--mf-iters", type=int, default=10)
    ap.add_argument("--gibbs-steps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = data_dir() / "binarized-mnist"
    train = read_amat(d / "binarized_mnist_train.amat", 50_000)
    torch.manual_seed(a.seed)
    n0, n1, n2 = SIZES
    p = train.double().mean(0).clamp(1e-3, 1 - 1e-3)
    W1 = (torch.randn(n0, n1) * 0.01).requires_grad_()
    W2 = (torch.randn(n1, n2) * 0.01).requires_grad_()
    b0 = torch.logit(p).float().requires_grad_()
    b1 = torch.zeros(n1).requires_grad_()
    b2 = torch.zeros(n2).requires_grad_()
    opt = torch.optim.SGD([W1, W2, b0, b1, b2], lr=0.005, momentum=0.9)
    x0 = torch.bernoulli(torch.sigmoid(b0.detach()).expand(BATCH, n0))
    x1 = torch.bernoulli(torch.full((BATCH, n1), 0.5))
    x2 = torch.bernoulli(torch.full((BATCH, n2), 0.5))
    stream = shuffled_batches(train, BATCH, a.seed)

    def mean_field(v):
        mu1 = torch.sigmoid(v @ W1 + b1)
        mu2 = torch.sigmoid(mu1 @ W2 + b2)
        it = 0
        while True:
            new1 = torch.sigmoid(v @ W1 + mu2 @ W2.t() + b1)
            if (new1 - mu1).abs().max().item() < 1e-30 or it == a.mf_iters:
                return mu1, mu2
            mu1 = new1
            mu2 = torch.sigmoid(mu1 @ W2 + b2)
            it += 1

    @torch.no_grad()
    def update(v):
        nonlocal x0, x1, x2
        mu1, mu2 = mean_field(v)
        for _ in range(a.gibbs_steps):
            x0 = torch.bernoulli(torch.sigmoid(x1 @ W1.t() + b0))
            x2 = torch.bernoulli(torch.sigmoid(x1 @ W2 + b2))
            x1 = torch.bernoulli(torch.sigmoid(x0 @ W1 + x2 @ W2.t() + b1))
        W1.grad = x0.t() @ x1 / BATCH - v.t() @ mu1 / BATCH + 2e-4 * W1
        W2.grad = x1.t() @ x2 / BATCH - mu1.t() @ mu2 / BATCH + 2e-4 * W2
        b0.grad = x0.mean(0) - v.mean(0)
        b1.grad = x1.mean(0) - mu1.mean(0)
        b2.grad = x2.mean(0) - mu2.mean(0)
        opt.step()

    timed = timed_steps(update, stream, a.steps)
    ab, bc = n0 * n1, n1 * n2
    # up pass; per iteration v W1, mu2 W2^T, mu1 W2; the last test's v W1 + mu2 W2^T;
    # four products per sweep; two per phase for the statistics
    products = (ab + bc) + a.mf_iters * (ab + 2 * bc) + (ab + bc) + a.gibbs_steps * 2 * (ab + bc) + 2 * (ab + bc)
    test = read_amat(d / "binarized_mnist_test.amat", 10_000)[:1000]
    with torch.no_grad():
        mu1, _ = mean_field(test)
        recon = torch.sigmoid(mu1 @ W1.t() + b0)
        err = (recon - test).double().pow(2).sum(1).mean().item()
    out = {"impl": "pytorch", "sizes": list(SIZES), "mf_iters": a.mf_iters, "gibbs_steps": a.gibbs_steps,
           "threads": a.threads, "test_recon_err_1000": err,
           **timing_fields(timed, BATCH, 2.0 * BATCH * products)}
    write_result(a.json, "pytorch dbm", out)


if __name__ == "__main__":
    main()
