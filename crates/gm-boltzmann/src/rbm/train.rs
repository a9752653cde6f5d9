//! The training rules of [`Rbm`]: negative phases (CD-k, PCD-k, parallel tempering), the
//! hand-written and autograd CD gradients, pseudo-likelihood and ratio matching, the
//! penalties and the centering transform.

use super::config::{Rule, Update};
use super::exact::softplus;
use super::model::{bernoulli, Rbm};
use gm_core::model::Metrics;
use gm_core::{Error, Result};
use tch::{Kind, Tensor};

impl Rbm {
    /// One training update on a batch `[B, …]` without computing metrics: the cheap path a
    /// benchmark times.
    pub fn train_batch(&mut self, x: &Tensor) -> Result<()> {
        self.step(x, false).map(|_| ())
    }

    /// One update; with `metrics`, also the step's metrics (computed from the parameters
    /// before the update, after the update's own random draws, so the update does not depend
    /// on whether metrics are asked for).
    pub(super) fn step(&mut self, x: &Tensor, metrics: bool) -> Result<Option<Metrics>> {
        let v0 = self.flat(x);
        let (u0, ph0) = tch::no_grad(|| {
            let u = self.pre_hidden_graph(&v0);
            let p = u.sigmoid();
            (u, p)
        });
        self.update_offsets(&v0, &ph0)?;
        let (grads, first) = match self.cfg.rule {
            Rule::Cd | Rule::Pcd | Rule::Pt => {
                let (vk, swap_rate) = self.negative_phase(&ph0)?;
                let g = match self.cfg.update {
                    Update::Hand => self.hand_gradients(&v0, &ph0, &vk)?,
                    Update::Autograd => self.autograd_gradients(&v0, &vk)?,
                };
                (g, swap_rate.map(|r| ("pt_swap_rate", r)))
            }
            Rule::Pl | Rule::RatioMatching => {
                let per_example = if self.cfg.rule == Rule::Pl {
                    self.pseudo_nll(&v0, self.cfg.pl_units)
                } else {
                    self.ratio_matching(&v0)
                };
                let loss = per_example.mean(self.kind) + self.penalties(&v0)?;
                let g =
                    Tensor::f_run_backward(&[loss], &[&self.w, &self.b, &self.c], false, false)?;
                let name = if self.cfg.rule == Rule::Pl {
                    "pseudo_nll"
                } else {
                    "ratio_matching"
                };
                let g = [
                    g[0].shallow_clone(),
                    g[1].shallow_clone(),
                    g[2].shallow_clone(),
                ];
                (
                    self.center(g),
                    Some((name, per_example.detach().mean(Kind::Float))),
                )
            }
        };
        let out = metrics.then(|| {
            let mut m = self.proxy_metrics(&v0, &u0);
            match first {
                Some(f @ ("pt_swap_rate", _)) => m.push(f),
                Some(f) => m.insert(0, f),
                None => {}
            }
            m
        });
        self.apply(grads)?;
        Ok(out)
    }

    fn apply(&mut self, grads: [Tensor; 3]) -> Result<()> {
        let mut ordered: Vec<(usize, Tensor)> = self.slots.iter().copied().zip(grads).collect();
        ordered.sort_by_key(|(s, _)| *s);
        let grads: Vec<Tensor> = ordered.into_iter().map(|(_, g)| g).collect();
        self.opt.apply_gradients(&grads)
    }

    /// Moves the centering offsets toward the batch means of v and p(h | v) (means over the
    /// global batch on several processes, so every rank keeps the same offsets).
    fn update_offsets(&mut self, v0: &Tensor, ph0: &Tensor) -> Result<()> {
        if let Some((mu, lambda)) = &mut self.offsets {
            let rate = self.cfg.centering_rate;
            tch::no_grad(|| {
                let _ = mu.lerp_(&gm_core::dist::batch_mean(v0)?, rate);
                let _ = lambda.lerp_(&gm_core::dist::batch_mean(ph0)?, rate);
                Ok::<(), Error>(())
            })?;
        }
        Ok(())
    }

    /// Negative samples `[C, D]` of the rule (and PT's swap acceptance rate), given
    /// p(h | v_data).
    fn negative_phase(&mut self, ph0: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let k = self.cfg.k;
        tch::no_grad(|| match self.cfg.rule {
            Rule::Cd => {
                let v1 = self.sample_v(&bernoulli(ph0));
                Ok((self.gibbs(&v1, k - 1), None))
            }
            Rule::Pcd => {
                let chains = self.chains.as_ref().expect("PCD keeps chains");
                let mut v = gm_core::dist::advance_chains(&[chains.shallow_clone()], |x| {
                    vec![self.gibbs(&x[0], k)]
                })?;
                Ok((v.remove(0), None))
            }
            Rule::Pt => {
                let (v, rate) = self.tempered_sweeps()?;
                Ok((v, Some(rate)))
            }
            Rule::Pl | Rule::RatioMatching => Err(Error::Msg(format!(
                "rbm: rule {:?} has no negative phase",
                self.cfg.rule
            ))),
        })
    }

    /// Parallel tempering: k block-Gibbs sweeps of every replica at its own β (p_β ∝ e^{−βE}),
    /// then Metropolis swaps of neighbouring replicas, even pairs then odd pairs, accepted
    /// with probability min(1, e^{F_a(x_a) + F_b(x_b) − F_a(x_b) − F_b(x_a)}) where F_β is
    /// the free energy at β. Each chain's replicas move together, so chains as many as the
    /// global batch split across processes like it (`dist::advance_chains`). Returns this
    /// process's chains at β = 1 and the swap acceptance rate over all of them.
    pub(super) fn tempered_sweeps(&mut self) -> Result<(Tensor, Tensor)> {
        let chains = self.chains.as_ref().expect("PT keeps chains");
        let betas = self.betas.as_ref().expect("PT has a ladder");
        let mut rate = None;
        // Stored [R, C, D]; advanced as [C, R, D], a chain's replicas in one row.
        let mut mine = gm_core::dist::advance_chains(&[chains.transpose(0, 1)], |x| {
            let (v, r) = self.tempered_rows(&x[0], betas);
            rate = Some(r);
            vec![v]
        })?;
        let rate = gm_core::dist::global_mean(&rate.expect("the chains advanced"))?;
        Ok((mine.remove(0).select(1, 0), rate))
    }

    /// The sweeps and swaps of [`Rbm::tempered_sweeps`] on chains `x` `[C, R, D]`; their new
    /// states and the mean acceptance of their swaps.
    fn tempered_rows(&self, x: &Tensor, betas: &Tensor) -> (Tensor, Tensor) {
        let (c, r) = (x.size()[0], x.size()[1]);
        let (nv, nh) = (self.nv, self.nh);
        let beta3 = betas.view([1, r, 1]);
        let mut x = x.contiguous();
        for _ in 0..self.cfg.k {
            let mut u = self.c.addmm(&x.view([c * r, nv]), &self.w).view([c, r, nh]);
            let _ = u.g_mul_(&beta3);
            let h = bernoulli(&u.sigmoid_());
            let mut a = self
                .b
                .addmm(&h.view([c * r, nh]), &self.w.tr())
                .view([c, r, nv]);
            let _ = a.g_mul_(&beta3);
            x = bernoulli(&a.sigmoid_());
        }
        // F_β(x) = −β x·b − Σ_j softplus(β (c + xW)_j), [C, P], for x [C, P, D], β [P].
        let free = |x: &Tensor, u: &Tensor, beta: &Tensor| -> Tensor {
            let p = beta.size()[0];
            -x.matmul(&self.b) * beta.view([1, p])
                - softplus(&(u * beta.view([1, p, 1]))).sum_dim_intlist(2, false, self.kind)
        };
        let hidden_input = |x: &Tensor, p: i64| {
            self.c
                .addmm(&x.reshape([c * p, nv]), &self.w)
                .view([c, p, nh])
        };
        let mut accepted = Vec::new();
        for parity in 0..2 {
            let lo: Vec<i64> = (parity..r - 1).step_by(2).collect();
            if lo.is_empty() {
                continue;
            }
            let p = lo.len() as i64;
            let lo = Tensor::from_slice(&lo).to_device(x.device());
            let hi = &lo + 1;
            let (xl, xh) = (x.index_select(1, &lo), x.index_select(1, &hi));
            let (bl, bh) = (betas.index_select(0, &lo), betas.index_select(0, &hi));
            let (ul, uh) = (hidden_input(&xl, p), hidden_input(&xh, p));
            let log_a = free(&xl, &ul, &bl) + free(&xh, &uh, &bh)
                - free(&xh, &uh, &bl)
                - free(&xl, &ul, &bh);
            let draw = gm_core::dist::rand_rows(&[c, p], (log_a.kind(), log_a.device()));
            let acc = draw.log().lt_tensor(&log_a);
            let m = acc.unsqueeze(2);
            let new_l = xh.where_self(&m, &xl);
            let new_h = xl.where_self(&m, &xh);
            x = x.index_copy(1, &lo, &new_l).index_copy(1, &hi, &new_h);
            accepted.push(acc.to_kind(Kind::Float).flatten(0, -1));
        }
        (x, Tensor::cat(&accepted, 0).mean(Kind::Float))
    }

    /// The CD / PCD / PT gradient (of the quantity minimised: the negative log-likelihood
    /// estimate plus the penalties) for data `v_data` and negative samples `v_model`, in
    /// the order W, b, c, computed by `update`; with centering on, in centered form
    /// converted back to the stored parameters.
    pub fn cd_gradients(
        &self,
        v_data: &Tensor,
        v_model: &Tensor,
        update: Update,
    ) -> Result<[Tensor; 3]> {
        let v0 = self.flat(v_data);
        let vk = self.flat(v_model);
        match update {
            Update::Hand => {
                let ph0 = self.p_h(&v0);
                self.hand_gradients(&v0, &ph0, &vk)
            }
            Update::Autograd => self.autograd_gradients(&v0, &vk),
        }
    }

    /// ⟨v hᵀ⟩_model − ⟨v hᵀ⟩_data with hidden probabilities (and the same for the biases),
    /// plus the weight-decay and sparsity terms: the descent direction.
    fn hand_gradients(&self, v0: &Tensor, ph0: &Tensor, vk: &Tensor) -> Result<[Tensor; 3]> {
        tch::no_grad(|| {
            let kind = self.kind;
            let (n0, nk) = (v0.size()[0] as f64, vk.size()[0] as f64);
            let phk = self.pre_hidden_graph(vk).sigmoid_();
            let mut pos = ph0 * (-1.0 / n0);
            let mut gc = phk.mean_dim(0, false, kind) - ph0.mean_dim(0, false, kind);
            if self.cfg.sparsity_cost > 0.0 {
                // ∂/∂u_nj of cost·Σ_j (p − q_j)², q_j = mean_n σ(u_nj) over the global batch.
                let q = gm_core::dist::batch_mean(ph0)?;
                let d = (q - self.cfg.sparsity_target) * (2.0 * self.cfg.sparsity_cost / n0);
                let s = ph0 * (ph0.ones_like() - ph0) * d.unsqueeze(0);
                gc += s.sum_dim_intlist(0, false, kind);
                pos += s;
            }
            // One product for both phases: [vk; v0]ᵀ [phk / nk; −ph0 / n0 + s].
            let mut gw = Tensor::cat(&[vk, v0], 0)
                .tr()
                .mm(&Tensor::cat(&[phk * (1.0 / nk), pos], 0));
            if self.cfg.weight_decay > 0.0 {
                let _ = gw.g_add_(&(&self.w * self.cfg.weight_decay));
            }
            let gb = vk.mean_dim(0, false, kind) - v0.mean_dim(0, false, kind);
            Ok(self.center([gw, gb, gc]))
        })
    }

    /// The same gradient from mean F(v_data) − mean F(v_model) (negatives detached) plus the
    /// penalties, by autograd.
    fn autograd_gradients(&self, v0: &Tensor, vk: &Tensor) -> Result<[Tensor; 3]> {
        let loss = self.free_energy_graph(v0).mean(self.kind)
            - self.free_energy_graph(&vk.detach()).mean(self.kind)
            + self.penalties(v0)?;
        let g = Tensor::f_run_backward(&[loss], &[&self.w, &self.b, &self.c], false, false)?;
        Ok(tch::no_grad(|| {
            self.center([
                g[0].shallow_clone(),
                g[1].shallow_clone(),
                g[2].shallow_clone(),
            ])
        }))
    }

    /// ½·weight_decay·‖W‖² + sparsity_cost·Σ_j (target − mean_n p(h_j = 1 | v_n))², a
    /// 0-dim tensor recording gradients. On several processes the mean is the global
    /// batch's, its gradient this rank's rows' (the optimizer sums the ranks' shares).
    fn penalties(&self, v0: &Tensor) -> Result<Tensor> {
        let mut terms = vec![Tensor::zeros([], (self.kind, self.w.device()))];
        if self.cfg.weight_decay > 0.0 {
            terms.push(self.w.square().sum(self.kind) * (0.5 * self.cfg.weight_decay));
        }
        if self.cfg.sparsity_cost > 0.0 {
            let local = self
                .pre_hidden_graph(v0)
                .sigmoid()
                .mean_dim(0, false, self.kind);
            let q = &local - local.detach() + gm_core::dist::global_mean(&local.detach())?;
            terms.push(
                (q - self.cfg.sparsity_target).square().sum(self.kind) * self.cfg.sparsity_cost,
            );
        }
        Ok(terms
            .into_iter()
            .reduce(|a, b| a + b)
            .expect("at least the zero term"))
    }

    /// With centering on, turns the gradient (g_W, g_b, g_c) with respect to the stored
    /// parameters into the update of the centered parametrisation
    /// E = −(v−μ)·b′ − (h−λ)·c′ − (v−μ)ᵀW(h−λ), mapped back to the stored ones
    /// (b = b′ − Wλ, c = c′ − Wᵀμ, so the energy is unchanged):
    /// G_W = g_W − g_b λᵀ − μ g_cᵀ, then (G_W, g_b − G_W λ, g_c − G_Wᵀ μ).
    /// For the likelihood, G_W is ⟨(v−μ)(h−λ)ᵀ⟩_model − ⟨(v−μ)(h−λ)ᵀ⟩_data (Melchior et
    /// al. 2016, algorithm 1).
    fn center(&self, g: [Tensor; 3]) -> [Tensor; 3] {
        let Some((mu, lambda)) = &self.offsets else {
            return g;
        };
        let [gw, gb, gc] = g;
        let gw = gw - gb.outer(lambda) - mu.outer(&gc);
        let gb = gb - gw.mv(lambda);
        let gc = gc - gw.tr().mv(mu);
        [gw, gb, gc]
    }

    /// F(v) − F(v with unit i flipped), `[N, n]`, for the units `idx` `[N, n]` of each
    /// example (all units when `None`), from u = c + vW; records gradients.
    fn flip_gaps(&self, v: &Tensor, u: &Tensor, idx: Option<&Tensor>) -> Tensor {
        let kind = self.kind;
        let s = v.ones_like() - v * 2.0; // the change of v_i when it flips
        let (s, b, wrows) = match idx {
            None => (s, self.b.unsqueeze(0), self.w.unsqueeze(0)),
            Some(idx) => {
                let (n, m) = (idx.size()[0], idx.size()[1]);
                let flat = idx.reshape([-1]);
                (
                    s.gather(1, idx, false),
                    self.b.index_select(0, &flat).view([n, m]),
                    self.w.index_select(0, &flat).view([n, m, self.nh]),
                )
            }
        };
        let u_flip = u.unsqueeze(1) + s.unsqueeze(2) * wrows;
        s * b + softplus(&u_flip).sum_dim_intlist(2, false, kind)
            - softplus(u).sum_dim_intlist(1, true, kind)
    }

    /// The negative log pseudo-likelihood −Σ_i log p(v_i | v_−i) per example `[N]`
    /// (records gradients). With `units = Some(n)`, n < D, a random subset of n units per
    /// example, scaled by D / n (an unbiased estimate).
    pub fn pseudo_nll(&self, v: &Tensor, units: Option<i64>) -> Tensor {
        let v = self.flat(v);
        let u = self.pre_hidden_graph(&v);
        match units {
            Some(n) if n < self.nv => {
                let idx = tch::no_grad(|| v.rand_like().argsort(1, false).narrow(1, 0, n));
                softplus(&self.flip_gaps(&v, &u, Some(&idx))).sum_dim_intlist(1, false, self.kind)
                    * (self.nv as f64 / n as f64)
            }
            _ => softplus(&self.flip_gaps(&v, &u, None)).sum_dim_intlist(1, false, self.kind),
        }
    }

    /// The ratio-matching objective Σ_i σ(F(v) − F(v with unit i flipped))² per example
    /// `[N]` (Hyvärinen 2007; *Deep Learning* eq. 18.26 with p̃ = e^{−F}); records gradients.
    pub fn ratio_matching(&self, v: &Tensor) -> Tensor {
        let v = self.flat(v);
        let u = self.pre_hidden_graph(&v);
        self.flip_gaps(&v, &u, None)
            .sigmoid()
            .square()
            .sum_dim_intlist(1, false, self.kind)
    }

    /// The stochastic pseudo-likelihood proxy D·softplus(F(v) − F(ṽ)), ṽ = v with one random
    /// unit flipped, per example `[N]`: an unbiased, noisy estimate of the negative log
    /// pseudo-likelihood.
    pub fn pseudo_nll_proxy(&self, v: &Tensor) -> Tensor {
        let v = self.flat(v);
        tch::no_grad(|| {
            let u = self.pre_hidden_graph(&v);
            self.pseudo_nll_proxy_from(&v, &u)
        })
    }

    pub(super) fn pseudo_nll_proxy_from(&self, v: &Tensor, u: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let idx = Tensor::randint(self.nv, [v.size()[0], 1], (Kind::Int64, v.device()));
            softplus(&self.flip_gaps(v, u, Some(&idx))).squeeze_dim(1) * self.nv as f64
        })
    }
}
