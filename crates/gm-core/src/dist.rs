//! Data-parallel training across processes: the [`Collective`] a backend provides (gm-dist's
//! Gloo process group), the process group installed for this process, and the shard of each
//! global batch this rank works on.
//!
//! With no group installed (the default) every function here is the single-process
//! identity, so models and the trainer call them unconditionally. With one installed:
//! - the trainer gives each rank rows `[n·r/W, n·(r+1)/W)` of every global batch of `n`
//!   ([`Shard`]) and sets it for the step ([`with_shard`]);
//! - [`crate::optim::Optimizer`] all-reduces the gradients (autograd's or hand-written
//!   statistics alike) in one flat buffer, each rank's weighted by its share of the batch,
//!   so that a mean over the global batch is reproduced exactly;
//! - draws with one row per example ([`randn_rows`], [`crate::sampling::bernoulli::sample`])
//!   take this rank's rows of the draw a single process would make for the whole batch, so
//!   N steps on W processes end with the weights of N steps on one (to rounding).
//!
//! Every rank seeds libtorch identically each step, so draws that are not per example
//! (persistent chains, noise of a fixed size) are the same on every rank.

use crate::{Error, Result};
use std::cell::Cell;
use std::sync::OnceLock;
use tch::{Kind, Tensor};

/// The collective operations data-parallel training needs, on CPU tensors (contiguous).
pub trait Collective: Send + Sync {
    /// This process' rank, `0..world()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn world(&self) -> usize;
    /// `t` ← Σ over ranks of `t`, in place.
    fn all_reduce_sum(&self, t: &Tensor) -> Result<()>;
    /// `t` ← max over ranks of `t`, in place.
    fn all_reduce_max(&self, t: &Tensor) -> Result<()>;
    /// `t` ← rank `root`'s `t`, in place.
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<()>;
    /// Every rank's `t` stacked along a new first dimension (rank order).
    fn all_gather(&self, t: &Tensor) -> Result<Tensor>;
}

static GROUP: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// Makes `group` this process' group (once per process).
pub fn install(group: Box<dyn Collective>) -> Result<()> {
    GROUP
        .set(group)
        .map_err(|_| Error::Msg("a process group is already installed".into()))
}

thread_local! {
    static ALONE: Cell<bool> = const { Cell::new(false) };
}

/// The installed group, when this process is one of several (and not inside [`alone`]).
pub fn group() -> Option<&'static dyn Collective> {
    if ALONE.with(|a| a.get()) {
        return None;
    }
    GROUP.get().map(|g| g.as_ref()).filter(|g| g.world() > 1)
}

/// Runs `f` as if this process were the only one (rank 0's own work: validation, sample
/// grids, files), so that nothing in it waits for ranks that do not run it.
pub fn alone<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            ALONE.with(|a| a.set(self.0));
        }
    }
    let _reset = Reset(ALONE.with(|a| a.replace(true)));
    f()
}

/// This process' rank (0 without a group).
pub fn rank() -> usize {
    group().map_or(0, |g| g.rank())
}

/// The number of processes (1 without a group).
pub fn world() -> usize {
    group().map_or(1, |g| g.world())
}

/// Whether this process writes files (metrics, samples, checkpoints): rank 0.
pub fn is_main() -> bool {
    rank() == 0
}

/// This rank's rows of a global batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// First row.
    pub offset: i64,
    /// Rows.
    pub len: i64,
    /// Rows of the global batch.
    pub global: i64,
}

impl Shard {
    /// Rank `rank` of `world`'s rows of a batch of `n`: `[n·r/W, n·(r+1)/W)`.
    pub fn of(n: i64, rank: usize, world: usize) -> Shard {
        let (r, w) = (rank as i64, world as i64);
        let offset = n * r / w;
        Shard {
            offset,
            len: n * (r + 1) / w - offset,
            global: n,
        }
    }

    /// This rank's share of the batch, `len / global`.
    pub fn weight(&self) -> f64 {
        self.len as f64 / self.global as f64
    }
}

thread_local! {
    static SHARD: Cell<Option<Shard>> = const { Cell::new(None) };
}

/// Runs `f` with `shard` as the current step's shard (see [`current_shard`]).
pub fn with_shard<R>(shard: Shard, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Shard>);
    impl Drop for Reset {
        fn drop(&mut self) {
            SHARD.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(SHARD.with(|s| s.replace(Some(shard))));
    f()
}

/// The shard of the step in progress, when the trainer runs one on several processes.
pub fn current_shard() -> Option<Shard> {
    SHARD.with(|s| s.get()).filter(|s| s.len != s.global)
}

/// The current shard when a draw of `size` has one row per example of it.
pub fn shard_for(size: &[i64]) -> Option<Shard> {
    current_shard().filter(|s| size.first() == Some(&s.len))
}

/// Standard normal draws of `size`; with one row per example of a sharded step, this
/// rank's rows of the draw for the whole batch.
pub fn randn_rows(size: &[i64], options: (Kind, tch::Device)) -> Tensor {
    draw_rows(size, options, |s, o| Tensor::randn(s, o))
}

/// `draw` of `size`, or, in a sharded step with one row per example, this rank's rows of
/// `draw` for the whole batch.
fn draw_rows(
    size: &[i64],
    options: (Kind, tch::Device),
    draw: fn(&[i64], (Kind, tch::Device)) -> Tensor,
) -> Tensor {
    match shard_for(size) {
        Some(s) => {
            let mut global = size.to_vec();
            global[0] = s.global;
            draw(global.as_slice(), options).narrow(0, s.offset, s.len)
        }
        None => draw(size, options),
    }
}

/// Uniform [0, 1) draws of `size`; with one row per example of a sharded step, this rank's
/// rows of the draw for the whole batch (as [`randn_rows`]).
pub fn rand_rows(size: &[i64], options: (Kind, tch::Device)) -> Tensor {
    draw_rows(size, options, |s, o| Tensor::rand(s, o))
}

/// [`randn_rows`] of `t`'s size and kind.
pub fn randn_rows_like(t: &Tensor) -> Tensor {
    randn_rows(&t.size(), (t.kind(), t.device()))
}

/// Averages `grads` over the ranks, each rank's weighted by its share of the global batch
/// (one all-reduce of a flat copy); the identity without a sharded step.
pub fn average_gradients(grads: &[Tensor]) -> Result<Vec<Tensor>> {
    let (Some(g), Some(shard)) = (group(), current_shard()) else {
        return Ok(grads.iter().map(|t| t.shallow_clone()).collect());
    };
    let mut flat = Tensor::f_cat(
        &grads
            .iter()
            .map(|t| t.reshape([-1]).to_device(tch::Device::Cpu))
            .collect::<Vec<_>>(),
        0,
    )?;
    let _ = flat.f_mul_scalar_(shard.weight())?;
    g.all_reduce_sum(&flat)?;
    let mut offset = 0;
    Ok(grads
        .iter()
        .map(|t| {
            let n = t.numel() as i64;
            let part = flat.narrow(0, offset, n).view(t.size().as_slice());
            offset += n;
            part.to_device(t.device())
        })
        .collect())
}

/// Σ over ranks of `t` (a copy; `t` itself without a group).
pub fn sum(t: &Tensor) -> Result<Tensor> {
    let Some(g) = group() else {
        return Ok(t.shallow_clone());
    };
    let c = t.to_device(tch::Device::Cpu).contiguous().copy();
    g.all_reduce_sum(&c)?;
    Ok(c.to_device(t.device()))
}

/// Every rank's `local` values (its [`Shard`] of `global` rows each) in rank order: the
/// values a single process would have for all `global` rows. `local` itself without a group.
pub fn gather_rows(local: &[f64], global: i64) -> Result<Vec<f64>> {
    let all = gather_tensor_rows(&Tensor::from_slice(local), global)?;
    Ok(Vec::<f64>::try_from(&all)?)
}

/// Every rank's `t` (host copies of one shape on every rank) stacked along a new first
/// dimension in rank order; `t` unsqueezed without a group.
pub fn gather_all(t: &Tensor) -> Result<Tensor> {
    match group() {
        None => Ok(t.unsqueeze(0)),
        Some(g) => g.all_gather(&t.to_device(tch::Device::Cpu).contiguous()),
    }
}

/// Every rank's `local` rows (its [`Shard`] of `global` rows, along dimension 0) in rank
/// order, on every rank, on `local`'s device: the rows a single process would hold.
/// `local` itself without a group.
pub fn gather_tensor_rows(local: &Tensor, global: i64) -> Result<Tensor> {
    let Some(g) = group() else {
        return Ok(local.shallow_clone());
    };
    let world = g.world();
    let shards: Vec<Shard> = (0..world).map(|r| Shard::of(global, r, world)).collect();
    let widest = shards.iter().map(|s| s.len).max().unwrap_or(0);
    let mine = shards[g.rank()];
    let mut shape = local.size();
    if shape.first() != Some(&mine.len) {
        return Err(Error::Msg(format!(
            "gather: rank {} holds rows {shape:?}, its shard of {global} has {}",
            g.rank(),
            mine.len
        )));
    }
    shape[0] = widest - mine.len;
    let pad = Tensor::zeros(shape.as_slice(), (local.kind(), tch::Device::Cpu));
    let padded = Tensor::cat(&[local.to_device(tch::Device::Cpu), pad], 0);
    let all = g.all_gather(&padded)?;
    let parts: Vec<Tensor> = shards
        .iter()
        .enumerate()
        .map(|(r, s)| all.get(r as i64).narrow(0, 0, s.len))
        .collect();
    Ok(Tensor::cat(&parts, 0).to_device(local.device()))
}

/// Σ over ranks of `local_mean` weighted by each rank's share of the step's batch: the
/// mean over the global batch of a quantity each rank averaged over its rows; `local_mean`
/// itself outside a sharded step.
pub fn global_mean(local_mean: &Tensor) -> Result<Tensor> {
    match current_shard() {
        None => Ok(local_mean.shallow_clone()),
        Some(s) => sum(&(local_mean * s.weight())),
    }
}

/// The mean over dimension 0 of the step's global batch, from this rank's rows `t`.
pub fn batch_mean(t: &Tensor) -> Result<Tensor> {
    global_mean(&t.mean_dim(0, false, t.kind()))
}

/// Advances persistent chains (`chains`, tensors with one row per chain, updated in place)
/// by `advance`, which returns their new states. When the chains are as many as the rows
/// of the step's global batch, each rank advances its rows only (they split like the
/// batch, so per-row draws are those one process makes) and the ranks' new rows are
/// gathered into every rank's `chains`; otherwise every rank advances all of them, as one
/// process does. Returns this rank's rows: the chains its share of a gradient averages.
pub fn advance_chains(
    chains: &[Tensor],
    advance: impl FnOnce(Vec<Tensor>) -> Vec<Tensor>,
) -> Result<Vec<Tensor>> {
    let rows = chains.first().map(|t| t.size()[0]);
    let shard = current_shard().filter(|s| rows == Some(s.global));
    if let Some(s) = shard {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::debug!(
                "rank {} advances persistent chains {}..{} of {}",
                rank(),
                s.offset,
                s.offset + s.len,
                s.global
            )
        });
    }
    let mine: Vec<Tensor> = chains
        .iter()
        .map(|t| match shard {
            Some(s) => t.narrow(0, s.offset, s.len),
            None => t.shallow_clone(),
        })
        .collect();
    let new = advance(mine);
    tch::no_grad(|| {
        for (chain, rows) in chains.iter().zip(&new) {
            let all = match shard {
                Some(s) => gather_tensor_rows(rows, s.global)?,
                None => rows.shallow_clone(),
            };
            chain.shallow_clone().f_copy_(&all)?;
        }
        Ok::<(), Error>(())
    })?;
    Ok(new)
}

/// Runs `f` on this rank's shard of `global` rows (all of them without a group); `f` is
/// given the shard's length.
pub fn sharded<R>(global: i64, f: impl FnOnce(i64) -> R) -> R {
    let shard = Shard::of(global, rank(), world());
    with_shard(shard, || f(shard.len))
}

/// Whether any rank says yes (every rank must call it at the same point).
pub fn any(flag: bool) -> Result<bool> {
    let Some(g) = group() else {
        return Ok(flag);
    };
    let t = Tensor::from_slice(&[i64::from(flag)]);
    g.all_reduce_max(&t)?;
    Ok(t.int64_value(&[0]) != 0)
}

/// Copies rank 0's values of `tensors` into every rank's.
pub fn broadcast_from_main(tensors: &[Tensor]) -> Result<()> {
    let Some(g) = group() else {
        return Ok(());
    };
    tch::no_grad(|| {
        for t in tensors {
            let c = t.to_device(tch::Device::Cpu).contiguous().copy();
            g.broadcast(&c, 0)?;
            t.shallow_clone().f_copy_(&c)?;
        }
        Ok(())
    })
}

/// Rank 0's `text` on every rank (e.g. the run directory it chose).
pub fn broadcast_text(text: &str) -> Result<String> {
    let Some(g) = group() else {
        return Ok(text.to_string());
    };
    let len = Tensor::from_slice(&[text.len() as i64]);
    g.broadcast(&len, 0)?;
    let n = len.int64_value(&[0]);
    let bytes = if g.rank() == 0 {
        Tensor::from_slice(text.as_bytes())
    } else {
        Tensor::zeros([n], (Kind::Uint8, tch::Device::Cpu))
    };
    g.broadcast(&bytes, 0)?;
    let v = Vec::<u8>::try_from(&bytes)?;
    String::from_utf8(v).map_err(|e| Error::Msg(format!("broadcast text: {e}")))
}

/// Fails unless every rank holds the same values of `tensors` (compared by a checksum of
/// their bytes): a model whose update bypasses [`crate::optim::Optimizer`] drifts apart
/// across ranks, and this names that.
pub fn check_in_step(what: &str, tensors: &[Tensor]) -> Result<()> {
    let Some(g) = group() else {
        return Ok(());
    };
    let sums: Vec<Tensor> = tensors
        .iter()
        .map(|t| t.detach().to_kind(Kind::Double).sum(Kind::Double))
        .collect();
    if sums.is_empty() {
        return Ok(());
    }
    let local = Tensor::stack(&sums, 0).to_device(tch::Device::Cpu);
    let all = g.all_gather(&local)?;
    let diff = (&all - local.unsqueeze(0)).abs().max().double_value(&[]);
    if diff == 0.0 {
        Ok(())
    } else {
        Err(Error::Msg(format!(
            "data-parallel training: {what} differ between ranks (rank {} vs the others by \
             {diff:e}); this model's update does not go through the shared optimizer, so it \
             cannot train on several processes",
            g.rank()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order() {
        for (n, w) in [(100, 2), (7, 3), (5, 5), (64, 4)] {
            let shards: Vec<Shard> = (0..w).map(|r| Shard::of(n, r, w)).collect();
            assert_eq!(shards[0].offset, 0);
            for pair in shards.windows(2) {
                assert_eq!(pair[0].offset + pair[0].len, pair[1].offset);
            }
            let last = shards[w - 1];
            assert_eq!(last.offset + last.len, n);
            let weights: f64 = shards.iter().map(|s| s.weight()).sum();
            assert!((weights - 1.0).abs() < 1e-12);
        }
        let at = |offset, len| Shard {
            offset,
            len,
            global: 7,
        };
        assert_eq!(Shard::of(7, 1, 3), at(2, 2));
        assert_eq!(Shard::of(7, 2, 3), at(4, 3));
    }

    #[test]
    fn without_a_group_everything_is_the_identity() {
        let t = Tensor::from_slice(&[1.0f32, 2.0]);
        assert_eq!(world(), 1);
        assert!(is_main());
        let avg = average_gradients(std::slice::from_ref(&t)).unwrap();
        assert_eq!(Vec::<f32>::try_from(&avg[0]).unwrap(), vec![1.0, 2.0]);
        assert!(any(true).unwrap() && !any(false).unwrap());
        check_in_step("x", &[t]).unwrap();
    }

    #[test]
    fn row_draws_of_a_shard_are_rows_of_the_whole_draw() {
        let _rng = crate::rng_guard::seeded(11);
        let opts = (Kind::Float, tch::Device::Cpu);
        tch::manual_seed(5);
        let whole = randn_rows(&[10, 3], opts);
        for (rank, world) in [(0, 2), (1, 2), (2, 3)] {
            let s = Shard::of(10, rank, world);
            tch::manual_seed(5);
            let part = with_shard(s, || randn_rows(&[s.len, 3], opts));
            assert!(part.equal(&whole.narrow(0, s.offset, s.len)));
        }
        assert_eq!(current_shard(), None, "the shard is reset after the step");
    }
}
