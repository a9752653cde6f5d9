//! Sample quality of one set of generated images, with its floors: every measure of
//! [`crate::quality`] and the Fréchet distance, for the samples and — in place of samples —
//! for the test split, as [`ResultRecord`]s, plus the nearest-neighbour grid.
//!
//! Protocol (n = min(samples, test, train) examples everywhere): the reference set is a
//! seeded random subset of n training images; the model's samples and a seeded random subset
//! of n test images are each compared
//! with it (Fréchet distance and precision / recall on the feature network's features, k-NN
//! radii with k = `k`), classified (label entropy, coverage), and matched with their nearest
//! neighbour in the *whole* training split, in pixel space and in feature space. The test
//! rows are the floor: what a model that draws fresh data from the data distribution would
//! score with the same n. Their records have the model name `test split` and the setting
//! `source = "test split"`; the model's have `source = "samples"`. All records have split
//! `train` (the reference).
//!
//! Like is compared with like: the training and test sets must be in one representation
//! (both 0/1, or both grey: binarize the training split the way the model saw it), and the
//! feature network must have been trained on that representation; [`assess`] refuses
//! otherwise. Every record's settings say the representation (`data`: `0/1` or `grey`),
//! what the samples are (`samples_are`, e.g. Bernoulli draws of the model's means) and
//! whether their values are 0/1 (`sample_values`), the network (`features`,
//! `feature_representation`), its accuracy on its own test split (`feature_test_accuracy`)
//! and, when test labels are given, on the n test images measured here
//! (`feature_accuracy_here`).
//!
//! ```no_run
//! use gm_eval::assess::{assess, Inputs};
//! use gm_eval::results::RecordContext;
//! # fn f(ctx: &RecordContext, s: &tch::Tensor, train: &tch::Tensor, test: &tch::Tensor,
//! #      net: &gm_eval::features::FeatureNet) -> gm_core::Result<()> {
//! let out = assess(ctx, &Inputs { samples: s, train, test, net: Some(net), k: 3, chunk: 512,
//!                                 samples_note: "Model::sample".into(),
//!                                 samples_are: "Bernoulli draws of the model's means".into(),
//!                                 test_labels: None, seed: 0 })?;
//! gm_core::image::save_grid(&out.grid, std::path::Path::new("nn-grid.png"),
//!     &gm_core::image::GridOptions { per_row: out.grid_per_row, ..Default::default() })?;
//! # Ok(()) }
//! ```

use std::time::Instant;

use gm_core::data::epoch_order;
use gm_core::{Error, Result};
use tch::{Kind, Tensor};

use crate::features::FeatureNet;
use crate::frechet::frechet_distance;
use crate::quality::{copy_check, label_stats, nearest, precision_recall};
use crate::results::{Metric, RecordContext, ResultRecord};

/// What [`assess`] measures.
pub struct Inputs<'a> {
    /// Generated images `[N, C, H, W]` in [0, 1].
    pub samples: &'a Tensor,
    /// The training split, in the representation of the model's data (binarized the same way).
    pub train: &'a Tensor,
    /// The test split as the model sees it.
    pub test: &'a Tensor,
    /// Labels of the test split, when it has them (for the feature network's accuracy here).
    pub test_labels: Option<&'a Tensor>,
    /// The feature network; without one only the pixel-space copy check is done.
    pub net: Option<&'a FeatureNet>,
    /// Neighbour rank of precision / recall (3).
    pub k: i64,
    /// Rows per distance chunk.
    pub chunk: i64,
    /// How the samples were produced (recorded in every model record's settings).
    pub samples_note: String,
    /// What the samples are, e.g. "Bernoulli draws of the model's means" (recorded too).
    pub samples_are: String,
    /// Seed of the random test and training subsets.
    pub seed: u64,
}

/// The records and the nearest-neighbour grid.
#[derive(Debug)]
pub struct Assessment {
    /// Model records then floor records.
    pub records: Vec<ResultRecord>,
    /// Rows of (sample | nearest training image in pixels | in features): the 8 samples
    /// closest to the training set, then 8 others.
    pub grid: Tensor,
    /// Images per row of `grid` (3, or 2 without features).
    pub grid_per_row: i64,
    /// The copy check's flagged samples, threshold and distance statistics.
    pub copy: crate::quality::CopyCheck,
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Whether every value of `x` is 0 or 1.
pub fn is_binary(x: &Tensor) -> bool {
    let _g = tch::no_grad_guard();
    x.ne(0.0).logical_and(&x.ne(1.0)).any().int64_value(&[]) == 0
}

fn values(binary: bool) -> &'static str {
    if binary {
        "0/1"
    } else {
        "grey"
    }
}

/// The representation of the data (0/1 or grey), checked: train and test agree, and so
/// does the feature network's.
fn representation(inputs: &Inputs<'_>) -> Result<bool> {
    let (tr, te) = (is_binary(inputs.train), is_binary(inputs.test));
    if tr != te {
        return Err(Error::Msg(format!(
            "sample quality: the training images are {} and the test images {}: binarize both the way the model saw them",
            values(tr),
            values(te)
        )));
    }
    if let Some(net) = inputs.net {
        if net.representation().is_binary() != tr {
            return Err(Error::Msg(format!(
                "sample quality: feature network {} was trained on {} images, the data is {}: use the network of the data's representation",
                net.id(),
                net.representation(),
                values(tr)
            )));
        }
    }
    Ok(tr)
}

/// Measures `inputs.samples` and the floors (see the module docs). `ctx` names the model;
/// its split is replaced by `train`.
pub fn assess(ctx: &RecordContext, inputs: &Inputs<'_>) -> Result<Assessment> {
    let _g = tch::no_grad_guard();
    let data_binary = representation(inputs)?;
    let sample_values = values(is_binary(inputs.samples));
    let (ns, ntr, nte) = (
        inputs.samples.size()[0],
        inputs.train.size()[0],
        inputs.test.size()[0],
    );
    let n = ns.min(ntr).min(nte);
    if n <= inputs.k {
        return Err(Error::config(
            "samples",
            n,
            format!(
                "more samples (and test / train examples) than k = {}",
                inputs.k
            ),
        ));
    }
    if inputs.samples.size()[1..] != inputs.train.size()[1..] {
        return Err(Error::Msg(format!(
            "samples have shape {:?}, the data {:?}",
            inputs.samples.size(),
            inputs.train.size()
        )));
    }
    let samples = inputs.samples.narrow(0, 0, n).to_kind(Kind::Float);
    // Seeded random subsets: data files may be sorted by class (binarized MNIST's test file is).
    let subset = |x: &Tensor, total: i64, stream: usize| {
        let mut idx = epoch_order(total, true, inputs.seed, stream);
        idx.truncate(n as usize);
        x.index_select(0, &Tensor::from_slice(&idx).to_device(x.device()))
    };
    let test = subset(inputs.test, nte, 1);
    let test_labels = inputs.test_labels.map(|y| subset(y, nte, 1));
    let reference = subset(inputs.train, ntr, 2);
    // Features first: the network's accuracy on these test images goes into every record.
    let feats = match inputs.net {
        Some(net) => {
            let t = Instant::now();
            let (fs, ps) = net.features_and_probs(&samples)?;
            let (ft, pt) = net.features_and_probs(&test)?;
            let fr = net.features(&reference)?;
            Some((net, fs, ps, ft, pt, fr, secs(t)))
        }
        None => None,
    };
    let accuracy_here = match (&feats, &test_labels) {
        (Some((_, _, _, _, pt, ..)), Some(y)) => Some(
            pt.argmax(1, false)
                .eq_tensor(&y.to_device(pt.device()))
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[]),
        ),
        _ => None,
    };
    let mut mctx = ctx.clone();
    mctx.split = "train".into();
    let mut fctx = mctx.clone();
    fctx.model = "test split".into();
    let base = |source: &str| {
        let mut s = serde_json::json!({
            "source": source,
            "reference": format!("{n} training images (seeded subset)"),
            "seed": inputs.seed,
            "data": values(data_binary),
        });
        if source == "samples" {
            s["samples"] = serde_json::json!(inputs.samples_note);
            s["samples_are"] = serde_json::json!(inputs.samples_are);
            s["sample_values"] = serde_json::json!(sample_values);
        }
        if let Some(net) = inputs.net {
            s["features"] = serde_json::json!(net.id());
            s["feature_representation"] = serde_json::json!(net.representation().to_string());
            s["feature_test_accuracy"] = serde_json::json!(net.test_accuracy());
        }
        if let Some(a) = accuracy_here {
            s["feature_accuracy_here"] = serde_json::json!(a);
        }
        s
    };
    let mut model_recs = Vec::new();
    let mut floor_recs = Vec::new();

    // Pixel-space nearest neighbours in the whole training split.
    let t = Instant::now();
    let (ds, is) = nearest(&samples, inputs.train, inputs.chunk)?;
    let (dt, _) = nearest(&test, inputs.train, inputs.chunk)?;
    let copy = copy_check(&ds, &dt)?;
    let nn_secs = secs(t);
    let mut s = base("samples");
    s["mean"] = copy.samples.mean.into();
    s["p01"] = copy.samples.p01.into();
    s["min"] = copy.samples.min.into();
    s["ratio_to_test"] = copy.median_ratio.into();
    s["space"] = "pixels".into();
    model_recs.push(mctx.value(
        Metric::NnDistance,
        "nn-median",
        s,
        copy.samples.median,
        n,
        nn_secs,
    ));
    let mut s = base("test split");
    s["mean"] = copy.test.mean.into();
    s["p01"] = copy.test.p01.into();
    s["min"] = copy.test.min.into();
    s["space"] = "pixels".into();
    floor_recs.push(fctx.value(
        Metric::NnDistance,
        "nn-median",
        s,
        copy.test.median,
        n,
        nn_secs,
    ));
    let mut s = base("samples");
    s["threshold"] = copy.threshold.into();
    s["flagged"] = (copy.flagged.len() as i64).into();
    s["rule"] = "pixel NN distance below the 1st percentile of test→train NN distances (fresh data: 1% by construction)".into();
    model_recs.push(mctx.value(
        Metric::NearCopies,
        "nn-copy-check",
        s,
        copy.flagged_fraction(),
        n,
        nn_secs,
    ));

    let mut feat_nn: Option<Tensor> = None;
    if let Some((net, fs, ps, ft, pt, fr, feat_secs)) = &feats {
        let (net, feat_secs) = (*net, *feat_secs);

        let t = Instant::now();
        let fid_s = frechet_distance(fs, fr)?;
        let fid_t = frechet_distance(ft, fr)?;
        let fid_secs = secs(t) + feat_secs;
        let mut r = mctx.frechet(&fid_s, net.id(), fid_secs / 2.0);
        r.settings = merge(base("samples"), r.settings);
        model_recs.push(r);
        let mut r = fctx.frechet(&fid_t, net.id(), fid_secs / 2.0);
        r.settings = merge(base("test split"), r.settings);
        floor_recs.push(r);

        for (fake, c, recs, src) in [
            (fs, &mctx, &mut model_recs, "samples"),
            (ft, &fctx, &mut floor_recs, "test split"),
        ] {
            let t = Instant::now();
            let pr = precision_recall(fr, fake, inputs.k, inputs.chunk)?;
            let sec = secs(t);
            let mut s = base(src);
            s["k"] = inputs.k.into();
            recs.push(c.value(
                Metric::Precision,
                "knn-manifold",
                s.clone(),
                pr.precision,
                n,
                sec,
            ));
            recs.push(c.value(Metric::Recall, "knn-manifold", s, pr.recall, n, sec));
        }
        for (p, c, recs, src) in [
            (ps, &mctx, &mut model_recs, "samples"),
            (pt, &fctx, &mut floor_recs, "test split"),
        ] {
            let t = Instant::now();
            let l = label_stats(p, 0.01)?;
            let sec = secs(t);
            let mut s = base(src);
            s["histogram"] = serde_json::json!(l.histogram);
            s["score"] = l.score.into();
            recs.push(c.value(
                Metric::LabelEntropy,
                "classifier",
                s.clone(),
                l.mean_entropy,
                n,
                sec,
            ));
            recs.push(c.value(
                Metric::MarginalLabelEntropy,
                "classifier",
                s.clone(),
                l.marginal_entropy,
                n,
                sec,
            ));
            s["min_share"] = l.min_share.into();
            recs.push(c.value(
                Metric::ClassCoverage,
                "classifier",
                s,
                l.covered as f64,
                n,
                sec,
            ));
        }
        // Feature-space nearest neighbours in the whole training split, for the grid.
        let ftrain = net.features(inputs.train)?;
        feat_nn = Some(nearest(fs, &ftrain, inputs.chunk)?.1);
    }

    // The grid: the 8 samples closest to the training set, then the first 8 others.
    let order = Vec::<i64>::try_from(&ds.argsort(0, false))?;
    let closest: Vec<i64> = order.iter().take(8).copied().collect();
    let others: Vec<i64> = (0..n)
        .filter(|i| !closest.contains(i))
        .take(16 - closest.len())
        .collect();
    let pick = [closest, others].concat();
    let mut rows = Vec::new();
    let cpu = |t: Tensor| t.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    for &i in &pick {
        rows.push(cpu(samples.get(i)));
        rows.push(cpu(inputs.train.get(is.int64_value(&[i]))));
        if let Some(f) = &feat_nn {
            rows.push(cpu(inputs.train.get(f.int64_value(&[i]))));
        }
    }
    let grid = Tensor::stack(&rows, 0);
    model_recs.extend(floor_recs);
    Ok(Assessment {
        records: model_recs,
        grid,
        grid_per_row: if feat_nn.is_some() { 3 } else { 2 },
        copy,
    })
}

fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureOptions;
    use gm_core::data::Binarization;
    use tch::Device;

    /// 4 classes of 12×12 images: a bright block in one quadrant, on noise.
    fn blocks(n: i64, classes: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let x = Tensor::rand([n, 1, 12, 12], (Kind::Float, Device::Cpu)) * 0.5;
        for i in 0..n {
            let c = classes[(i as usize) % classes.len()];
            let (r, col) = ((c / 2) * 6 + 1, (c % 2) * 6 + 1);
            let _ = x.get(i).narrow(1, r, 4).narrow(2, col, 4).fill_(1.0);
        }
        x
    }

    #[test]
    fn mode_dropping_and_copies_show_up_and_floors_are_clean() {
        let _rng = gm_core::rng_guard::lock();
        let all = [0, 1, 2, 3];
        let train = blocks(400, &all, 1);
        let labels = Tensor::from_slice(&(0..400).map(|i| i % 4).collect::<Vec<i64>>());
        let test = blocks(200, &all, 2);
        let tl = Tensor::from_slice(&(0..200).map(|i| i % 4).collect::<Vec<i64>>());
        let opts = FeatureOptions {
            epochs: 2,
            batch_size: 32,
            ..Default::default()
        };
        let net = FeatureNet::train(
            "blocks",
            (&train, &labels),
            (&test, &tl),
            4,
            Device::Cpu,
            &opts,
        )
        .unwrap();
        // Samples: only classes 0 and 1 (two modes dropped), the first 4 copied from training.
        let samples = blocks(200, &[0, 1], 3);
        for i in 0..4 {
            samples.get(i).copy_(&train.get(12 + 4 * i)); // class 0
        }
        let ctx = RecordContext {
            model: "toy".into(),
            config_hash: "0".into(),
            dataset: "blocks".into(),
            split: "test".into(),
            binarization: Binarization::None,
            labelled: None,
            device: "cpu".into(),
            checkpoint: None,
        };
        let a = assess(
            &ctx,
            &Inputs {
                samples: &samples,
                train: &train,
                test: &test,
                net: Some(&net),
                k: 3,
                chunk: 64,
                samples_note: "constructed".into(),
                samples_are: "constructed grey images".into(),
                test_labels: Some(&tl),
                seed: 7,
            },
        )
        .unwrap();
        let get = |model: &str, m: Metric| {
            a.records
                .iter()
                .find(|r| r.model == model && r.metric == m)
                .unwrap_or_else(|| panic!("{model} {m}"))
                .value
        };
        assert_eq!(get("toy", Metric::ClassCoverage), 2.0);
        assert_eq!(get("test split", Metric::ClassCoverage), 4.0);
        // Half the modes: about half the floor's recall (0.40 vs 0.80 measured), precision
        // like the floor's (0.82 vs 0.835).
        let (rs, rt) = (
            get("toy", Metric::Recall),
            get("test split", Metric::Recall),
        );
        assert!(rt > 0.7 && rs < 0.6 * rt, "recall {rs} vs floor {rt}");
        assert!(get("toy", Metric::Precision) > 0.7);
        assert!(
            get("toy", Metric::FrechetDistance) > 5.0 * get("test split", Metric::FrechetDistance)
        );
        assert!(get("test split", Metric::MarginalLabelEntropy) > 1.3); // ln 4 = 1.386
        assert!((get("toy", Metric::MarginalLabelEntropy) - 2f64.ln()).abs() < 0.1);
        for i in 0..4 {
            assert!(a.copy.flagged.contains(&i), "{:?}", a.copy);
        }
        assert_eq!(a.grid.size(), [48, 1, 12, 12]);
        assert_eq!(a.grid_per_row, 3);
        // The copies are the closest samples: their pixel neighbour is the original.
        assert!((0..4).any(|i| a.grid.get(1).equal(&train.get(12 + 4 * i))));
        assert!(a
            .records
            .iter()
            .all(|r| r.split == "train" && r.settings["features"] == "blocks-convnet-v1"));
    }
}
