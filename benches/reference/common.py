"""What the PyTorch references share: gm's data cache, the binarized-MNIST reader, the
step constants of gm_benches, the in-process matmul rate, peak RSS and the load average."""

import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path

# The private venv has torch without NumPy, which nothing here needs.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402

WARMUP_STEPS = 20  # gm_benches::WARMUP_STEPS
LOG_EVERY = 20  # gm_benches::LOG_EVERY
DIM = 784
# gm_benches::THREADING_ENV: recorded with the result when set.
THREADING_ENV = ["OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY"]


def data_dir() -> Path:
    d = os.environ.get("GM_DATA_DIR")
    if d:
        return Path(d)
    xdg = os.environ.get("XDG_CACHE_HOME")
    cache = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return cache / "gm" / "datasets"


def read_amat(path: Path, rows: int) -> torch.Tensor:
    """A binarized-MNIST .amat file (rows of 784 space-separated 0/1) as float32 [rows, 784].

    Every value is a single character '0' or '1', so the digits are the bytes that are one of
    those two; no text parsing is needed.
    """
    if not path.exists():
        sys.exit(f"{path} is missing: run `cargo xtask data binarized-mnist`")
    buf = bytearray(path.stat().st_size)
    with open(path, "rb") as f:
        f.readinto(buf)
    raw = torch.frombuffer(buf, dtype=torch.uint8)
    digits = raw[raw > ord(" ")]  # drop the spaces and newlines
    if digits.numel() != rows * DIM or bool(((digits != ord("0")) & (digits != ord("1"))).any()):
        sys.exit(f"{path}: expected {rows} rows of {DIM} values 0 or 1")
    return (digits - ord("0")).to(torch.float32).view(rows, DIM)


def shuffled_batches(x, batch_size, seed):
    """Endless batches of the rows of x, a new permutation every epoch."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(x.shape[0], generator=gen)
        for s in range(0, x.shape[0], batch_size):
            yield x.index_select(0, order[s : s + batch_size])


def matmul_gflops(n=2048):
    """GFLOP/s of a plain n^3 float32 product in this process, best of five (gm_benches::matmul_gflops)."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def peak_rss_mb():
    """Peak RSS in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def busy_warning():
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    if load > cores:
        print(f"warning: load average {load:.1f} on {cores} cores: other work competes for the CPU "
              "and these timings are not reliable (OMP_WAIT_POLICY=passive steadies them)", file=sys.stderr)


def threading_env():
    return {k: os.environ[k] for k in THREADING_ENV if k in os.environ}


def timed_steps(update, stream, steps):
    """WARMUP_STEPS untimed calls of update(next(stream)), the matmul rate, then `steps` timed
    calls: a dict of the timing (steps, seconds, matmul GFLOP/s, load averages)."""
    for _ in range(WARMUP_STEPS):
        update(next(stream))
    matmul = matmul_gflops(2048)
    busy_warning()
    load_before = list(os.getloadavg())
    t = time.perf_counter()
    for _ in range(steps):
        update(next(stream))
    secs = time.perf_counter() - t
    return {"steps": steps, "seconds": secs, "matmul_gflops": matmul,
            "loadavg_before": load_before, "loadavg_after": list(os.getloadavg())}


def timing_fields(timed, batch_size, flops_per_step):
    """The fields every bench's JSON shares (gm_benches::TimedSteps::json)."""
    secs, steps = timed["seconds"], timed["steps"]
    gflops = flops_per_step * steps / secs / 1e9
    return {
        "steps": steps, "warmup_steps": WARMUP_STEPS, "batch_size": batch_size,
        "seconds": secs, "ms_per_step": 1000 * secs / steps,
        "examples_per_sec": steps * batch_size / secs, "gflops": gflops,
        "matmul_gflops": timed["matmul_gflops"], "matmul_fraction": gflops / timed["matmul_gflops"],
        "peak_rss_mb": peak_rss_mb(), "torch_version": torch.__version__,
        "loadavg_before": timed["loadavg_before"], "loadavg_after": timed["loadavg_after"],
    }


def write_result(path, label, out):
    """Writes the result JSON to `path` and prints it after `label`."""
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"{label}: {json.dumps(out)}")
