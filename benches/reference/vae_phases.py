#!/usr/bin/env python3
"""Where a PyTorch VAE training step spends its time: forward, backward, Adam, timed apart.

The PyTorch side of `cargo run --release -p gm-benches --example vae_phases`: the model of
vae.py on random binary data, batch 100. A profiling aid, not a benchmark of record.

    python benches/reference/vae_phases.py [steps] [threads] [--profile]

With --profile, also prints torch.profiler's table of ATen operators (counts and self time)
for 20 steps.
"""

import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from vae import VAE  # noqa: E402

B = 100


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    steps = int(args[0]) if args else 300
    threads = int(args[1]) if len(args) > 1 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = (torch.rand(B, 784) < 0.5).float()
    model = VAE()
    results = {}
    for foreach in (None, True):
        torch.manual_seed(0)
        model = VAE()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4, foreach=foreach)
        f = b = o = 0.0
        for i in range(steps + 20):
            t0 = time.perf_counter()
            rec, kl = model(x)
            loss = (rec + kl).mean()
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if i >= 20:
                f, b, o = f + t1 - t0, b + t2 - t1, o + t3 - t2
        results[foreach] = [1000 * v / steps for v in (f, b, o)]
    print(f"threads {threads}, batch {B}, {steps} steps (ms per step)")
    f, b, o = results[None]
    print(f"  forward                            {f:8.3f}")
    print(f"  zero_grad + backward               {b:8.3f}")
    print(f"  Adam (default: for-loop)           {o:8.3f}")
    print(f"  sum                                {f + b + o:8.3f}")
    print(f"  Adam (foreach=True)                {results[True][2]:8.3f}")
    if "--profile" in sys.argv:
        from torch.profiler import ProfilerActivity, profile

        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(20):
                rec, kl = model(x)
                loss = (rec + kl).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40))


if __name__ == "__main__":
    main()
