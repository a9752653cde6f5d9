//! Seeded mini-batches of a tensor already on its device.
//!
//! The order of an epoch is a pure function of `(seed, epoch)`: a Fisher–Yates shuffle driven
//! by a `ChaCha8Rng` keyed with both (see `rng.rs`), never libtorch's RNG. The permutation is
//! sent to the data's device once per epoch and each batch is `x.index_select(0, idx)`, a
//! fresh tensor (changing it in place does not touch the dataset).

use tch::{Device, Tensor};

use super::rng::{self, Domain};

/// One mini-batch: what every model's training and evaluation step receives.
///
/// `y` holds the labels (`i64 [B]`) when the dataset has them; under `[data] labelled = N`
/// only some are observed: `observed` (`bool [B]`) says which, and the label of an
/// unobserved row is `-1`, so that a model cannot read it by mistake. `observed` is `None`
/// when every label in `y` is observed.
#[derive(Debug)]
pub struct Batch {
    /// The inputs, `[B, ...]`.
    pub x: Tensor,
    /// Their labels, `i64 [B]` (`-1` where unobserved), when the dataset has labels.
    pub y: Option<Tensor>,
    /// Which labels are observed, `bool [B]`; `None`: all of them (or no labels).
    pub observed: Option<Tensor>,
}

impl Batch {
    /// A batch of inputs without labels.
    pub fn inputs(x: &Tensor) -> Batch {
        Batch {
            x: x.shallow_clone(),
            y: None,
            observed: None,
        }
    }

    /// A batch of inputs with all their labels observed.
    pub fn labelled(x: &Tensor, y: &Tensor) -> Batch {
        Batch {
            x: x.shallow_clone(),
            y: Some(y.shallow_clone()),
            observed: None,
        }
    }

    /// Inputs with optional labels (all observed).
    pub fn new(x: &Tensor, y: Option<&Tensor>) -> Batch {
        Batch {
            x: x.shallow_clone(),
            y: y.map(Tensor::shallow_clone),
            observed: None,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> i64 {
        self.x.size().first().copied().unwrap_or(0)
    }

    /// Whether the batch holds no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `start..start + len` (labels and mask alike).
    pub fn narrow(&self, start: i64, len: i64) -> Batch {
        Batch {
            x: self.x.narrow(0, start, len),
            y: self.y.as_ref().map(|y| y.narrow(0, start, len)),
            observed: self.observed.as_ref().map(|o| o.narrow(0, start, len)),
        }
    }

    /// The observed-label mask `bool [B]`: all true when every label is observed, `None`
    /// without labels.
    pub fn observed_mask(&self) -> Option<Tensor> {
        let y = self.y.as_ref()?;
        Some(match &self.observed {
            Some(o) => o.shallow_clone(),
            None => y.ones_like().to_kind(tch::Kind::Bool),
        })
    }
}

/// Iterator over the mini-batches of one epoch.
///
/// The order is a pure function of `(seed, epoch)` (a Fisher–Yates shuffle driven by a
/// `ChaCha8` stream keyed with both, never libtorch's RNG); the permutation is sent to the
/// data's device once, and each batch is `x.index_select(0, idx)`, a fresh tensor.
///
/// ```
/// use gm_core::data::{self, Batches};
/// let ds = data::load("bars-and-stripes", &data::DataOptions::default())?;
/// let x = ds.train_inputs(0);
/// let batches = Batches::new(&x, None, 64, true, false, 42, 0);
/// assert_eq!(batches.len(), 16); // 1,000 examples: 15 full batches and one of 40
/// let resumed = Batches::new(&x, None, 64, true, false, 42, 0).skip(15);
/// assert_eq!(resumed.map(|b| b.x.size()[0]).collect::<Vec<_>>(), [40]);
/// # Ok::<(), gm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Batches {
    x: Tensor,
    y: Option<Tensor>,
    observed: Option<Tensor>,
    /// Example order on the data's device (`i64 [n]`).
    order: Tensor,
    n: i64,
    batch_size: i64,
    num_batches: usize,
    next: usize,
}

/// The example order of `(seed, epoch)` for `n` examples (the identity when `!shuffle`).
pub fn epoch_order(n: i64, shuffle: bool, seed: u64, epoch: usize) -> Vec<i64> {
    let n = n.max(0);
    if shuffle {
        let mut r = rng::stream(Domain::Shuffle, seed, epoch as u64, 0);
        rng::permutation(n as usize, &mut r)
    } else {
        (0..n).collect()
    }
}

impl Batches {
    /// The batches of `x` (and of `y`, row for row) for `epoch`, of `batch_size` examples
    /// (a `batch_size` below 1 counts as 1). With `shuffle` the order is the seeded
    /// permutation of `(seed, epoch)`; without it, the stored order. With `drop_last` a final
    /// short batch is left out. `x` (and `y`) should already be on the device the batches are
    /// wanted on.
    pub fn new(
        x: &Tensor,
        y: Option<&Tensor>,
        batch_size: i64,
        shuffle: bool,
        drop_last: bool,
        seed: u64,
        epoch: usize,
    ) -> Batches {
        let n = x.size().first().copied().unwrap_or(0);
        let batch_size = batch_size.max(1);
        let full = n / batch_size;
        let num_batches = if drop_last || n % batch_size == 0 {
            full
        } else {
            full + 1
        } as usize;
        let order = Tensor::from_slice(&epoch_order(n, shuffle, seed, epoch));
        let order = if x.device() == Device::Cpu {
            order
        } else {
            order.to_device(x.device())
        };
        Batches {
            x: x.shallow_clone(),
            y: y.map(Tensor::shallow_clone),
            observed: None,
            order,
            n,
            batch_size,
            num_batches,
            next: 0,
        }
    }

    /// The batches of a labelled split: `split.y` (when present) as the labels, and
    /// `observed` (`bool [n]`, when only some are observed) as the observed mask, with the
    /// unobserved labels replaced by `-1` (see [`Batch`]).
    #[allow(clippy::too_many_arguments)]
    pub fn of_split(
        split: &super::Split,
        x: &Tensor,
        observed: Option<&Tensor>,
        batch_size: i64,
        shuffle: bool,
        drop_last: bool,
        seed: u64,
        epoch: usize,
    ) -> Batches {
        let y = match (&split.y, observed) {
            (Some(y), Some(o)) => Some(y.where_self(o, &y.full_like(-1))),
            (y, _) => y.as_ref().map(Tensor::shallow_clone),
        };
        let mut b = Batches::new(x, y.as_ref(), batch_size, shuffle, drop_last, seed, epoch);
        if y.is_some() {
            b.observed = observed.map(Tensor::shallow_clone);
        }
        b
    }

    /// Number of batches of the whole epoch (unaffected by [`Batches::skip`] or iteration).
    pub fn len(&self) -> usize {
        self.num_batches
    }

    /// Whether the epoch has no batches at all.
    pub fn is_empty(&self) -> bool {
        self.num_batches == 0
    }

    /// Resumes mid-epoch: the remaining batches after the first `n` of the same order.
    #[must_use]
    pub fn skip(mut self, n: usize) -> Self {
        self.next = self.next.saturating_add(n).min(self.num_batches);
        self
    }

    /// Number of batches not yet yielded.
    pub fn remaining(&self) -> usize {
        self.num_batches - self.next
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.num_batches {
            return None;
        }
        let start = self.next as i64 * self.batch_size;
        let len = self.batch_size.min(self.n - start);
        self.next += 1;
        let idx = self.order.narrow(0, start, len);
        Some(Batch {
            x: self.x.index_select(0, &idx),
            y: self.y.as_ref().map(|y| y.index_select(0, &idx)),
            observed: self.observed.as_ref().map(|o| o.index_select(0, &idx)),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

impl ExactSizeIterator for Batches {}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// `x[i] = i` so that a batch shows which examples it holds.
    fn ids(n: i64) -> Tensor {
        Tensor::arange(n, (Kind::Float, Device::Cpu)).view([n, 1])
    }

    fn order(b: Batches) -> Vec<Vec<i64>> {
        b.map(|b| {
            let v: Vec<f32> = Vec::try_from(&b.x.flatten(0, -1)).unwrap();
            let y: Vec<i64> = Vec::try_from(&b.y.unwrap()).unwrap();
            let x: Vec<i64> = v.iter().map(|&f| f as i64).collect();
            assert_eq!(x, y, "labels follow their rows");
            x
        })
        .collect()
    }

    fn labelled(
        n: i64,
        bs: i64,
        shuffle: bool,
        drop_last: bool,
        seed: u64,
        epoch: usize,
    ) -> Batches {
        let x = ids(n);
        let y = Tensor::arange(n, (Kind::Int64, Device::Cpu));
        Batches::new(&x, Some(&y), bs, shuffle, drop_last, seed, epoch)
    }

    #[test]
    fn batches_same_seed_and_epoch_same_order() {
        let a = order(labelled(103, 10, true, false, 7, 3));
        let b = order(labelled(103, 10, true, false, 7, 3));
        assert_eq!(a, b);
        let c = order(labelled(103, 10, true, false, 7, 4));
        assert_ne!(a, c, "another epoch gives another order");
        let d = order(labelled(103, 10, true, false, 8, 3));
        assert_ne!(a, d, "another seed gives another order");
        let unshuffled = order(labelled(103, 10, false, false, 7, 3)).concat();
        assert_eq!(unshuffled, (0..103).collect::<Vec<_>>());
    }

    #[test]
    fn batches_cover_every_index_once() {
        let b = labelled(103, 10, true, false, 1, 0);
        assert_eq!(b.len(), 11);
        let batches = order(b);
        assert_eq!(batches.len(), 11);
        assert!(batches[..10].iter().all(|b| b.len() == 10));
        assert_eq!(batches[10].len(), 3);
        let mut all = batches.concat();
        assert_ne!(all, (0..103).collect::<Vec<_>>(), "shuffled");
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
    }

    #[test]
    fn batches_drop_last() {
        let b = labelled(103, 10, true, true, 1, 0);
        assert_eq!(b.len(), 10);
        let batches = order(b);
        assert_eq!(batches.len(), 10);
        assert!(batches.iter().all(|b| b.len() == 10));
        // the kept batches are the first 100 of the same order
        let full = order(labelled(103, 10, true, false, 1, 0)).concat();
        assert_eq!(batches.concat(), full[..100]);
        // exact multiple: nothing dropped
        assert_eq!(labelled(100, 10, true, true, 1, 0).len(), 10);
        assert_eq!(labelled(100, 10, true, false, 1, 0).len(), 10);
        // fewer examples than one batch
        assert_eq!(labelled(5, 10, true, true, 1, 0).len(), 0);
        assert_eq!(labelled(5, 10, true, false, 1, 0).len(), 1);
        // empty data and degenerate batch sizes do not panic
        assert_eq!(labelled(0, 10, true, false, 1, 0).count(), 0);
        assert_eq!(labelled(3, 0, true, false, 1, 0).len(), 3);
    }

    #[test]
    fn batches_skip_equals_tail() {
        let full = order(labelled(103, 10, true, false, 9, 2));
        for k in [0, 1, 4, 10, 11, 50] {
            let b = labelled(103, 10, true, false, 9, 2).skip(k);
            assert_eq!(b.len(), 11, "len counts the whole epoch");
            assert_eq!(b.remaining(), 11 - k.min(11));
            assert_eq!(order(b), full[k.min(11)..], "skip({k})");
        }
        let mut b = labelled(103, 10, true, false, 9, 2);
        b.next();
        assert_eq!(order(b.skip(2)), full[3..]);
    }

    #[test]
    fn batches_without_labels_and_multi_dim() {
        let x = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).view([6, 4, 5]);
        let bs: Vec<Batch> = Batches::new(&x, None, 4, true, false, 0, 0).collect();
        assert_eq!(bs.len(), 2);
        assert_eq!(bs[0].x.size(), [4, 4, 5]);
        assert_eq!(bs[1].x.size(), [2, 4, 5]);
        assert!(bs[0].y.is_none());
        assert!(bs[0].observed_mask().is_none());
    }

    #[test]
    fn batches_of_split_hide_unobserved_labels() {
        let x = ids(6);
        let split = crate::data::Split {
            x: x.shallow_clone(),
            y: Some(Tensor::from_slice(&[10i64, 11, 12, 13, 14, 15])),
        };
        let observed = Tensor::from_slice(&[true, false, true, false, false, true]);
        let all: Vec<Batch> =
            Batches::of_split(&split, &x, Some(&observed), 4, true, false, 3, 0).collect();
        let mut seen = 0;
        for b in &all {
            let rows: Vec<f32> = Vec::try_from(&b.x.flatten(0, -1)).unwrap();
            let y: Vec<i64> = Vec::try_from(b.y.as_ref().unwrap()).unwrap();
            let o: Vec<bool> = Vec::try_from(&b.observed_mask().unwrap()).unwrap();
            for ((r, y), o) in rows.iter().zip(y).zip(o) {
                let i = *r as usize;
                assert_eq!(o, [true, false, true, false, false, true][i]);
                assert_eq!(y, if o { 10 + i as i64 } else { -1 });
                seen += 1;
            }
        }
        assert_eq!(seen, 6);
        // without a mask every label is observed
        let b = Batches::of_split(&split, &x, None, 6, false, false, 0, 0)
            .next()
            .unwrap();
        assert!(b.observed.is_none());
        assert_eq!(
            Vec::<bool>::try_from(&b.observed_mask().unwrap()).unwrap(),
            [true; 6]
        );
    }
}
