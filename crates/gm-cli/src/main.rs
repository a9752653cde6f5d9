//! `gm`: train, sample, evaluate and inspect the generative models of the gm workspace.
//!
//! ```text
//! gm train vae --dataset binarized-mnist --epochs 10      # writes runs/<name>/
//! gm train --resume runs/<name>                          # continues exactly
//! gm sample runs/<name> -n 64 -o grid.png
//! gm sample runs/<name> -n 1000 -o s.safetensors            # raw [N, ...] f32 (or .npy) + s.png
//! gm sample runs/<name> --class 3                         # class-conditional (cvae)
//! gm sample runs/<name> --complete bottom-half            # masked | completion | truth
//! gm eval runs/<name>                                     # results.json, figures
//! gm report runs/<a> runs/<b> --out report.html --screenshot
//! gm list                                                 # models and datasets
//! gm doctor                                               # libtorch, CUDA, threads
//! ```

mod commands;
mod doctor;
mod raw;
mod run;
mod screenshot;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Deep generative models (Deep Learning, chapter 20) on libtorch: train, sample, measure.
#[derive(Parser, Debug)]
#[command(name = "gm", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level: error, warn, info, debug, trace (or RUST_LOG).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    /// libtorch intra-op threads (default: libtorch's choice, usually the core count).
    #[arg(long, global = true)]
    threads: Option<i32>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model; writes a run directory (config, metrics, samples, checkpoints).
    Train(commands::TrainArgs),
    /// Draw samples from a trained run: a PNG grid, or the raw tensor (.safetensors / .npy) and a grid.
    Sample(commands::SampleArgs),
    /// Evaluate a trained run: likelihoods with their kind, sample quality with floors, figures.
    Eval(commands::EvalArgs),
    /// Write one HTML page of results, curves and pictures of run directories.
    Report(commands::ReportArgs),
    /// List the models and datasets gm knows.
    List,
    /// Show libtorch's version and path, CUDA devices, cuDNN, threads, default device.
    Doctor,
}

fn main() -> ExitCode {
    gm_core::device::tune_allocator();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .init();
    if let Some(t) = cli.threads {
        if t <= 0 {
            eprintln!("gm: error: --threads must be a positive number, got {t}");
            return ExitCode::FAILURE;
        }
        tch::set_num_threads(t);
    }
    let result = match cli.command {
        Command::Train(a) => join_process_group().and_then(|()| commands::train(a)),
        Command::Sample(a) => commands::sample(a),
        Command::Eval(a) => join_process_group().and_then(|()| commands::eval(a)),
        Command::Report(a) => commands::report(a),
        Command::List => commands::list(),
        Command::Doctor => doctor::doctor(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(gm_core::Error::Interrupted { .. }) = e.downcast_ref::<gm_core::Error>() {
                eprintln!("gm: {e}");
                return ExitCode::from(130);
            }
            eprintln!("gm: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Under a launcher (`WORLD_SIZE` > 1, as torchrun sets it), joins the other processes
/// (gm-dist's Gloo group); the `dist` feature builds that in.
fn join_process_group() -> anyhow::Result<()> {
    #[cfg(feature = "dist")]
    if gm_dist::init_from_env()? {
        let (rank, world) = (gm_core::dist::rank(), gm_core::dist::world());
        tracing::info!("rank {rank} of {world} processes (c10d Gloo)");
        return Ok(());
    }
    let world = std::env::var("WORLD_SIZE").unwrap_or_default();
    if cfg!(not(feature = "dist")) && world.trim().parse::<i64>().is_ok_and(|w| w > 1) {
        anyhow::bail!(
            "WORLD_SIZE is {world}: this gm was built without data-parallel training; build it \
             with `cargo build --release -p gm-cli --features dist`"
        );
    }
    Ok(())
}
