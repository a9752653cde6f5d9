"""All-reduce (sum) of a float32 buffer on PyTorch's own c10d Gloo backend, as
torch.distributed users run it: launched by torchrun, one thread per process.

    torchrun --nproc-per-node 2 benches/reference/allreduce.py --numel 425284 --json out.json

Writes (rank 0) the mean milliseconds of one all-reduce of --numel floats and of one int64.
"""
import argparse
import json
import time

import torch
import torch.distributed as dist


def timed(t, reps):
    for _ in range(10):
        dist.all_reduce(t)
    start = time.perf_counter()
    for _ in range(reps):
        dist.all_reduce(t)
    return (time.perf_counter() - start) / reps * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--numel", type=int, required=True)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--json", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    big = timed(torch.randn(a.numel), a.reps)
    small = timed(torch.zeros(1, dtype=torch.int64), a.reps)
    if dist.get_rank() == 0:
        with open(a.json, "w") as f:
            json.dump({"impl": "pytorch-gloo", "world": dist.get_world_size(),
                       "numel": a.numel, "ms_allreduce": big, "ms_allreduce_int64": small}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
