//! One process-wide lock around libtorch's global random generator, for tests.
//!
//! Tests run in parallel threads of one process and libtorch has one global generator: a
//! test that seeds it and checks the draws that follow is disturbed by any other test that
//! draws meanwhile (random tensors, random initialisation of a model, a training step).
//! Every test of every gm crate that seeds or draws goes through this module, so they take
//! turns:
//!
//! ```
//! let _rng = gm_core::rng_guard::seeded(7); // held until the end of the test
//! let a = tch::Tensor::randn([3], (tch::Kind::Float, tch::Device::Cpu));
//! ```
//!
//! The lock is re-entrant on one thread: a helper that takes it inside a test that already
//! holds it does not deadlock.

use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};

static LOCK: Mutex<()> = Mutex::new(());

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Holds the generator lock until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct RngGuard {
    _outer: Option<MutexGuard<'static, ()>>,
}

impl Drop for RngGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Takes the lock (waiting for other threads' tests to release it).
pub fn lock() -> RngGuard {
    let depth = DEPTH.with(|d| d.get());
    let outer = (depth == 0).then(|| LOCK.lock().unwrap_or_else(|e| e.into_inner()));
    DEPTH.with(|d| d.set(depth + 1));
    RngGuard { _outer: outer }
}

/// Takes the lock and seeds libtorch's generator (CPU and CUDA) with `seed`.
pub fn seeded(seed: i64) -> RngGuard {
    let g = lock();
    tch::manual_seed(seed);
    g
}

/// Whether this thread holds the lock.
pub fn held() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn reentrant_and_released_on_drop() {
        let a = seeded(3);
        assert!(held());
        {
            let _b = lock();
            assert!(held());
        }
        assert!(held());
        drop(a);
        assert!(!held());
    }

    #[test]
    fn seeded_draws_repeat_while_other_threads_wait() {
        let draw = || {
            let _g = seeded(5);
            std::thread::sleep(std::time::Duration::from_millis(2));
            Vec::<f32>::try_from(Tensor::randn([64], (Kind::Float, Device::Cpu))).unwrap()
        };
        let first = draw();
        let noise = std::thread::spawn(move || {
            for _ in 0..50 {
                let _g = lock();
                let _ = Tensor::rand([16], (Kind::Float, Device::Cpu));
            }
        });
        for _ in 0..20 {
            assert_eq!(draw(), first);
        }
        noise.join().unwrap();
    }
}
