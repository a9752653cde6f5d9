//! Renders an HTML file to a PNG with headless Chromium: the rendering check of `gm report`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Browser names looked up on `PATH`, in order (`$GM_CHROMIUM` wins when set).
pub const BROWSERS: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// The headless browser to use, if any.
pub fn find_browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GM_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| BROWSERS.iter().map(move |b| d.join(b)))
        .find(|p| p.is_file())
}

/// Renders `html` into `png` at `width × height` CSS pixels.
pub fn screenshot(html: &Path, png: &Path, width: u32, height: u32) -> Result<()> {
    let Some(browser) = find_browser() else {
        bail!(
            "--screenshot needs a headless Chromium: none of {} is on PATH (install one, e.g. \
             `apt-get install chromium`, or set GM_CHROMIUM to its path)",
            BROWSERS.join(", ")
        );
    };
    let abs = std::fs::canonicalize(html).with_context(|| format!("{}", html.display()))?;
    let png_abs = std::env::current_dir()?.join(png);
    let _ = std::fs::remove_file(&png_abs);
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!("--screenshot={}", png_abs.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", abs.display()))
        .output()
        .with_context(|| format!("running {}", browser.display()))?;
    if !out.status.success() || !png_abs.is_file() {
        bail!(
            "{} did not write {} ({}): {}",
            browser.display(),
            png_abs.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
