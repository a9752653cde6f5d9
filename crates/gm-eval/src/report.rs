//! The HTML report of one or more run directories: one self-contained page (inline CSS,
//! every picture embedded as a `data:image/png;base64` URI, training curves as inline SVG),
//! so the single file can be mailed or archived without losing anything.
//!
//! The page opens with one summary table: a row per run, a column per headline metric
//! (test NLL per method with its kind, Fréchet distance, precision / recall, class
//! coverage), and the floor (the test split measured in place of samples) as its own row
//! under each run that has one. Then a results table per metric (dataset, split): model,
//! run, binarization, method, value ± standard error, the published number where
//! [`crate::published`] has one (negative log-likelihoods), examples, seconds and device,
//! with the settings of its rows in a collapsed `<details>` section; then, per run, its
//! training curves from `metrics.jsonl`, its final samples, its figures
//! (`figures/*.png`: reconstructions, nearest-neighbour grids …) and the newest sample grid
//! of `samples/`. Records in one table are checked pairwise with [`crate::results::compare`]:
//! different binarizations, metric kinds, splits or feature networks make [`render`] refuse,
//! unless `force` is set, in which case the overridden objections are printed above the table.
//!
//! ```no_run
//! use gm_eval::report::{load_run, render, ReportOptions};
//! let run = load_run(std::path::Path::new("runs/vae-binarized-mnist"))?;
//! let html = render(&[run], &ReportOptions::default())?;
//! std::fs::write("report.html", html).unwrap();
//! # Ok::<(), gm_core::Error>(())
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gm_core::config::RunConfig;
use gm_core::{Error, Result};

use gm_core::model::LikelihoodKind;

use crate::published;
use crate::results::{self, compare, Metric, Mismatch, ResultRecord};

/// A run directory's contents, as the report needs them.
#[derive(Debug)]
pub struct RunData {
    /// The run directory.
    pub dir: PathBuf,
    /// Its folder name.
    pub name: String,
    /// The resolved config, when readable.
    pub config: Option<RunConfig>,
    /// `results.json` (empty when the run was not evaluated).
    pub results: Vec<ResultRecord>,
    /// `metrics.jsonl`, one JSON object per epoch.
    pub metrics: Vec<serde_json::Value>,
    /// Pictures to show: (caption, PNG file).
    pub images: Vec<(String, PathBuf)>,
}

/// Reads a run directory: its config, `results.json` (which must be gm-eval records: re-run
/// `gm eval` on runs evaluated by older versions), `metrics.jsonl` and its PNG files.
pub fn load_run(dir: &Path) -> Result<RunData> {
    if !dir.join("config.toml").exists() {
        return Err(Error::Run {
            path: dir.into(),
            msg: "not a run directory (config.toml is missing)".into(),
        });
    }
    let config = RunConfig::from_file(&dir.join("config.toml")).ok();
    let rpath = dir.join("results.json");
    let results = if rpath.exists() {
        results::load(&rpath).map_err(|e| Error::Run {
            path: rpath.clone(),
            msg: format!("{e} (written by an older gm? run `gm eval` on the run again)"),
        })?
    } else {
        Vec::new()
    };
    let mpath = dir.join("metrics.jsonl");
    let metrics = match std::fs::read_to_string(&mpath) {
        Ok(s) => s
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| Error::format(&mpath, format!("bad JSON line: {e}")))
            })
            .collect::<Result<Vec<_>>>()?,
        Err(_) => Vec::new(),
    };
    // The copy check's grid has a third column when a feature network was used.
    let with_features = results
        .iter()
        .any(|r| r.metric == Metric::NnDistance && r.settings.get("features").is_some());
    let mut images = Vec::new();
    let push = |images: &mut Vec<(String, PathBuf)>, caption: &str, p: PathBuf| {
        if p.is_file() {
            images.push((caption.to_string(), p));
        }
    };
    push(&mut images, "samples", dir.join("samples.png"));
    let mut figs: Vec<PathBuf> = std::fs::read_dir(dir.join("figures"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    figs.retain(|p| p.extension().is_some_and(|e| e == "png"));
    figs.sort();
    for f in figs {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let caption = match stem.as_str() {
            "nn-grid" if with_features => "nn-grid: sample | NN in pixels | NN in features".into(),
            "nn-grid" => "nn-grid: sample | NN in pixels".into(),
            _ => stem,
        };
        push(&mut images, &caption, f);
    }
    let mut epochs: Vec<PathBuf> = std::fs::read_dir(dir.join("samples"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    epochs.retain(|p| p.extension().is_some_and(|e| e == "png"));
    epochs.sort();
    if let Some(last) = epochs.pop() {
        let stem = last
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        push(
            &mut images,
            &format!("samples during training ({stem})"),
            last,
        );
    }
    Ok(RunData {
        name: dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string()),
        dir: dir.to_path_buf(),
        config,
        results,
        metrics,
        images,
    })
}

/// How the report is made.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Page title.
    pub title: String,
    /// Put incomparable records in one table anyway (the objections are shown).
    pub force: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            title: "gm report".into(),
            force: false,
        }
    }
}

/// HTML-escapes `s`.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                o.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

/// A group of records shown in one table: same metric, dataset and split.
struct Group<'a> {
    metric: Metric,
    dataset: String,
    split: String,
    rows: Vec<(&'a RunData, &'a ResultRecord)>,
    overridden: Vec<Mismatch>,
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 0.01 && v.abs() < 1e5) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

fn settings_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                serde_json::Value::Number(x) if x.is_f64() => {
                    format!("{k}={}", fmt_num(x.as_f64().unwrap_or(f64::NAN)))
                }
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn group_records(runs: &[RunData], force: bool) -> Result<Vec<Group<'_>>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for run in runs {
        for r in &run.results {
            let g = match groups
                .iter_mut()
                .find(|g| g.metric == r.metric && g.dataset == r.dataset && g.split == r.split)
            {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        metric: r.metric,
                        dataset: r.dataset.clone(),
                        split: r.split.clone(),
                        rows: Vec::new(),
                        overridden: Vec::new(),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            if let Some((_, first)) = g.rows.first() {
                match compare(first, r, force) {
                    Ok(c) => {
                        for m in c.overridden {
                            if !g.overridden.contains(&m) {
                                g.overridden.push(m);
                            }
                        }
                    }
                    Err(e) => {
                        return Err(Error::Msg(format!(
                            "{} (run {}) cannot share a table with {} ({}): {e}",
                            r.model, run.name, first.model, g.rows[0].0.name
                        )))
                    }
                }
            }
            g.rows.push((run, r));
        }
    }
    Ok(groups)
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ccc}
h3{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 14px}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.settings{font-size:11px;color:#555;max-width:360px;word-break:break-word}
tr.floor td{background:#f7fbff;color:#345}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:6px 10px;font-size:13px}
.note{color:#666;font-size:12px}
.figs{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:0;display:table}figure img{image-rendering:pixelated;border:1px solid #ccc;max-width:520px}
figcaption{display:table-caption;caption-side:bottom;font-size:12px;color:#555;text-align:center}
svg{border:1px solid #ddd;background:#fff}
";

/// Renders the report page of `runs`.
pub fn render(runs: &[RunData], opts: &ReportOptions) -> Result<String> {
    let groups = group_records(runs, opts.force)?;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n",
        esc(&opts.title),
        esc(&opts.title)
    );
    let _ = writeln!(
        h,
        "<p class=\"note\">{} run(s). Log-likelihood rows show the negative log-likelihood in nats per example (lower is better) with its kind; \
         results of different binarizations or metric kinds are never put in one table (Deep Learning §20.14). \
         Sample-quality metrics are computed on gm's own feature network, so they compare runs with each other, not with published FIDs. \
         Rows in blue are floors: the test split measured in place of samples.</p>",
        runs.len()
    );
    summary_table(&mut h, runs);
    h.push_str("<h2>Results</h2>\n");
    if groups.is_empty() {
        h.push_str("<p>No results: run <code>gm eval &lt;run-dir&gt;</code> first.</p>\n");
    }
    for g in &groups {
        let ll = matches!(g.metric, Metric::LogLikelihood(_));
        let title = if ll {
            format!(
                "NLL, nats ({})",
                match g.metric {
                    Metric::LogLikelihood(k) => k.to_string(),
                    _ => String::new(),
                }
            )
        } else {
            g.metric.to_string()
        };
        let better = match g.metric.higher_is_better() {
            Some(true) if !ll => " (higher is better)",
            Some(false) => " (lower is better)",
            Some(true) => " (lower is better)",
            None => "",
        };
        let _ = writeln!(
            h,
            "<h3>{}{better} — {} / {}</h3>",
            esc(&title),
            esc(&g.dataset),
            esc(&g.split)
        );
        if !g.overridden.is_empty() {
            let reasons: Vec<String> = g.overridden.iter().map(|m| esc(&m.to_string())).collect();
            let _ = writeln!(
                h,
                "<p class=\"warn\">Forced comparison (--force): {}</p>",
                reasons.join("; ")
            );
        }
        h.push_str("<table><tr><th>model</th><th>run</th><th>binarization</th><th>method</th><th>value ± s.e.</th>");
        if ll {
            h.push_str("<th>published</th>");
        }
        h.push_str("<th>n</th><th>seconds</th><th>device</th></tr>\n");
        for (run, r) in &g.rows {
            let sign = if ll { -1.0 } else { 1.0 };
            let value = match r.std_err {
                Some(se) => format!("{} ± {}", fmt_num(sign * r.value), fmt_num(se)),
                None => fmt_num(sign * r.value),
            };
            let floor = is_floor(r);
            let _ = write!(
                h,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>",
                if floor { " class=\"floor\"" } else { "" },
                esc(&r.model),
                esc(&run.name),
                esc(&r.binarization.to_string()),
                esc(&r.method),
                value
            );
            if let Metric::LogLikelihood(kind) = r.metric {
                let pubs = published::lookup(&r.model, &r.dataset, r.binarization, kind);
                let cell: Vec<String> = pubs
                    .iter()
                    .map(|p| {
                        format!(
                            "{:.2} <span class=\"note\">{} — {}</span>",
                            p.nll,
                            esc(p.variant),
                            esc(p.citation)
                        )
                    })
                    .collect();
                let _ = write!(
                    h,
                    "<td>{}</td>",
                    if cell.is_empty() {
                        "—".to_string()
                    } else {
                        cell.join("<br>")
                    }
                );
            }
            let _ = writeln!(
                h,
                "<td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td>{}</td></tr>",
                r.n,
                r.seconds,
                esc(&r.device)
            );
        }
        h.push_str("</table>\n<details><summary>settings</summary><table><tr><th>model</th><th>run</th><th>method</th><th>settings</th></tr>\n");
        for (run, r) in &g.rows {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"settings\">{}</td></tr>",
                esc(&r.model),
                esc(&run.name),
                esc(&r.method),
                esc(&settings_text(&r.settings))
            );
        }
        h.push_str("</table></details>\n");
    }
    for run in runs {
        let _ = writeln!(h, "<h2>Run {}</h2>", esc(&run.name));
        if let Some(cfg) = &run.config {
            let _ = writeln!(
                h,
                "<p class=\"note\">model <b>{}</b> on {} ({} epochs configured, seed {}), directory <code>{}</code></p>",
                esc(&cfg.model.name),
                esc(&cfg.data.dataset),
                cfg.train.epochs,
                cfg.seed,
                esc(&run.dir.display().to_string())
            );
        }
        let charts = curves(&run.metrics);
        if !charts.is_empty() {
            h.push_str("<h3>Training curves</h3><div class=\"figs\">");
            h.push_str(&charts);
            h.push_str("</div>\n");
        }
        if !run.images.is_empty() {
            h.push_str("<h3>Pictures</h3><div class=\"figs\">");
            for (caption, path) in &run.images {
                let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                let _ = write!(
                    h,
                    "<figure><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><figcaption>{0}</figcaption></figure>",
                    esc(caption),
                    base64(&bytes)
                );
            }
            h.push_str("</div>\n");
        }
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

fn is_floor(r: &ResultRecord) -> bool {
    r.settings.get("source").and_then(|s| s.as_str()) == Some("test split")
}

/// The likelihood columns of the summary: (method, kind) in order of appearance.
fn ll_columns(runs: &[RunData]) -> Vec<(String, LikelihoodKind)> {
    let mut cols: Vec<(String, LikelihoodKind)> = Vec::new();
    for r in runs.iter().flat_map(|r| &r.results) {
        if let Metric::LogLikelihood(k) = r.metric {
            if !cols.iter().any(|(m, c)| *m == r.method && *c == k) {
                cols.push((r.method.clone(), k));
            }
        }
    }
    cols
}

/// One summary row's quality cells from `recs` (a run's model records, or its floor's).
fn quality_cells(recs: &[&ResultRecord]) -> String {
    let get = |m: Metric| recs.iter().find(|r| r.metric == m);
    let num = |m: Metric| get(m).map(|r| fmt_num(r.value));
    let mut h = String::new();
    let dash = || "—".to_string();
    let _ = write!(
        h,
        "<td class=\"num\">{}</td>",
        num(Metric::FrechetDistance).unwrap_or_else(dash)
    );
    let pr = match (num(Metric::Precision), num(Metric::Recall)) {
        (None, None) => dash(),
        (p, r) => format!("{} / {}", p.unwrap_or_else(dash), r.unwrap_or_else(dash)),
    };
    let _ = write!(h, "<td class=\"num\">{pr}</td>");
    let cov = get(Metric::ClassCoverage).map(|r| {
        let of = r.settings["histogram"]
            .as_array()
            .map(|a| format!(" of {}", a.len()))
            .unwrap_or_default();
        format!("{}{of}", r.value)
    });
    let _ = write!(h, "<td class=\"num\">{}</td>", cov.unwrap_or_else(dash));
    h
}

/// The summary table: a row per run, its floor as its own row (see the module docs).
fn summary_table(h: &mut String, runs: &[RunData]) {
    let cols = ll_columns(runs);
    h.push_str("<h2>Summary</h2>\n<table class=\"summary\"><tr><th>run</th><th>model</th><th>dataset</th><th>binarization</th>");
    for (m, k) in &cols {
        let _ = write!(h, "<th>NLL, {} ({k})</th>", esc(m));
    }
    h.push_str(
        "<th>Fréchet distance</th><th>precision / recall</th><th>class coverage</th></tr>\n",
    );
    for run in runs {
        let Some(first) = run
            .results
            .iter()
            .find(|r| !is_floor(r))
            .or(run.results.first())
        else {
            continue;
        };
        let (own, floor): (Vec<&ResultRecord>, Vec<&ResultRecord>) =
            run.results.iter().partition(|r| !is_floor(r));
        for (recs, is_floor_row) in [(own, false), (floor, true)] {
            if is_floor_row && recs.is_empty() {
                continue;
            }
            let _ = write!(
                h,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                if is_floor_row { " class=\"floor\"" } else { "" },
                esc(&run.name),
                if is_floor_row {
                    "floor (test split)".to_string()
                } else {
                    esc(&first.model)
                },
                esc(&first.dataset),
                esc(&first.binarization.to_string())
            );
            for (m, k) in &cols {
                let cell = recs
                    .iter()
                    .find(|r| r.method == *m && r.metric == Metric::LogLikelihood(*k))
                    .map(|r| match r.std_err {
                        Some(se) => format!("{} ± {}", fmt_num(-r.value), fmt_num(se)),
                        None => fmt_num(-r.value),
                    })
                    .unwrap_or_else(|| "—".into());
                let _ = write!(h, "<td class=\"num\">{cell}</td>");
            }
            h.push_str(&quality_cells(&recs));
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</table>\n");
}

/// Per-epoch series of `metrics.jsonl`: for each metric name of the `train` object, the
/// train and valid values by epoch.
type Series = Vec<(String, Vec<(f64, f64)>, Vec<(f64, f64)>)>;

fn series(metrics: &[serde_json::Value]) -> Series {
    let mut out: Series = Vec::new();
    for m in metrics {
        let Some(epoch) = m.get("epoch").and_then(|e| e.as_f64()) else {
            continue;
        };
        for (part, valid) in [("train", false), ("valid", true)] {
            let Some(obj) = m.get(part).and_then(|o| o.as_object()) else {
                continue;
            };
            for (k, v) in obj {
                let Some(v) = v.as_f64().filter(|v| v.is_finite()) else {
                    continue;
                };
                let i = match out.iter().position(|(n, ..)| n == k) {
                    Some(i) => i,
                    None => {
                        out.push((k.clone(), Vec::new(), Vec::new()));
                        out.len() - 1
                    }
                };
                if valid {
                    out[i].2.push((epoch, v));
                } else {
                    out[i].1.push((epoch, v));
                }
            }
        }
    }
    out
}

/// Inline SVG line charts of the training curves (train blue, valid orange), one per metric.
pub fn curves(metrics: &[serde_json::Value]) -> String {
    let (w, ht, l, r, t, b) = (360.0, 220.0, 58.0, 10.0, 24.0, 30.0);
    let mut h = String::new();
    for (name, train, valid) in series(metrics) {
        let all: Vec<(f64, f64)> = train.iter().chain(&valid).copied().collect();
        if all.len() < 2 {
            continue;
        }
        let (x0, x1) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        // Clip the y range to the 2nd–100th percentile so a huge first epoch does not
        // flatten the rest of the curve.
        let mut ys: Vec<f64> = all.iter().map(|p| p.1).collect();
        ys.sort_by(|a, b| a.total_cmp(b));
        let lo = ys[0];
        let hi = ys[((ys.len() - 1) as f64 * 0.98) as usize].max(lo + 1e-9);
        let (y0, y1) = (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo));
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let px = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
        let py = |y: f64| t + (1.0 - (y.clamp(y0, y1) - y0) / (y1 - y0)) * (ht - t - b);
        let _ = write!(
            h,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" font-family=\"sans-serif\" font-size=\"11\">\
             <text x=\"{l}\" y=\"15\" font-size=\"13\" font-weight=\"bold\">{}</text>\
             <line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" stroke=\"#888\"/>",
            esc(&name),
            ht - b,
            w - r,
            ht - b,
            ht - b
        );
        for (v, y) in [(y1, t), (y0, ht - b)] {
            let _ = write!(
                h,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                l - 4.0,
                y + 4.0,
                esc(&fmt_axis(v))
            );
        }
        let _ = write!(
            h,
            "<text x=\"{l}\" y=\"{}\">epoch {}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            ht - 10.0,
            x0,
            w - r,
            ht - 10.0,
            x1
        );
        for (pts, colour, label, lx) in [
            (&train, "#1f77b4", "train", w - 110.0),
            (&valid, "#ff7f0e", "valid", w - 55.0),
        ] {
            if pts.is_empty() {
                continue;
            }
            let p: Vec<String> = pts
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = write!(
                h,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" points=\"{}\"/>\
                 <text x=\"{lx}\" y=\"15\" fill=\"{colour}\">— {label}</text>",
                p.join(" ")
            );
        }
        h.push_str("</svg>");
    }
    h
}

fn fmt_axis(v: f64) -> String {
    if v.abs() >= 1000.0 || (v != 0.0 && v.abs() < 0.01) {
        format!("{v:.2e}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RecordContext;
    use gm_core::data::Binarization;
    use gm_core::model::{LikelihoodKind, LogLikelihood};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    fn run(name: &str, binarization: Binarization) -> RunData {
        let ctx = RecordContext {
            model: "vae".into(),
            config_hash: "0".into(),
            dataset: "binarized-mnist".into(),
            split: "test".into(),
            binarization,
            labelled: None,
            device: "cpu".into(),
            checkpoint: None,
        };
        let ll = LogLikelihood {
            kind: LikelihoodKind::StochasticEstimate,
            method: "importance-sampling".into(),
            settings: serde_json::json!({"k": 5000}),
            mean: -89.5,
            std_err: 0.25,
            n: 10_000,
        };
        RunData {
            dir: PathBuf::from(name),
            name: name.into(),
            config: None,
            results: vec![ctx.log_likelihood(&ll, 3.0)],
            metrics: (1..=5)
                .map(|e| {
                    serde_json::json!({"epoch": e, "train": {"loss": 100.0 / e as f64}, "valid": {"loss": 110.0 / e as f64}})
                })
                .collect(),
            images: Vec::new(),
        }
    }

    #[test]
    fn renders_tables_with_published_numbers_and_curves() {
        let html = render(
            &[
                run("a", Binarization::StaticFile),
                run("b", Binarization::StaticFile),
            ],
            &ReportOptions::default(),
        )
        .unwrap();
        let tables = &html[html.find("<h2>Results</h2>").unwrap()..];
        assert_eq!(
            tables.matches("<td>vae</td>").count(),
            4,
            "table + settings rows"
        );
        assert!(tables.contains("89.5000 ± 0.2500"), "NLL shown");
        assert!(tables.contains("<details><summary>settings</summary>"));
        assert!(html.contains("88.71"), "published IWAE/VAE number");
        assert!(html.contains("Burda"));
        assert_eq!(html.matches("<svg").count(), 2, "one loss chart per run");
        assert_eq!(html.matches("<polyline").count(), 4);
    }

    /// A run with an ELBO and quality records of samples and of the floor (made by hand).
    fn quality_run() -> RunData {
        let mut r = run("q", Binarization::Dynamic { seed: 0 });
        let mut ctx = RecordContext {
            model: "vae".into(),
            config_hash: "0".into(),
            dataset: "binarized-mnist".into(),
            split: "train".into(),
            binarization: Binarization::Dynamic { seed: 0 },
            labelled: None,
            device: "cpu".into(),
            checkpoint: None,
        };
        let hist = serde_json::json!([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        for (model, source, fd, p, rc, cov) in [
            ("vae", "samples", 31.25, 0.5, 0.375, 9.0),
            ("test split", "test split", 0.75, 0.875, 0.8125, 10.0),
        ] {
            ctx.model = model.into();
            let s = serde_json::json!({"source": source, "features": "f", "histogram": hist});
            for (m, v) in [
                (Metric::FrechetDistance, fd),
                (Metric::Precision, p),
                (Metric::Recall, rc),
                (Metric::ClassCoverage, cov),
            ] {
                r.results.push(ctx.value(m, "x", s.clone(), v, 100, 1.0));
            }
        }
        r
    }

    #[test]
    fn the_summary_table_has_a_row_per_run_and_the_floor_row() {
        let html = render(&[quality_run()], &ReportOptions::default()).unwrap();
        let start = html.find("<h2>Summary</h2>").expect("a summary");
        assert!(
            start < html.find("<h2>Results</h2>").unwrap(),
            "it opens the page"
        );
        let table = &html[start..start + html[start..].find("</table>").unwrap()];
        assert!(table.contains("<th>NLL, importance-sampling (stochastic estimate)</th>"));
        let rows: Vec<&str> = table.split("<tr").skip(2).collect();
        assert_eq!(rows.len(), 2, "{table}");
        assert!(rows[0].contains("<td>q</td><td>vae</td>"), "{}", rows[0]);
        for cell in ["89.5000 ± 0.2500", "31.2500", "0.5000 / 0.3750", "9 of 10"] {
            assert!(rows[0].contains(cell), "{cell} in {}", rows[0]);
        }
        assert!(rows[1].starts_with(" class=\"floor\"><td>q</td><td>floor (test split)</td>"));
        for cell in [
            "<td class=\"num\">—</td>",
            "0.7500",
            "0.8750 / 0.8125",
            "10 of 10",
        ] {
            assert!(rows[1].contains(cell), "{cell} in {}", rows[1]);
        }
    }

    #[test]
    fn different_binarizations_are_refused_unless_forced() {
        let runs = [
            run("a", Binarization::StaticFile),
            run("b", Binarization::Dynamic { seed: 0 }),
        ];
        let err = render(&runs, &ReportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("binarization"), "{err}");
        let html = render(
            &runs,
            &ReportOptions {
                force: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(html.contains("Forced comparison"));
    }
}
