//! The Hopfield capacity experiment: recall against the number of stored random patterns.
//!
//! `cargo run --release -p gm-boltzmann --example hopfield_capacity -- [N] [trials] [noise] [out.csv]`
//! (defaults 200 units, 10 trials, 5% of units flipped, `hopfield_capacity.csv`) prints a
//! table and writes the curve as CSV (load, exact recall, mean overlap). Near-perfect
//! overlap up to a load P/N ≈ 0.138, collapsing beyond it.

use gm_boltzmann::hopfield::capacity_curve;
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: i64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let trials: i64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let noise: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0.05);
    let out = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "hopfield_capacity.csv".into());
    let counts: Vec<i64> = (1..=30)
        .map(|k| ((k as f64 * 0.01 * n as f64).round() as i64).max(1))
        .collect();
    let curve = capacity_curve(n, &counts, trials, noise, 0, tch::Device::Cpu)?;
    let mut csv = String::from("patterns,load,exact_recall,mean_overlap\n");
    println!(
        "N = {n}, {trials} trials, {:.0}% of units flipped",
        noise * 100.0
    );
    println!(
        "{:>8} {:>6} {:>12} {:>12}",
        "patterns", "P/N", "exact recall", "overlap"
    );
    for p in &curve {
        println!(
            "{:>8} {:>6.3} {:>12.3} {:>12.3}",
            p.patterns, p.load, p.exact_recall, p.mean_overlap
        );
        csv += &format!(
            "{},{},{},{}\n",
            p.patterns, p.load, p.exact_recall, p.mean_overlap
        );
    }
    std::fs::File::create(&out)?.write_all(csv.as_bytes())?;
    println!("wrote {out}");
    Ok(())
}
