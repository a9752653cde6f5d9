//! The reverse-process figure every diffusion draws: samples at evenly spaced steps of
//! their reverse chain, noise on the left, data on the right.

use gm_core::model::Figure;
use tch::Tensor;

/// Columns of the figure (points of each chain shown).
pub const COLUMNS: usize = 10;

/// Rows of the figure (chains).
pub const ROWS: i64 = 8;

/// Collects the frames of [`ROWS`] chains while they run.
#[derive(Debug)]
pub struct Strip {
    wanted: Vec<usize>,
    step: usize,
    frames: Vec<Tensor>,
}

impl Strip {
    /// For chains of `visited` steps starting at `first` (data-space values of x_T).
    pub fn new(visited: usize, first: Tensor) -> Self {
        let wanted = (1..COLUMNS).map(|j| j * visited / (COLUMNS - 1)).collect();
        Strip {
            wanted,
            step: 0,
            frames: vec![first],
        }
    }

    /// Call after every step with the chains' data-space values.
    pub fn record(&mut self, x: &Tensor) {
        self.step += 1;
        if self.wanted.contains(&self.step) {
            self.frames.push(x.shallow_clone());
        }
    }

    /// The figure `reverse-process`, one chain per row.
    pub fn figure(self, caption: String) -> Figure {
        Figure {
            name: "reverse-process".into(),
            caption,
            images: Tensor::stack(&self.frames, 1).flatten(0, 1),
            per_row: COLUMNS as i64,
        }
    }
}
