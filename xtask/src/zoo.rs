//! `cargo xtask zoo <family|entry>...`: reproduce the published tables within a time budget.
//!
//! Each [`Entry`] is a config under `configs/` and the published number it is held against
//! (DESIGN.md §4). For every selected entry the zoo trains `runs/zoo/<entry>` with the
//! release `gm` for at most `--minutes` (resuming the run if it already exists, so repeated
//! calls continue where the last one stopped), evaluates it with `gm eval`, and prints one
//! table: epochs reached of the config's total, wall time, the test NLL with its kind and
//! standard error, the published figure, and the wall time the whole configured run needs
//! at the measured pace. The table is also written to `runs/zoo/<selection>.md` and
//! `.json`, with the command and the machine.
//!
//! ```text
//! cargo xtask zoo autoregressive --minutes 20
//! cargo xtask zoo autoregressive --table-only   # tabulate what the runs recorded
//! cargo xtask zoo rbm-cd1 rbm-pcd --minutes 10 --threads 2
//! ```

use std::{fs, path::Path, process::Command, time::Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{data, setup, util};

/// One reproducible result.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// `cargo xtask zoo <name>` and the run directory `runs/zoo/<name>`.
    pub name: &'static str,
    /// Family selector (`cargo xtask zoo <family>`).
    pub family: &'static str,
    /// Registry name of the model.
    pub model: &'static str,
    /// Run config, relative to the repository root.
    pub config: &'static str,
    /// Published test NLL (nats) on the same data, if there is one.
    pub published: Option<f64>,
    /// Where the published number comes from.
    pub source: &'static str,
    /// Extra arguments of `gm eval` (e.g. a limit for slow exact evaluations).
    pub eval_args: &'static [&'static str],
    /// The method (prefix) of the record held against the published figure, where a run
    /// reports several of the same kind (an ensemble beside its single orderings).
    pub method: Option<&'static str>,
}

/// The zoo. Adding an entry is adding a config and a line here.
pub const ENTRIES: &[Entry] = &[
    Entry {
        name: "rbm-cd1",
        family: "rbm",
        model: "rbm",
        config: "configs/rbm-cd1-mnist.toml",
        published: Some(125.53),
        source: "Salakhutdinov & Murray 2008, CD-1, 500 hidden, AIS",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "rbm-cd3",
        family: "rbm",
        model: "rbm",
        config: "configs/rbm-cd3-mnist.toml",
        published: Some(105.50),
        source: "Salakhutdinov & Murray 2008, CD-3, 500 hidden, AIS",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "rbm-cd25",
        family: "rbm",
        model: "rbm",
        config: "configs/rbm-cd25-mnist.toml",
        published: Some(86.34),
        source: "Salakhutdinov & Murray 2008, CD-25, 500 hidden, AIS",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "rbm-pcd",
        family: "rbm",
        model: "rbm",
        config: "configs/rbm-pcd-mnist.toml",
        published: None,
        source: "no published figure for this exact setting",
        eval_args: &["--samples", "1000", "--ais-reverse"],
        method: None,
    },
    Entry {
        name: "rbm-centered",
        family: "rbm",
        model: "rbm",
        config: "configs/rbm-centered-mnist.toml",
        published: Some(84.86),
        source: "Melchior et al. 2016 as run by PyDeep (RBM_MNIST_big), centered PCD-1, AIS",
        eval_args: &["--samples", "1000", "--ais-reverse"],
        method: None,
    },
    Entry {
        name: "rbm-uncentered",
        family: "rbm",
        model: "rbm",
        config: "configs/rbm-uncentered-mnist.toml",
        published: Some(130.81),
        source: "the same PyDeep run without centering, PCD-1, AIS",
        eval_args: &["--samples", "1000", "--ais-reverse"],
        method: None,
    },
    Entry {
        name: "fvbn",
        family: "autoregressive",
        model: "fvbn",
        config: "configs/fvbn-mnist.toml",
        published: Some(97.45),
        source: "Frey 1998, as reported by Larochelle & Murray 2011",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "narn",
        family: "autoregressive",
        model: "narn",
        config: "configs/narn-mnist.toml",
        published: None,
        source: "no published MNIST figure",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "nade",
        family: "autoregressive",
        model: "nade",
        config: "configs/nade-mnist.toml",
        published: Some(88.33),
        source: "Larochelle & Murray 2011 (88.33-88.86)",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "made",
        family: "autoregressive",
        model: "made",
        config: "configs/made-mnist.toml",
        published: Some(86.64),
        source: "Germain et al. 2015, 1 hidden layer, 32 masks",
        eval_args: &["--samples", "1000"],
        method: Some("made-ensemble"),
    },
    Entry {
        name: "nade-k",
        family: "autoregressive",
        model: "nade-k",
        config: "configs/nadek-mnist.toml",
        published: Some(87.13),
        source: "Raiko et al. 2014, 2 hidden layers (exact NLL costs 784 passes: 500 test images)",
        eval_args: &["--limit", "500", "--samples", "1000"],
        method: None,
    },
    Entry {
        name: "eonade",
        family: "autoregressive",
        model: "deep-nade",
        config: "configs/deepnade-mnist.toml",
        published: Some(85.10),
        source: "Uria et al. 2014, 2 hidden layers, 128 orderings (100 test images here)",
        eval_args: &["--limit", "100", "--samples", "1000"],
        method: Some("eonade-"),
    },
    Entry {
        name: "pixelcnn",
        family: "autoregressive",
        model: "pixelcnn",
        config: "configs/pixelcnn-mnist.toml",
        published: Some(81.30),
        source: "van den Oord et al. 2016 (sampling 784 passes: no sample-quality metrics here)",
        eval_args: &["--no-quality"],
        method: None,
    },
    Entry {
        name: "vae",
        family: "vae",
        model: "vae",
        config: "configs/vae-binarized-mnist.toml",
        published: Some(88.71),
        source: "Burda et al. 2015, appendix: 1 stochastic layer, k = 1, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "iwae",
        family: "vae",
        model: "iwae",
        config: "configs/iwae-binarized-mnist.toml",
        published: Some(87.63),
        source: "Burda et al. 2015, appendix: 1 stochastic layer, k = 5, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "iwae2",
        family: "vae",
        model: "iwae",
        config: "configs/iwae2-mnist.toml",
        published: Some(82.90),
        source: "Burda et al. 2015, table 1 (dynamic binarization): 2 stochastic layers, k = 50, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "iwae-k50",
        family: "vae",
        model: "iwae",
        config: "configs/iwae-k50-binarized-mnist.toml",
        published: Some(87.10),
        source: "Burda et al. 2015, appendix: 1 stochastic layer, k = 50, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "vae-dynamic",
        family: "vae",
        model: "vae",
        config: "configs/vae-mnist-dynamic.toml",
        published: Some(86.76),
        source: "Burda et al. 2015, table 1 (dynamic binarization): 1 stochastic layer, k = 1, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "iwae-dynamic",
        family: "vae",
        model: "iwae",
        config: "configs/iwae-mnist-dynamic.toml",
        published: Some(85.54),
        source: "Burda et al. 2015, table 1 (dynamic binarization): 1 stochastic layer, k = 5, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "iwae-k50-dynamic",
        family: "vae",
        model: "iwae",
        config: "configs/iwae-k50-mnist-dynamic.toml",
        published: Some(84.78),
        source: "Burda et al. 2015, table 1 (dynamic binarization): 1 stochastic layer, k = 50, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "vae2",
        family: "vae",
        model: "iwae",
        config: "configs/vae2-mnist.toml",
        published: Some(85.33),
        source: "Burda et al. 2015, table 1 (dynamic binarization): 2 stochastic layers, k = 1, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "iwae2-k5",
        family: "vae",
        model: "iwae",
        config: "configs/iwae2-k5-mnist.toml",
        published: Some(83.89),
        source: "Burda et al. 2015, table 1 (dynamic binarization): 2 stochastic layers, k = 5, IS k = 5000",
        eval_args: &["--samples", "1000"],
        method: Some("importance-sampling"),
    },
    Entry {
        name: "dbn",
        family: "dbn",
        model: "dbn",
        config: "configs/dbn-mnist.toml",
        published: None,
        source: "no published bound for this CD-1 stack (Salakhutdinov & Murray 2008: 86.22 \
                 for 784-500-2000 from CD-25 RBMs, their own binarization)",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "dbn2-pcd",
        family: "dbn",
        model: "dbn",
        config: "configs/dbn2-pcd-mnist.toml",
        published: Some(86.22),
        source: "Salakhutdinov & Murray 2008: 784-500-2000 DBN of CD-25 RBMs (their own \
                 binarization); this stack uses PCD-1 RBMs, set beside the single rbm-pcd",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "dbn-pcd",
        family: "dbn",
        model: "dbn",
        config: "configs/dbn-pcd-mnist.toml",
        published: None,
        source: "no published bound for this PCD-1 stack (Salakhutdinov & Murray 2008: 86.22 \
                 for 784-500-2000 from CD-25 RBMs, their own binarization)",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "dbn-finetune",
        family: "dbn",
        model: "dbn",
        config: "configs/dbn-finetune-mnist.toml",
        published: None,
        source: "classification: 1.25 % test error after up-down fine-tuning, about 1.2 % \
                 with back-propagation (Hinton et al. 2006)",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        name: "dbm-784-500-1000",
        family: "dbm",
        model: "dbm",
        config: "configs/dbm-mnist.toml",
        published: Some(84.62),
        source: "Salakhutdinov & Hinton 2009: 784-500-1000 DBM, mean-field bound with AIS log Z \
                 (their fixed stochastic binarization)",
        eval_args: &["--ais-reverse"],
        method: None,
    },
    Entry {
        name: "dbm-784-500-500-1000",
        family: "dbm",
        model: "dbm",
        config: "configs/dbm3-mnist.toml",
        published: Some(85.10),
        source: "Salakhutdinov & Hinton 2009: 784-500-500-1000 DBM, mean-field bound with AIS \
                 log Z (their fixed stochastic binarization)",
        eval_args: &["--ais-reverse"],
        method: None,
    },
    Entry {
        name: "dbm-centered",
        family: "dbm",
        model: "dbm",
        config: "configs/dbm-centered-mnist.toml",
        published: Some(84.62),
        source: "Salakhutdinov & Hinton 2009's pre-trained 784-500-1000 DBM; this one is \
                 centered and trained jointly from the start",
        eval_args: &["--ais-reverse"],
        method: None,
    },
    Entry {
        name: "dbm-finetune",
        family: "dbm",
        model: "dbm",
        config: "configs/dbm-finetune-mnist.toml",
        published: Some(84.62),
        source: "classification: 0.95 % test error after fine-tuning (Salakhutdinov & Hinton \
                 2009); the NLL column is the mean-field bound with AIS log Z of this \
                 shortened run (theirs −84.62 after 500 epochs)",
        eval_args: &["--samples", "1000", "--ais-reverse"],
        method: None,
    },
    Entry {
        name: "dbm-centered-finetune",
        family: "dbm",
        model: "dbm",
        config: "configs/dbm-centered-finetune-mnist.toml",
        published: Some(84.62),
        source: "classification: 0.95 % test error after fine-tuning a pre-trained DBM \
                 (Salakhutdinov & Hinton 2009); here a centered DBM, shortened; the NLL \
                 column is its mean-field bound with AIS log Z",
        eval_args: &["--samples", "1000", "--ais-reverse"],
        method: None,
    },
    Entry {
        name: "mp-dbm",
        family: "dbm",
        model: "mp-dbm",
        config: "configs/mp-dbm-mnist.toml",
        published: None,
        source: "classification: 0.88 % test error of the mean-field classifier \
                 (Goodfellow et al. 2013); no likelihood (the criterion does not fit it)",
        eval_args: &["--samples", "1000"],
        method: None,
    },
    Entry {
        // Not "gan": an entry named like its family could not be selected alone.
        name: "gan-ns",
        family: "gan",
        model: "gan",
        config: "configs/gan-mnist.toml",
        // The paper's Parzen log-likelihood 225 ± 2 nats is an NLL of −225.
        published: Some(-225.0),
        source: "Goodfellow et al. 2014, Parzen window on real-valued MNIST (weak estimate)",
        eval_args: &["--parzen"],
        method: None,
    },
    Entry {
        name: "gan-minimax",
        family: "gan",
        model: "gan",
        config: "configs/gan-minimax-mnist.toml",
        published: None,
        source: "minimax loss; Lucic et al. 2018 (Inception features): NS GAN FID 6.8 vs MM GAN 9.8 on MNIST",
        eval_args: &["--parzen"],
        method: None,
    },
    Entry {
        name: "cgan",
        family: "gan",
        model: "cgan",
        config: "configs/cgan-mnist.toml",
        published: None,
        source: "no published figure on this feature network: sample quality only",
        eval_args: &["--parzen"],
        method: None,
    },
    Entry {
        name: "dcgan",
        family: "gan",
        model: "dcgan",
        config: "configs/dcgan-mnist.toml",
        published: None,
        source: "no published figure on this feature network: sample quality only",
        eval_args: &["--parzen"],
        method: None,
    },
    Entry {
        name: "lapgan",
        family: "gan",
        model: "lapgan",
        config: "configs/lapgan-mnist.toml",
        published: None,
        source: "no published figure on this feature network: sample quality only",
        eval_args: &["--parzen"],
        method: None,
    },
    Entry {
        name: "gmmn",
        family: "gan",
        model: "gmmn",
        config: "configs/gmmn-mnist.toml",
        published: Some(-147.0),
        source: "Li et al. 2015, Parzen window on real-valued MNIST (weak estimate)",
        eval_args: &["--parzen"],
        method: None,
    },
    Entry {
        name: "gmmn-ae",
        family: "gan",
        model: "gmmn-ae",
        config: "configs/gmmn-ae-mnist.toml",
        published: Some(-282.0),
        source: "Li et al. 2015, Parzen window on real-valued MNIST (weak estimate)",
        eval_args: &["--parzen"],
        method: None,
    },
    Entry {
        name: "gan-fashion",
        family: "gan",
        model: "gan",
        config: "configs/gan-fashion-mnist.toml",
        published: None,
        source: "Lucic et al. 2018 (Inception features): NS GAN FID 26.5 vs MM GAN 29.6 on Fashion-MNIST",
        eval_args: &[],
        method: None,
    },
    Entry {
        name: "gan-minimax-fashion",
        family: "gan",
        model: "gan",
        config: "configs/gan-minimax-fashion-mnist.toml",
        published: None,
        source: "Lucic et al. 2018 (Inception features): NS GAN FID 26.5 vs MM GAN 29.6 on Fashion-MNIST",
        eval_args: &[],
        method: None,
    },
    Entry {
        name: "cgan-fashion",
        family: "gan",
        model: "cgan",
        config: "configs/cgan-fashion-mnist.toml",
        published: None,
        source: "no published figure on this feature network: sample quality only",
        eval_args: &[],
        method: None,
    },
    Entry {
        name: "dcgan-fashion",
        family: "gan",
        model: "dcgan",
        config: "configs/dcgan-fashion-mnist.toml",
        published: None,
        source: "no published figure on this feature network: sample quality only",
        eval_args: &[],
        method: None,
    },
    Entry {
        name: "lapgan-fashion",
        family: "gan",
        model: "lapgan",
        config: "configs/lapgan-fashion-mnist.toml",
        published: None,
        source: "no published figure on this feature network: sample quality only",
        eval_args: &[],
        method: None,
    },
    Entry {
        name: "gmmn-fashion",
        family: "gan",
        model: "gmmn",
        config: "configs/gmmn-fashion-mnist.toml",
        published: None,
        source: "no published figure on this feature network: sample quality only",
        eval_args: &[],
        method: None,
    },
    Entry {
        name: "gmmn-ae-fashion",
        family: "gan",
        model: "gmmn-ae",
        config: "configs/gmmn-ae-fashion-mnist.toml",
        published: None,
        source: "no published figure on this feature network: sample quality only",
        eval_args: &[],
        method: None,
    },
    Entry {
        name: "wgan-gp-fashion",
        family: "gan",
        model: "gan",
        config: "configs/wgan-gp-fashion-mnist.toml",
        published: None,
        source: "beyond the chapter (WGAN-GP): no published figure on this feature network",
        eval_args: &[],
        method: None,
    },
    Entry {
        name: "vae-grey",
        family: "gan",
        model: "vae",
        config: "configs/vae-grey-mnist.toml",
        published: None,
        source: "the VAE beside the GANs (grey MNIST, Gaussian decoder): sample quality only",
        eval_args: &["--limit", "1000"],
        method: None,
    },
    Entry {
        name: "vae-fashion",
        family: "gan",
        model: "vae",
        config: "configs/vae-fashion-mnist.toml",
        published: None,
        source: "the VAE beside the GANs (Fashion-MNIST, Gaussian decoder): sample quality only",
        eval_args: &["--limit", "1000"],
        method: None,
    },
    Entry {
        name: "realnvp",
        family: "flow",
        model: "realnvp",
        config: "configs/realnvp-mnist.toml",
        published: Some(576.0),
        source: "RealNVP 1.06 bits/dim = 576.0 nats, dequantized MNIST (FFJORD table 1); gm's is the dequantization bound",
        eval_args: &["--samples", "2000"],
        method: None,
    },
    Entry {
        name: "glow",
        family: "flow",
        model: "glow",
        config: "configs/glow-mnist.toml",
        published: Some(570.6),
        source: "Glow 1.05 bits/dim = 570.6 nats, dequantized MNIST (FFJORD table 1); gm's is the dequantization bound",
        eval_args: &["--samples", "2000"],
        method: None,
    },
    Entry {
        name: "maf",
        family: "flow",
        model: "maf",
        config: "configs/maf-mnist.toml",
        published: None,
        source: "Papamakarios et al. 2017 report MNIST in logit space, not comparable with pixel-space bits/dim; the neighbours are RealNVP 1.06, Glow 1.05 bits/dim",
        eval_args: &["--samples", "2000"],
        method: None,
    },
    Entry {
        name: "ddpm",
        family: "diffusion",
        model: "ddpm",
        config: "configs/ddpm-mnist.toml",
        published: None,
        source: "no published DDPM bound on MNIST (the flows' column: RealNVP 1.06, Glow 1.05, FFJORD 0.99 bits/dim); a variational bound",
        eval_args: &["--limit", "200", "--samples", "500"],
        method: None,
    },
    Entry {
        name: "binary-diffusion",
        family: "diffusion",
        model: "binary-diffusion",
        config: "configs/binary-diffusion-binarized-mnist.toml",
        published: None,
        source: "no published diffusion bound on the static binarized MNIST; the column's neighbours: NADE 88.86, VAE (IWAE k = 1) 88.71 (lower is better)",
        eval_args: &["--samples", "2000"],
        method: None,
    },
];

/// Options of `cargo xtask zoo`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Entry names or family names.
    pub select: Vec<String>,
    /// Training budget per entry, minutes (this call; a resumed run gets a new budget).
    pub minutes: f64,
    /// libtorch threads of `gm`.
    pub threads: Option<usize>,
    /// Skip training; only evaluate and tabulate what exists.
    pub eval_only: bool,
    /// Skip training and evaluation; tabulate the results the runs recorded.
    pub table_only: bool,
    /// Data mirror, for fetching the datasets.
    pub mirror: Option<String>,
}

/// The entries a selection names (entry names or family names), in table order.
pub fn select(names: &[String]) -> Result<Vec<&'static Entry>> {
    if names.is_empty() {
        bail!("name a family ({}) or entries", families().join(", "));
    }
    for n in names {
        if !ENTRIES.iter().any(|e| e.name == n || e.family == n) {
            bail!(
                "unknown zoo entry or family {n:?}; families: {}; entries: {}",
                families().join(", "),
                ENTRIES
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(ENTRIES
        .iter()
        .filter(|e| names.iter().any(|n| n == e.name || n == e.family))
        .collect())
}

/// The distinct family names.
pub fn families() -> Vec<&'static str> {
    let mut f: Vec<_> = ENTRIES.iter().map(|e| e.family).collect();
    f.dedup();
    f
}

/// Runs the selected entries and writes the table.
pub fn run(opts: &Options) -> Result<()> {
    let entries = select(&opts.select)?;
    let repo = util::repo_root();
    for e in &entries {
        if !repo.join(e.config).exists() {
            bail!("{}: config {} is missing", e.name, e.config);
        }
    }
    let zoo_dir = repo.join("runs/zoo");
    if opts.table_only {
        let mut rows = Vec::new();
        for e in &entries {
            let run_dir = zoo_dir.join(e.name);
            if run_dir.join("results.json").exists() {
                rows.push(row(e, &run_dir, None, None)?);
            } else {
                println!(
                    "zoo {}: no evaluated run in {}",
                    e.name,
                    util::show(&run_dir)
                );
            }
        }
        if rows.is_empty() {
            bail!("none of the selected entries has an evaluated run in runs/zoo");
        }
        return write_table(opts, &zoo_dir, &rows);
    }
    let lt = setup::ensure(false)?;
    data::run(&data::Options {
        names: datasets(&entries)?,
        all: false,
        mirror: opts.mirror.clone(),
    })?;
    util::run(
        util::cargo(&lt).args(["build", "--release", "-p", "gm-cli"]),
        "cargo build --release -p gm-cli",
    )?;
    let gm = crate::target_dir(&repo).join("release/gm");
    fs::create_dir_all(&zoo_dir).with_context(|| format!("creating {}", zoo_dir.display()))?;

    let mut rows = Vec::new();
    for e in &entries {
        let run_dir = zoo_dir.join(e.name);
        let gm_cmd = |args: &[&str]| {
            let mut c = Command::new(&gm);
            c.current_dir(&repo);
            if let Some(t) = opts.threads {
                c.args(["--threads", &t.to_string()]);
            }
            c.args(args);
            util::apply_libtorch_env(&mut c, &lt);
            c
        };
        let t0 = Instant::now();
        if !opts.eval_only {
            let minutes = opts.minutes.to_string();
            let resumable = run_dir.join("checkpoints/latest").exists();
            let mut c = if resumable {
                println!("==> zoo {}: resuming {}", e.name, util::show(&run_dir));
                gm_cmd(&[
                    "train",
                    "--resume",
                    &run_dir.display().to_string(),
                    "--max-minutes",
                    &minutes,
                ])
            } else {
                println!("==> zoo {}: training {} ({})", e.name, e.model, e.config);
                gm_cmd(&[
                    "train",
                    e.model,
                    "--config",
                    e.config,
                    "--out",
                    &zoo_dir.display().to_string(),
                    "--name",
                    e.name,
                    "--force",
                    "--max-minutes",
                    &minutes,
                ])
            };
            util::run(&mut c, &format!("gm train ({})", e.name))?;
        }
        let train_call_seconds = t0.elapsed().as_secs_f64();
        println!("==> zoo {}: evaluating", e.name);
        let t1 = Instant::now();
        let run_str = run_dir.display().to_string();
        let mut args = vec!["eval", run_str.as_str()];
        args.extend_from_slice(e.eval_args);
        util::run(&mut gm_cmd(&args), &format!("gm eval ({})", e.name))?;
        let eval_seconds = t1.elapsed().as_secs_f64();
        rows.push(row(
            e,
            &run_dir,
            Some(train_call_seconds),
            Some(eval_seconds),
        )?);
    }
    write_table(opts, &zoo_dir, &rows)
}

/// The datasets the entries' configs train on (`[data] dataset`), each once.
fn datasets(entries: &[&Entry]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for e in entries {
        let cfg = read_config(&util::repo_root().join(e.config))?;
        let Some(d) = cfg
            .get("data")
            .and_then(|t| t.get("dataset"))
            .and_then(toml::Value::as_str)
        else {
            bail!("{}: {} has no [data] dataset", e.name, e.config);
        };
        if !names.iter().any(|n| n == d) {
            names.push(d.to_owned());
        }
    }
    Ok(names)
}

fn read_config(path: &Path) -> Result<toml::Table> {
    fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .parse()
        .with_context(|| format!("parsing {}", path.display()))
}

/// Prints the table and writes `runs/zoo/<selection>.md` and `.json`.
fn write_table(opts: &Options, zoo_dir: &Path, rows: &[Value]) -> Result<()> {
    let table = markdown(rows);
    println!("\n{table}");
    let stem = opts.select.join("+");
    let md = zoo_dir.join(format!("{stem}.md"));
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let command = if opts.table_only {
        format!("cargo xtask zoo {} --table-only", opts.select.join(" "))
    } else {
        format!(
            "cargo xtask zoo {} --minutes {}{}{}",
            opts.select.join(" "),
            opts.minutes,
            opts.threads
                .map(|t| format!(" --threads {t}"))
                .unwrap_or_default(),
            if opts.eval_only { " --eval-only" } else { "" }
        )
    };
    fs::write(
        &md,
        format!(
            "# gm zoo: {stem}\n\n`{command}` on {} ({} cores)\n\n{table}",
            host.trim(),
            crate::bench::default_threads()
        ),
    )
    .with_context(|| format!("writing {}", md.display()))?;
    let js = zoo_dir.join(format!("{stem}.json"));
    fs::write(
        &js,
        serde_json::to_string_pretty(&json!({"command": command, "rows": rows}))? + "\n",
    )
    .with_context(|| format!("writing {}", js.display()))?;
    println!("zoo: wrote {} and {}", util::show(&md), util::show(&js));
    Ok(())
}

/// What a run directory says about one entry.
/// `train_call_seconds` and `eval_seconds` are this call's (none with `--table-only`).
fn row(
    e: &Entry,
    run_dir: &Path,
    train_call_seconds: Option<f64>,
    eval_seconds: Option<f64>,
) -> Result<Value> {
    let metrics = run_dir.join("metrics.jsonl");
    let last = fs::read_to_string(&metrics)
        .with_context(|| format!("reading {}", metrics.display()))?
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    let epochs_done = last
        .as_ref()
        .and_then(|v| v.get("epoch"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let train_seconds = last
        .as_ref()
        .and_then(|v| v.get("seconds"))
        .and_then(Value::as_f64);
    let cfg = read_config(&run_dir.join("config.toml"))?;
    let epochs_total = cfg
        .get("train")
        .and_then(|t| t.get("epochs"))
        .and_then(toml::Value::as_integer)
        .map(|v| v as f64);
    let full_run_hours = match (train_seconds, epochs_total) {
        (Some(s), Some(total)) if epochs_done > 0.0 => Some(s / epochs_done * total / 3600.0),
        _ => None,
    };
    let results = load_results(&run_dir.join("results.json"))?;
    let best = best_nll(&results, e.method);
    let reverse = reverse_ais_nll(&results);
    let mut row = json!({
        "entry": e.name,
        "model": e.model,
        "config": e.config,
        "run_dir": run_dir.display().to_string(),
        "epochs_done": epochs_done,
        "epochs_total": epochs_total,
        "train_seconds": train_seconds,
        "this_call_train_seconds": train_call_seconds,
        "eval_seconds": eval_seconds,
        "full_run_hours_at_this_pace": full_run_hours,
        "test_nll": best.as_ref().map(|b| b.0),
        "test_nll_std_err": best.as_ref().and_then(|b| b.1),
        "kind": best.as_ref().map(|b| b.2.clone()),
        "method": best.as_ref().map(|b| b.3.clone()),
        "reverse_ais_nll": reverse,
        "reverse_ais_misses_mass": reverse_ais_misses_mass(&results),
        "published": e.published,
        "published_source": e.source,
    });
    if let (Value::Object(r), Value::Object(q)) = (&mut row, quality(&results)) {
        r.extend(q);
    }
    Ok(row)
}

/// The sample-quality records of `gm eval` (samples and the test-split floor): Fréchet
/// distance, precision, recall and class coverage on the feature network, keyed
/// `fd` / `fd_floor`, …; empty when the run has none.
fn quality(records: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for r in records {
        let Some(metric) = r.get("metric").and_then(Value::as_str) else {
            continue;
        };
        let key = match metric {
            "frechet_distance" => "fd",
            "precision" => "precision",
            "recall" => "recall",
            "class_coverage" => "classes",
            _ => continue,
        };
        let source = r["settings"]["source"].as_str();
        let key = match source {
            Some("samples") => key.to_owned(),
            Some("test split") => format!("{key}_floor"),
            _ => continue,
        };
        if let Some(v) = r.get("value").and_then(Value::as_f64) {
            out.insert(key, v.into());
        }
        if source == Some("samples") && metric == "frechet_distance" {
            out.insert("quality_samples".into(), r["n"].clone());
            out.insert("features".into(), r["settings"]["features"].clone());
        }
    }
    Value::Object(out)
}

fn load_results(path: &Path) -> Result<Vec<Value>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(match v {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    })
}

/// The test NLL with log Ẑ from reverse AIS (`gm eval --ais-reverse`), if recorded: shown
/// beside the forward estimate, whose convergence it checks.
fn reverse_ais_nll(records: &[Value]) -> Option<f64> {
    reverse_ais_record(records).and_then(parse_nll).map(|r| r.0)
}

fn reverse_ais_record(records: &[Value]) -> Option<&Value> {
    records
        .iter()
        .find(|r| parse_nll(r).is_some_and(|p| p.3.contains("reverse-ais")))
}

/// Whether `gm eval` found the reverse log Ẑ further below the forward one than exact
/// starting samples allow (probability under 1 %): its chains miss mass of the model.
fn reverse_ais_misses_mass(records: &[Value]) -> bool {
    reverse_ais_record(records)
        .and_then(|r| r["settings"]["probability_if_exact_starts"].as_f64())
        .is_some_and(|p| p < 0.01)
}

/// (NLL, std err, kind, method) of a test log-likelihood record: exact first, then
/// stochastic estimates, then bounds, then Parzen-window estimates (models without a
/// likelihood).
/// With `method`, a record whose method starts with it comes first within its kind.
/// Reverse-AIS records are left out: they check the forward estimate (see `reverse_ais_nll`).
fn best_nll(records: &[Value], method: Option<&str>) -> Option<(f64, Option<f64>, String, String)> {
    let parsed: Vec<_> = records
        .iter()
        .filter_map(parse_nll)
        .filter(|r| !r.3.contains("reverse-ais"))
        .collect();
    for kind in ["exact", "stochastic_estimate", "lower_bound", "parzen"] {
        let of_kind = || parsed.iter().filter(|r| r.2 == kind);
        let preferred = method.and_then(|m| of_kind().find(|r| r.3.starts_with(m)));
        if let Some(r) = preferred.or_else(|| of_kind().next()) {
            return Some(r.clone());
        }
    }
    None
}

/// Reads one record in either results.json layout: `{kind, nll, std_err, method}` or
/// gm-eval's `{metric: {log_likelihood: kind}, value, std_err, method}`.
fn parse_nll(r: &Value) -> Option<(f64, Option<f64>, String, String)> {
    if r.get("split")
        .and_then(Value::as_str)
        .is_some_and(|s| s != "test")
    {
        return None;
    }
    let method = r.get("method").and_then(Value::as_str).unwrap_or("?");
    let se = r.get("std_err").and_then(Value::as_f64);
    if let (Some(nll), Some(kind)) = (
        r.get("nll").and_then(Value::as_f64),
        r.get("kind").and_then(Value::as_str),
    ) {
        return Some((nll, se, kind.to_owned(), method.to_owned()));
    }
    let kind = r.get("metric")?.get("log_likelihood")?.as_str()?;
    let value = r.get("value")?.as_f64()?;
    Some((-value, se, kind.to_owned(), method.to_owned()))
}

/// The rows as a Markdown table; rows with sample-quality records get a second table.
pub fn markdown(rows: &[Value]) -> String {
    let mut s = nll_table(rows);
    let quality: Vec<_> = rows.iter().filter(|r| r.get("fd").is_some()).collect();
    if !quality.is_empty() {
        s += "\n";
        s += &quality_table(&quality);
    }
    s
}

/// Sample quality beside the test split's floor (the same metric on held-out real images).
fn quality_table(rows: &[&Value]) -> String {
    let mut s = String::from(
        "| entry | samples | features | Fréchet distance (floor) | precision (floor) | \
         recall (floor) | classes (floor) |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let pair = |k: &str, digits: usize| match r.get(k).and_then(Value::as_f64) {
            Some(v) => {
                let floor = r
                    .get(format!("{k}_floor"))
                    .and_then(Value::as_f64)
                    .map_or("—".into(), |f| format!("{f:.digits$}"));
                format!("{v:.digits$} ({floor})")
            }
            None => "—".into(),
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r["entry"].as_str().unwrap_or("?"),
            r["quality_samples"]
                .as_i64()
                .map_or("?".into(), |n| n.to_string()),
            r["features"].as_str().unwrap_or("?"),
            pair("fd", 2),
            pair("precision", 3),
            pair("recall", 3),
            pair("classes", 0),
        );
    }
    s
}

/// Test NLL (or the Parzen estimate) against the published figure.
fn nll_table(rows: &[Value]) -> String {
    let mut s = String::from(
        "| entry | epochs | train time | test NLL (nats) | kind | published | full run needs |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let f = |k: &str| r.get(k).and_then(Value::as_f64);
        let epochs = match (f("epochs_done"), f("epochs_total")) {
            (Some(d), Some(t)) => format!("{d:.0} / {t:.0}"),
            (Some(d), None) => format!("{d:.0}"),
            _ => "?".into(),
        };
        let nll = match (f("test_nll"), f("test_nll_std_err")) {
            (Some(v), Some(se)) => format!("{v:.2} ± {se:.2}"),
            (Some(v), None) => format!("{v:.2}"),
            _ => "—".into(),
        };
        let misses = r["reverse_ais_misses_mass"].as_bool() == Some(true);
        let nll = match f("reverse_ais_nll") {
            Some(r) if misses => {
                format!("{nll} (reverse AIS: {r:.2}, below forward: chains miss mass)")
            }
            Some(r) => format!("{nll} (reverse AIS: {r:.2})"),
            None => nll,
        };
        s += &format!(
            "| {} | {epochs} | {} | {nll} | {} {} | {} | {} |\n",
            r["entry"].as_str().unwrap_or("?"),
            f("train_seconds").map_or("—".into(), |t| format!("{:.1} min", t / 60.0)),
            r["kind"].as_str().unwrap_or("—"),
            r["method"]
                .as_str()
                .map(|m| format!("({m})"))
                .unwrap_or_default(),
            f("published").map_or("—".into(), |p| format!("{p:.2}")),
            f("full_run_hours_at_this_pace").map_or("—".into(), |h| format!("{h:.1} h")),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The configs every entry names, for the consistency test.
    fn config_paths() -> Vec<PathBuf> {
        ENTRIES
            .iter()
            .map(|e| util::repo_root().join(e.config))
            .collect()
    }

    #[test]
    fn selection_by_family_and_name() {
        let all_rbm = select(&["rbm".into()]).unwrap();
        assert!(all_rbm.iter().all(|e| e.family == "rbm") && all_rbm.len() >= 3);
        let one = select(&["nade".into()]).unwrap();
        assert_eq!(one.len(), 1);
        assert!(select(&["nope".into()]).is_err());
        assert!(select(&[]).is_err());
    }

    #[test]
    fn entries_are_unique_and_configs_name_their_model() {
        let mut names: Vec<_> = ENTRIES.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ENTRIES.len());
        for (e, p) in ENTRIES.iter().zip(config_paths()) {
            let Ok(text) = fs::read_to_string(&p) else {
                panic!("{}: config {} is missing", e.name, p.display());
            };
            let t: toml::Table = text.parse().unwrap();
            assert_eq!(
                t["model"]["name"].as_str(),
                Some(e.model),
                "{}: [model] name",
                e.name
            );
        }
    }

    #[test]
    fn both_result_layouts_are_read() {
        let old = json!({"split": "test", "kind": "exact", "nll": 88.5, "std_err": 0.3, "method": "nade"});
        let new = json!({"split": "test", "metric": {"log_likelihood": "stochastic_estimate"},
                         "value": -90.0, "std_err": 0.5, "method": "ais"});
        let valid = json!({"split": "valid", "kind": "exact", "nll": 1.0, "method": "x"});
        let best = best_nll(&[new.clone(), old.clone(), valid], None).unwrap();
        assert_eq!((best.0, best.2.as_str()), (88.5, "exact"));
        let ens =
            json!({"split": "test", "kind": "exact", "nll": 85.0, "method": "eonade-8-orderings"});
        let pair = [old.clone(), ens];
        assert_eq!(best_nll(&pair, Some("eonade-")).unwrap().0, 85.0);
        assert_eq!(best_nll(&pair, None).unwrap().0, 88.5);
        assert_eq!(best_nll(&pair, Some("absent")).unwrap().0, 88.5);
        let only_new = best_nll(&[new], None).unwrap();
        assert_eq!((only_new.0, only_new.1), (90.0, Some(0.5)));
        let row = json!({"entry": "nade", "epochs_done": 3.0, "epochs_total": 100.0,
            "train_seconds": 600.0, "test_nll": 95.0, "test_nll_std_err": 0.3, "kind": "exact",
            "method": "nade", "published": 88.33, "full_run_hours_at_this_pace": 5.6});
        let md = markdown(std::slice::from_ref(&row));
        assert!(!md.contains("Fréchet"), "{md}");
        assert!(
            md.contains(
                "| nade | 3 / 100 | 10.0 min | 95.00 ± 0.30 | exact (nade) | 88.33 | 5.6 h |"
            ),
            "{md}"
        );
        let fwd = json!({"split": "test", "metric": {"log_likelihood": "stochastic_estimate"},
                         "value": -79.0, "std_err": 0.6, "method": "mean-field-bound+ais"});
        let rev = json!({"split": "test", "metric": {"log_likelihood": "stochastic_estimate"},
                         "value": -97.9, "std_err": 0.9,
                         "method": "mean-field-bound+reverse-ais"});
        let pair = [fwd.clone(), rev.clone()];
        assert_eq!(best_nll(&pair, None).unwrap().0, 79.0);
        assert_eq!(best_nll(&[rev.clone(), fwd.clone()], None).unwrap().0, 79.0);
        assert_eq!(best_nll(&[rev], None), None);
        assert_eq!(reverse_ais_nll(&pair), Some(97.9));
        assert_eq!(reverse_ais_nll(std::slice::from_ref(&fwd)), None);
        let row = json!({"entry": "dbm", "test_nll": 79.0, "test_nll_std_err": 0.6,
                         "reverse_ais_nll": 97.9});
        let md = markdown(&[row]);
        assert!(md.contains("| 79.00 ± 0.60 (reverse AIS: 97.90) |"), "{md}");
        let low = json!({"split": "test", "metric": {"log_likelihood": "stochastic_estimate"},
                         "value": -74.1, "method": "reverse-ais",
                         "settings": {"probability_if_exact_starts": 1e-3}});
        assert!(reverse_ais_misses_mass(&[fwd.clone(), low.clone()]));
        assert!(!reverse_ais_misses_mass(&[fwd]));
        let row = json!({"entry": "rbm", "test_nll": 81.56, "reverse_ais_nll": 74.1,
                         "reverse_ais_misses_mass": true});
        assert!(
            markdown(&[row])
                .contains("81.56 (reverse AIS: 74.10, below forward: chains miss mass)"),
            "{low}"
        );
    }

    #[test]
    fn quality_records_and_floors_are_tabulated() {
        let rec = |metric: &str, source: &str, v: f64| {
            json!({"split": "train", "metric": metric, "value": v, "n": 10000,
                   "settings": {"source": source, "features": "mnist-convnet-v1"}})
        };
        let records = [
            rec("frechet_distance", "samples", 76.6),
            rec("frechet_distance", "test split", 2.7),
            rec("precision", "samples", 0.704),
            rec("precision", "test split", 0.892),
            rec("recall", "samples", 0.342),
            rec("class_coverage", "samples", 10.0),
            rec("nn_distance", "samples", 5.0),
        ];
        let q = quality(&records);
        assert_eq!(q["fd"], 76.6);
        assert_eq!(q["fd_floor"], 2.7);
        assert!(q.get("recall_floor").is_none() && q.get("nn_distance").is_none());
        let mut row = json!({"entry": "gan", "epochs_done": 1.0});
        row.as_object_mut()
            .unwrap()
            .extend(q.as_object().unwrap().clone());
        let md = markdown(&[row]);
        assert!(
            md.contains(
                "| gan | 10000 | mnist-convnet-v1 | 76.60 (2.70) | 0.704 (0.892) | 0.342 (—) | 10 (—) |"
            ),
            "{md}"
        );
    }
}
