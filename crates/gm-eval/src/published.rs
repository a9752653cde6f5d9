//! Published numbers to hold results against (DESIGN.md §4), as data: test negative
//! log-likelihoods on statically binarized MNIST, keyed by model name, dataset, binarization
//! and likelihood kind, each with the paper it comes from.
//!
//! Only numbers measured the way a gm record is labelled are matched: a published AIS or
//! importance-sampling estimate goes beside a gm `stochastic_estimate`, an exact NADE value
//! beside an `exact` one, never beside a bound. Dynamic binarization reads about 2 nats
//! better, so nothing here matches a dynamically binarized run.
//!
//! ```
//! use gm_core::data::Binarization;
//! use gm_core::model::LikelihoodKind;
//! use gm_eval::published::lookup;
//! let refs = lookup("nade", "binarized-mnist", Binarization::StaticFile, LikelihoodKind::Exact);
//! assert!(refs.iter().any(|p| p.citation.contains("Larochelle")));
//! assert!(lookup("nade", "binarized-mnist", Binarization::Dynamic { seed: 0 }, LikelihoodKind::Exact).is_empty());
//! ```

use gm_core::data::Binarization;
use gm_core::model::LikelihoodKind;
use serde::Serialize;

/// One published test NLL.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Published {
    /// gm registry name of the model.
    pub model: &'static str,
    /// The published variant (architecture, training, estimator settings).
    pub variant: &'static str,
    /// Dataset name in gm.
    pub dataset: &'static str,
    /// Binarization of the published number.
    pub binarization: Binarization,
    /// What the published value is.
    pub kind: LikelihoodKind,
    /// Test NLL, nats per example.
    pub nll: f64,
    /// Where it comes from.
    pub citation: &'static str,
}

const fn bm(
    model: &'static str,
    variant: &'static str,
    kind: LikelihoodKind,
    nll: f64,
    citation: &'static str,
) -> Published {
    Published {
        model,
        variant,
        dataset: "binarized-mnist",
        binarization: Binarization::StaticFile,
        kind,
        nll,
        citation,
    }
}

use LikelihoodKind::{Exact, StochasticEstimate};

/// Every published number gm knows.
pub const TABLE: &[Published] = &[
    bm(
        "rbm",
        "500 hidden, CD-1",
        StochasticEstimate,
        125.53,
        "Salakhutdinov & Murray 2008 (AIS)",
    ),
    bm(
        "rbm",
        "500 hidden, CD-3",
        StochasticEstimate,
        105.50,
        "Salakhutdinov & Murray 2008 (AIS)",
    ),
    bm(
        "rbm",
        "500 hidden, CD-25",
        StochasticEstimate,
        86.34,
        "Salakhutdinov & Murray 2008 (AIS)",
    ),
    bm(
        "dbm",
        "2 hidden layers",
        StochasticEstimate,
        84.62,
        "Salakhutdinov & Hinton 2009 (AIS)",
    ),
    bm(
        "fvbn",
        "logistic FVBN",
        Exact,
        97.5,
        "Larochelle & Murray 2011",
    ),
    bm(
        "nade",
        "500 hidden",
        Exact,
        88.33,
        "Larochelle & Murray 2011",
    ),
    bm(
        "nade-k",
        "NADE-k, 2 hidden layers",
        Exact,
        87.13,
        "Raiko et al. 2014",
    ),
    bm(
        "deep-nade",
        "EoNADE 2 layers, 128 orderings",
        Exact,
        85.10,
        "Uria et al. 2014",
    ),
    bm("made", "32 masks", Exact, 86.64, "Germain et al. 2015"),
    bm(
        "vae",
        "1 stochastic layer, k = 1 (VAE), IS k = 5000",
        StochasticEstimate,
        88.71,
        "Burda et al. 2015, appendix (static binarization)",
    ),
    bm(
        "iwae",
        "1 stochastic layer, k = 5, IS k = 5000",
        StochasticEstimate,
        87.63,
        "Burda et al. 2015, appendix (static binarization)",
    ),
    bm(
        "iwae",
        "1 stochastic layer, k = 50, IS k = 5000",
        StochasticEstimate,
        87.10,
        "Burda et al. 2015, appendix (static binarization)",
    ),
    bm(
        "pixelcnn",
        "PixelCNN",
        Exact,
        81.30,
        "van den Oord et al. 2016",
    ),
];

/// The published numbers for `model` on `dataset` with `binarization`, of likelihood `kind`.
pub fn lookup(
    model: &str,
    dataset: &str,
    binarization: Binarization,
    kind: LikelihoodKind,
) -> Vec<&'static Published> {
    TABLE
        .iter()
        .filter(|p| {
            p.model == model
                && p.dataset == dataset
                && p.binarization == binarization
                && p.kind == kind
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_keyed_by_every_field() {
        let v = lookup(
            "vae",
            "binarized-mnist",
            Binarization::StaticFile,
            StochasticEstimate,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].nll, 88.71);
        assert!(lookup(
            "vae",
            "binarized-mnist",
            Binarization::StaticFile,
            LikelihoodKind::LowerBound
        )
        .is_empty());
        assert!(lookup("vae", "mnist", Binarization::StaticFile, StochasticEstimate).is_empty());
        assert_eq!(
            lookup(
                "rbm",
                "binarized-mnist",
                Binarization::StaticFile,
                StochasticEstimate
            )
            .len(),
            3
        );
        for p in TABLE {
            assert!(
                p.nll > 80.0 && p.nll < 130.0 && !p.citation.is_empty(),
                "{p:?}"
            );
        }
    }
}
