"""PyTorch reference of `bench-rbm` (benches/src/bin/bench-rbm.rs): a 784-500 Bernoulli RBM
trained with CD-k or PCD-k on static binarized MNIST (batch 100, SGD lr 0.05, momentum 0.5,
weight decay 2e-4 on W; W ~ N(0, 0.01^2), visible biases from the training marginals, hidden
biases 0), the training loop written as one would in PyTorch.

    python benches/reference/rbm.py --steps 500 --threads 2 --rule cd --k 1 --json out.json

Hand-written CD gradient with hidden probabilities (positive minus negative statistics), fed
to torch.optim.SGD through .grad. The achieved rate counts (2k + 3) matrix products per CD-k
update and (2k + 4) per PCD-k update, each 2*B*784*500 flops, beside a plain 2048^3 product
timed in the same process. Then the mean squared reconstruction error of 1,000 test images.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir, read_amat, shuffled_batches, timed_steps, timing_fields, write_result  # noqa: E402

DIM = 784


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--rule", choices=["cd", "pcd"], default="cd")
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = data_dir() / "binarized-mnist"
    train = read_amat(d / "binarized_mnist_train.amat", 50_000)
    torch.manual_seed(a.seed)
    p = train.double().mean(0).clamp(1e-3, 1 - 1e-3)
    W = (torch.randn(DIM, a.hidden) * 0.01).requires_grad_()
    b = torch.logit(p).float().requires_grad_()
    c = torch.zeros(a.hidden).requires_grad_()
    opt = torch.optim.SGD([W, b, c], lr=0.05, momentum=0.5)
    chains = torch.bernoulli(torch.sigmoid(b.detach()).expand(a.batch_size, DIM))
    stream = shuffled_batches(train, a.batch_size, a.seed)

    @torch.no_grad()
    def update(v0):
        nonlocal chains
        ph0 = torch.sigmoid(v0 @ W + c)
        if a.rule == "cd":
            h = torch.bernoulli(ph0)
            for i in range(a.k):
                v = torch.bernoulli(torch.sigmoid(h @ W.t() + b))
                ph = torch.sigmoid(v @ W + c)
                if i + 1 < a.k:
                    h = torch.bernoulli(ph)
        else:
            v = chains
            for _ in range(a.k):
                h = torch.bernoulli(torch.sigmoid(v @ W + c))
                v = torch.bernoulli(torch.sigmoid(h @ W.t() + b))
            chains = v
            ph = torch.sigmoid(v @ W + c)
        n0, nk = v0.shape[0], v.shape[0]
        W.grad = v.t() @ ph / nk - v0.t() @ ph0 / n0 + 2e-4 * W
        b.grad = v.mean(0) - v0.mean(0)
        c.grad = ph.mean(0) - ph0.mean(0)
        opt.step()

    timed = timed_steps(update, stream, a.steps)
    products = 2 * a.k + 3 if a.rule == "cd" else 2 * a.k + 4
    flops = products * 2.0 * a.batch_size * DIM * a.hidden
    test = read_amat(d / "binarized_mnist_test.amat", 10_000)[:1000]
    with torch.no_grad():
        recon = torch.sigmoid(torch.sigmoid(test @ W + c) @ W.t() + b)
        err = (recon - test).double().pow(2).sum(1).mean().item()
    out = {"impl": "pytorch", "rule": a.rule, "k": a.k, "hidden": a.hidden, "threads": a.threads,
           "test_recon_err_1000": err, **timing_fields(timed, a.batch_size, flops)}
    write_result(a.json, "pytorch rbm", out)


if __name__ == "__main__":
    main()
