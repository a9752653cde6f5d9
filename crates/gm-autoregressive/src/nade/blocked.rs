//! NADE's pass over the ordering in blocks of `K` positions, the working set of one block
//! (`[K, B, H]`, 12.8 MB at K = 64, B = 100, H = 500) instead of the `[D, B, H]` hidden
//! activations of the whole ordering (157 MB).
//!
//! The running pre-activation a_i = c + Σ_{j<i} W[:, j] x_j is split as the carry of the
//! block start, c + Σ_{j<s} W[:, j] x_j (one `[B, K] × [K, H]` product per block, kept for
//! all blocks), plus the in-block running sum: the block's K products x_j W[:, j] in one
//! kernel, then one row addition per position. The gradient pass walks the blocks backwards
//! carrying R = Σ_{i ≥ block end} ∂L/∂a_i; in-block suffix sums of ∂L/∂a (one row addition
//! per position) give W's gradient Σ_b x_j (R + Σ_{i in block, i > j} ∂L/∂a_i) as one
//! batched product per block, with no subtraction of running totals. Every operation is a
//! libtorch kernel on the model's device.

use tch::Tensor;

/// Ordering positions per block when a model does not choose: on the 2-core VM, 784-500 at
/// batch 100 trained at ≈ 1,200 examples/s with 8, 1,300 with 16, 1,500 with 32, 1,550–1,630
/// with 64 and 1,220 with 128 (`bench-nade --mode train --block K`, 2026-12-04).
pub const DEFAULT_BLOCK: i64 = 64;

/// The ordered problem: inputs `xt` `[D, B]` and parameters in ordering coordinates,
/// `wt` = W_oᵀ `[D, H]`, `v` `[D, H]`, `b` `[D]`, `c` `[H]`.
pub struct Ordered<'a> {
    pub xt: &'a Tensor,
    pub wt: &'a Tensor,
    pub v: &'a Tensor,
    pub b: &'a Tensor,
    pub c: &'a Tensor,
}

/// The gradient of the mean NLL over the batch in ordering coordinates: W_oᵀ `[D, H]`,
/// V_o `[D, H]`, b_o `[D]`, c `[H]`.
pub struct Grads {
    pub wt: Tensor,
    pub v: Tensor,
    pub b: Tensor,
    pub c: Tensor,
}

/// Start and length of every block of `block` positions covering `0..d`.
fn spans(d: i64, block: i64) -> Vec<(i64, i64)> {
    (0..d)
        .step_by(block as usize)
        .map(|s| (s, block.min(d - s)))
        .collect()
}

impl Ordered<'_> {
    fn batch(&self) -> i64 {
        self.xt.size()[1]
    }

    fn hidden(&self) -> i64 {
        self.wt.size()[1]
    }

    /// The block's inputs `[k, B]`.
    fn inputs(&self, (s, k): (i64, i64)) -> Tensor {
        self.xt.narrow(0, s, k)
    }

    /// The carry at the start of every block, `[B, H]` each.
    fn carries(&self, spans: &[(i64, i64)]) -> Vec<Tensor> {
        let bsz = self.batch();
        let mut carry = self
            .c
            .unsqueeze(0)
            .expand([bsz, self.hidden()], false)
            .copy();
        let mut out = Vec::with_capacity(spans.len());
        for &(s, k) in spans {
            let next = carry.addmm(&self.inputs((s, k)).tr(), &self.wt.narrow(0, s, k));
            out.push(std::mem::replace(&mut carry, next));
        }
        out
    }

    /// Sigmoid hidden activations of the block into `h` `[k, B, H]`: h[0] = carry and
    /// h[t] = h[t − 1] + x_{s+t−1} W_o[:, s+t−1] (the products of the block's inputs in one
    /// kernel, then k − 1 row additions, the recurrence's own order), then σ in place.
    fn hidden_into(&self, span: (i64, i64), carry: &Tensor, h: &mut Tensor) {
        let (s, k) = span;
        h.get(0).copy_(carry);
        if k > 1 {
            let x = self.inputs((s, k - 1)).unsqueeze(2);
            let _ = x.mul_out(
                &h.narrow(0, 1, k - 1),
                &self.wt.narrow(0, s, k - 1).unsqueeze(1),
            );
            for t in 1..k {
                let _ = h.get(t).g_add_(&h.get(t - 1));
            }
        }
        let _ = h.sigmoid_();
    }

    /// Logits of the block's conditionals `[k, B]` from its hidden activations.
    fn logits(&self, (s, k): (i64, i64), h: &Tensor) -> Tensor {
        // [k, 1, H] × [k, H, B]: one row-vector product per position (faster than [k, B, H] ×
        // [k, H, 1] on CPU).
        let dots = self.v.narrow(0, s, k).unsqueeze(1).bmm(&h.transpose(1, 2));
        dots.squeeze_dim(1) + self.b.narrow(0, s, k).unsqueeze(1)
    }

    /// A `[block, B, H]` work buffer.
    fn buffer(&self, block: i64) -> Tensor {
        Tensor::empty(
            [block, self.batch(), self.hidden()],
            (self.wt.kind(), self.wt.device()),
        )
    }

    /// log p(x) `[B]` of the ordered inputs, the carry advanced block by block.
    pub fn log_prob(&self, block: i64) -> Tensor {
        let (d, kind) = (self.xt.size()[0], self.wt.kind());
        let buf = self.buffer(block);
        let mut carry = self
            .c
            .unsqueeze(0)
            .expand([self.batch(), self.hidden()], false)
            .copy();
        let mut lp = Tensor::zeros([self.batch()], (kind, self.wt.device()));
        for span in spans(d, block) {
            let (s, k) = span;
            let mut h = buf.narrow(0, 0, k);
            self.hidden_into(span, &carry, &mut h);
            let logits = self.logits(span, &h);
            let x = self.inputs(span);
            lp += (&x * &logits - logits.softplus()).sum_dim_intlist(0, false, kind);
            let _ = carry.addmm_(&x.tr(), &self.wt.narrow(0, s, k));
        }
        lp
    }

    /// log p(x) `[B]` and the gradient of the mean NLL over the batch.
    pub fn nll_gradients(&self, block: i64) -> (Tensor, Grads) {
        let (d, bsz, hid, kind) = (
            self.xt.size()[0],
            self.batch(),
            self.hidden(),
            self.wt.kind(),
        );
        let dev = self.wt.device();
        let spans = spans(d, block);
        let carries = self.carries(&spans);
        let (buf, gv_buf) = (self.buffer(block), self.buffer(block));
        let grads = Grads {
            wt: Tensor::empty([d, hid], (kind, dev)),
            v: Tensor::empty([d, hid], (kind, dev)),
            b: Tensor::empty([d], (kind, dev)),
            c: Tensor::zeros([hid], (kind, dev)),
        };
        let mut lp = Tensor::zeros([bsz], (kind, dev));
        // R = Σ_{i ≥ end of the current block} ∂L/∂a_i, [B, H].
        let mut r = Tensor::zeros([bsz, hid], (kind, dev));
        for (&span, carry) in spans.iter().zip(&carries).rev() {
            let (s, k) = span;
            let mut h = buf.narrow(0, 0, k);
            self.hidden_into(span, carry, &mut h);
            let logits = self.logits(span, &h);
            let x = self.inputs(span);
            lp += (&x * &logits - logits.softplus()).sum_dim_intlist(0, false, kind);
            let g = (logits.sigmoid() - &x) * (1.0 / bsz as f64); // ∂L/∂logits [k, B]
            let _ = g.sum_intlist_out(&grads.b.narrow(0, s, k), 1, false, kind);
            let _ = g
                .unsqueeze(1)
                .bmm_out(&grads.v.narrow(0, s, k).unsqueeze(1), &h);
            // ∂L/∂a_i = g_i V_i ⊙ h_i (1 − h_i), in place of h.
            let gv = gv_buf.narrow(0, 0, k);
            let _ = g
                .unsqueeze(2)
                .mul_out(&gv, &self.v.narrow(0, s, k).unsqueeze(1));
            let _ = Tensor::sigmoid_backward_grad_input(&h, &gv, &h);
            // Suffix sums in place, seeded with R: h[t] = R + Σ_{i ≥ t in block} ∂L/∂a_i, so
            // the rows of W_oᵀ are Σ_b x_j h[j + 1] (Σ_b x_j R for the block's last j) and
            // h[0] is the next block's R.
            let dwt = grads.wt.narrow(0, s, k);
            let _ = x.narrow(0, k - 1, 1).mm_out(&dwt.narrow(0, k - 1, 1), &r);
            let _ = h.get(k - 1).g_add_(&r);
            for t in (0..k - 1).rev() {
                let _ = h.get(t).g_add_(&h.get(t + 1));
            }
            if k > 1 {
                let _ = x.narrow(0, 0, k - 1).unsqueeze(1).bmm_out(
                    &dwt.narrow(0, 0, k - 1).unsqueeze(1),
                    &h.narrow(0, 1, k - 1),
                );
            }
            r.copy_(&h.get(0));
        }
        let _ = r.sum_intlist_out(&grads.c, 0, false, kind);
        (lp, grads)
    }
}
