//! `cargo xtask data`: fetch datasets into the per-user cache and verify them.
//!
//! Cache: `$GM_DATA_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/gm/datasets`; a file lives at
//! `<cache>/<dataset>/<file.name>` as its **decompressed** payload, and is only put there
//! (by an atomic rename) after its size and sha256 match the manifest.
//!
//! Sources, in order, for a file that is missing or does not verify:
//! 1. the mirror (`--mirror <dir|url>` or `GM_DATA_MIRROR`), trying
//!    `<base>/<dataset>/<name>.gz`, `<base>/<dataset>/<name>`, `<base>/<name>.gz`,
//!    `<base>/<name>`;
//! 2. the manifest's `urls`, official location first;
//! 3. the manifest's Debian package (`apt-get download`, `dpkg-deb -x`).
//!
//! HTTP downloads go to `<final>.part` (resumed with a `Range` request when the same URL
//! left one behind), are gunzipped when they start with the gzip magic, verified, then
//! renamed into place. A host that cannot be reached is not tried again in the same run.
//!
//! ```text
//! cargo xtask data mnist fashion-mnist --mirror /srv/datasets
//! GM_DATA_MIRROR=https://example.org/gm-data cargo xtask data --all
//! ```

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, IsTerminal, Read, Write},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::{
    manifest::{self, FileEntry, Manifest, SYNTHETIC},
    util::{self, env_nonempty, human_bytes},
};

/// Where datasets are cached: `$GM_DATA_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/gm/datasets`.
pub fn data_dir() -> Result<PathBuf> {
    match env_nonempty("GM_DATA_DIR") {
        Some(d) => Ok(util::absolute(Path::new(&d))),
        None => Ok(util::cache_home()?.join("gm").join("datasets")),
    }
}

/// A mirror: a local folder or an HTTP(S) base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// A folder on this machine.
    Dir(PathBuf),
    /// An `http://` or `https://` base.
    Url(String),
}

impl Mirror {
    /// `http(s)://…` is a URL, `file://…` and anything else a folder.
    pub fn parse(s: &str) -> Result<Self> {
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Mirror::Url(s.trim_end_matches('/').to_owned()));
        }
        let path = util::absolute(Path::new(s.strip_prefix("file://").unwrap_or(s)));
        if !path.is_dir() {
            bail!(
                "mirror {} is not a folder (nor an http(s):// URL)",
                path.display()
            );
        }
        Ok(Mirror::Dir(path.canonicalize().unwrap_or(path)))
    }

    /// Where a mirror may hold a file, most specific first.
    pub fn candidates(&self, dataset: &str, name: &str) -> Vec<String> {
        let base = match self {
            Mirror::Dir(d) => d.display().to_string(),
            Mirror::Url(u) => u.clone(),
        };
        mirror_candidates(&base, dataset, name)
    }
}

impl std::fmt::Display for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mirror::Dir(d) => write!(f, "{}", d.display()),
            Mirror::Url(u) => f.write_str(u),
        }
    }
}

/// `<base>/<dataset>/<name>.gz`, `<base>/<dataset>/<name>`, `<base>/<name>.gz`, `<base>/<name>`.
pub fn mirror_candidates(base: &str, dataset: &str, name: &str) -> Vec<String> {
    let base = base.trim_end_matches('/');
    vec![
        format!("{base}/{dataset}/{name}.gz"),
        format!("{base}/{dataset}/{name}"),
        format!("{base}/{name}.gz"),
        format!("{base}/{name}"),
    ]
}

/// Options of `cargo xtask data`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Dataset names.
    pub names: Vec<String>,
    /// Every manifest in `datasets/`.
    pub all: bool,
    /// `--mirror`, overriding `GM_DATA_MIRROR`.
    pub mirror: Option<String>,
}

/// Runs `cargo xtask data`.
pub fn run(opts: &Options) -> Result<()> {
    let manifests = manifest::load_all(&manifest::manifests_dir())?;
    let known: Vec<&str> = manifests.iter().map(|m| m.name.as_str()).collect();

    let mut selected: Vec<&Manifest> = Vec::new();
    let mut synthetic: Vec<&str> = Vec::new();
    if opts.all {
        selected.extend(manifests.iter());
    }
    for name in &opts.names {
        if let Some(m) = manifests.iter().find(|m| &m.name == name) {
            if !selected.iter().any(|s| s.name == m.name) {
                selected.push(m);
            }
        } else if let Some(s) = SYNTHETIC.iter().find(|s| *s == name) {
            synthetic.push(s);
        } else {
            bail!(
                "unknown dataset {name:?}; downloadable: {}; synthetic: {}",
                known.join(", "),
                SYNTHETIC.join(", ")
            );
        }
    }
    if selected.is_empty() && synthetic.is_empty() {
        bail!(
            "name one or more datasets, or pass --all; downloadable: {}; synthetic: {}",
            known.join(", "),
            SYNTHETIC.join(", ")
        );
    }

    let mirror_arg = opts
        .mirror
        .clone()
        .or_else(|| env_nonempty("GM_DATA_MIRROR").map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.trim().is_empty());
    let mirror = mirror_arg.as_deref().map(Mirror::parse).transpose()?;
    let cache = data_dir()?;
    println!(
        "data: cache {}{}",
        cache.display(),
        if env_nonempty("GM_DATA_DIR").is_some() {
            " (GM_DATA_DIR)"
        } else {
            ""
        }
    );
    match &mirror {
        Some(m) => println!("data: mirror {m}"),
        None => println!("data: no mirror (set one with --mirror <dir|url> or GM_DATA_MIRROR)"),
    }

    for s in &synthetic {
        println!("data: {s} is synthetic: gm-core generates it in memory, nothing to download");
    }
    if opts.all {
        println!(
            "data: synthetic datasets need no download: {}",
            SYNTHETIC.join(", ")
        );
    }

    let mut fetcher = Fetcher::new(mirror);
    let mut failed = Vec::new();
    let mut first_error = None;
    for m in selected {
        println!("data: {} ({} files)", m.name, m.files.len());
        for f in &m.files {
            if let Err(e) = fetcher.ensure_file(&cache, m, f) {
                println!("  FAILED   {}/{}", m.name, f.name);
                failed.push(format!("{}/{}", m.name, f.name));
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    if let Some(first) = first_error {
        bail!(
            "{} file(s) could not be fetched: {}\n(every source tried for each file is listed above; the first:)\n{first}\n\n{HOW_TO_MIRROR}",
            failed.len(),
            failed.join(", "),
        );
    }
    println!("data: all files present and verified");
    Ok(())
}

const HOW_TO_MIRROR: &str = "To use a mirror, put the files in a folder or on an HTTP server as \
<base>/<dataset>/<name>.gz (or <name>, or without the <dataset>/ level) and pass \
`--mirror <dir|url>` or set GM_DATA_MIRROR; or place the decompressed, verified payloads in \
the cache yourself (set GM_DATA_DIR to choose the cache folder).";

/// One way of getting a file.
#[derive(Debug, Clone)]
enum Src {
    Local(PathBuf),
    Http(String),
    Debian,
}

/// Fetches files; remembers unreachable hosts and extracted Debian packages for one run.
struct Fetcher {
    mirror: Option<Mirror>,
    agent: ureq::Agent,
    dead_hosts: HashSet<String>,
    debian: HashMap<String, std::result::Result<PathBuf, String>>,
    temp_dirs: Vec<PathBuf>,
    tty: bool,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        for d in &self.temp_dirs {
            let _ = fs::remove_dir_all(d);
        }
    }
}

impl Fetcher {
    fn new(mirror: Option<Mirror>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(30))
            .try_proxy_from_env(true)
            .user_agent(concat!("gm-xtask/", env!("CARGO_PKG_VERSION")))
            .build();
        Fetcher {
            mirror,
            agent,
            dead_hosts: HashSet::new(),
            debian: HashMap::new(),
            temp_dirs: Vec::new(),
            tty: io::stderr().is_terminal(),
        }
    }

    /// Makes `<cache>/<dataset>/<name>` present and verified.
    fn ensure_file(&mut self, cache: &Path, m: &Manifest, f: &FileEntry) -> Result<()> {
        let dir = cache.join(&m.name);
        let dest = dir.join(&f.name);
        let label = format!("{}/{}", m.name, f.name);
        if dest.exists() {
            match verify_file(&dest, f) {
                Ok(()) => {
                    println!(
                        "  ok       {label} ({}, sha256 verified)",
                        human_bytes(f.bytes)
                    );
                    return Ok(());
                }
                Err(e) => {
                    println!("  bad      {label}: {e}; fetching it again");
                    fs::remove_file(&dest)
                        .with_context(|| format!("removing {}", dest.display()))?;
                }
            }
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

        // (source, whether it is one of the mirror's candidate locations)
        let mut sources: Vec<(Src, bool)> = Vec::new();
        if let Some(mirror) = &self.mirror {
            let cands = mirror.candidates(&m.name, &f.name);
            match mirror {
                Mirror::Dir(_) => {
                    sources.extend(
                        cands
                            .iter()
                            .map(PathBuf::from)
                            .filter(|p| p.is_file())
                            .map(|p| (Src::Local(p), true)),
                    );
                }
                Mirror::Url(_) => sources.extend(cands.into_iter().map(|u| (Src::Http(u), true))),
            }
        }
        sources.extend(f.urls.iter().cloned().map(|u| (Src::Http(u), false)));
        if m.debian.is_some() {
            sources.push((Src::Debian, false));
        }

        let mut tried = Vec::new();
        // A mirror that simply lacks the file (no such path, HTTP 404) is one line, not four.
        let mut mirror_missing = Vec::new();
        let mirror_name = self.mirror.as_ref().map(|m| m.to_string());
        let report_mirror_missing = |missing: &mut Vec<String>, tried: &mut Vec<String>| {
            if let Some(mirror) = &mirror_name {
                let note = if missing.is_empty() {
                    "no such file".to_owned()
                } else {
                    format!("{} at {} location(s)", missing[0], missing.len())
                };
                println!("  -        {label}: not in mirror {mirror} ({note})");
                tried.push(format!("  - mirror {mirror}: not there ({note})"));
                missing.clear();
            }
        };
        let mut mirror_done = self.mirror.is_none();
        for (src, from_mirror) in sources {
            if !from_mirror && !mirror_done {
                mirror_done = true;
                if tried.is_empty() {
                    report_mirror_missing(&mut mirror_missing, &mut tried);
                }
            }
            let what = match &src {
                Src::Local(p) => p.display().to_string(),
                Src::Http(u) => u.clone(),
                Src::Debian => format!(
                    "Debian package {}",
                    m.debian.as_ref().map_or("", |d| &d.package)
                ),
            };
            let started = Instant::now();
            match self.try_source(&src, m, f, &dest) {
                Ok(gz) => {
                    println!(
                        "  fetched  {label} ({}{}, sha256 verified) from {what} in {:.1}s",
                        human_bytes(f.bytes),
                        if gz { ", gunzipped" } else { "" },
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Err(e)
                    if from_mirror
                        && matches!(e.downcast_ref::<HttpStatus>(), Some(HttpStatus(404, _))) =>
                {
                    mirror_missing.push("HTTP 404".to_owned());
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    match e.strip_prefix("skipped: ") {
                        Some(why) => println!("  skipped  {label} from {what}: {why}"),
                        None => println!("  failed   {label} from {what}: {e}"),
                    }
                    tried.push(format!("  - {what}: {e}"));
                }
            }
        }
        if !mirror_done && tried.is_empty() {
            report_mirror_missing(&mut mirror_missing, &mut tried);
        }
        if tried.is_empty() {
            tried.push(
                "  - (no sources: no mirror configured and no urls in the manifest)".to_owned(),
            );
        }
        Err(anyhow!(
            "could not fetch {label} into {}; tried:\n{}",
            dest.display(),
            tried.join("\n")
        ))
    }

    /// Installs `dest` from one source; `Ok(true)` when the source was gzip.
    fn try_source(&mut self, src: &Src, m: &Manifest, f: &FileEntry, dest: &Path) -> Result<bool> {
        match src {
            Src::Local(p) => install_from_file(p, f, dest),
            Src::Http(url) => {
                if let Some(path) = url.strip_prefix("file://") {
                    return install_from_file(Path::new(path), f, dest);
                }
                let host = url_host(url).to_owned();
                if self.dead_hosts.contains(&host) {
                    bail!("skipped: {host} was unreachable earlier in this run");
                }
                let part = sidecar(dest, "part");
                if let Err(e) = self.download(url, &part, f) {
                    if e.downcast_ref::<Unreachable>().is_some() {
                        self.dead_hosts.insert(host);
                    }
                    // Keep a partial download for resuming; drop an empty one.
                    if fs::metadata(&part).map(|m| m.len() == 0).unwrap_or(true) {
                        let _ = fs::remove_file(&part);
                        let _ = fs::remove_file(sidecar(dest, "part.src"));
                    }
                    return Err(e);
                }
                let result = install_from_file(&part, f, dest);
                // Complete but wrong, or installed: either way the part has served.
                let _ = fs::remove_file(&part);
                let _ = fs::remove_file(sidecar(dest, "part.src"));
                result
            }
            Src::Debian => {
                let deb = m.debian.as_ref().context("no [debian] section")?;
                let root = self.debian_root(&deb.package)?;
                let base = root.join(&deb.dir);
                let cands = [base.join(format!("{}.gz", f.name)), base.join(&f.name)];
                let p = cands
                    .iter()
                    .find(|p| p.is_file())
                    .with_context(|| format!("the package has no {}/{}(.gz)", deb.dir, f.name))?;
                install_from_file(p, f, dest)
            }
        }
    }

    /// Downloads `url` into `part`, resuming a previous partial download of the same URL.
    fn download(&self, url: &str, part: &Path, f: &FileEntry) -> Result<()> {
        let src_note = sidecar_of_part(part);
        let same_source = fs::read_to_string(&src_note)
            .map(|s| s.trim() == url)
            .unwrap_or(false);
        let mut offset = if same_source {
            fs::metadata(part).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        if offset == 0 {
            let _ = fs::remove_file(part);
        }
        fs::write(&src_note, url).with_context(|| format!("writing {}", src_note.display()))?;

        let mut req = self.agent.get(url);
        if offset > 0 {
            req = req.set("Range", &format!("bytes={offset}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, _)) if offset > 0 => {
                // Our part is at least as long as the file: start over.
                let _ = fs::remove_file(part);
                offset = 0;
                self.agent.get(url).call().map_err(http_error)?
            }
            Err(e) => return Err(http_error(e)),
        };
        let resumed = offset > 0 && resp.status() == 206;
        if offset > 0 && !resumed {
            offset = 0;
        }
        let len: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
        let total = len.map(|l| l + offset);
        // Refuse absurd sizes early: a compressed file is never much larger than its payload.
        let limit = f.bytes + f.bytes / 4 + (1 << 20);
        if let Some(t) = total {
            if t > limit {
                bail!(
                    "server announces {} but the payload is {}",
                    human_bytes(t),
                    human_bytes(f.bytes)
                );
            }
        }
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(part)
            .with_context(|| format!("opening {}", part.display()))?;
        if resumed {
            println!("           resuming at {} ({})", human_bytes(offset), url);
        }
        let mut reader = resp.into_reader().take(limit.saturating_sub(offset) + 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut done = offset;
        let mut last = Instant::now();
        let show = self.tty && total.unwrap_or(f.bytes) > 4_000_000;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if show {
                        eprintln!();
                    }
                    return Err(e).context(format!(
                        "download interrupted at {} (run again to resume)",
                        human_bytes(done)
                    ));
                }
            };
            out.write_all(&buf[..n])
                .with_context(|| format!("writing {}", part.display()))?;
            done += n as u64;
            if done > limit {
                bail!("more than {} received; not this file", human_bytes(limit));
            }
            if show && last.elapsed() > Duration::from_millis(200) {
                last = Instant::now();
                match total {
                    Some(t) => {
                        eprint!("\r           {} / {}   ", human_bytes(done), human_bytes(t))
                    }
                    None => eprint!("\r           {}   ", human_bytes(done)),
                }
            }
        }
        if show {
            eprint!("\r{:60}\r", "");
        }
        out.sync_all()?;
        if let Some(t) = total {
            if done != t {
                bail!(
                    "connection closed after {} of {} (run again to resume)",
                    human_bytes(done),
                    human_bytes(t)
                );
            }
        }
        Ok(())
    }

    /// Downloads and unpacks a Debian package once per run; returns the unpacked root.
    fn debian_root(&mut self, package: &str) -> Result<PathBuf> {
        if let Some(r) = self.debian.get(package) {
            return r.clone().map_err(|e| anyhow!("{e}"));
        }
        let r = self.fetch_debian(package).map_err(|e| format!("{e:#}"));
        self.debian.insert(package.to_owned(), r.clone());
        r.map_err(|e| anyhow!("{e}"))
    }

    fn fetch_debian(&mut self, package: &str) -> Result<PathBuf> {
        let tmp = std::env::temp_dir().join(format!(
            "gm-xtask-deb-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        self.temp_dirs.push(tmp.clone());
        {
            // apt drops to the `_apt` user to download: let it write here.
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o777));
        }
        println!(
            "           apt-get download {package} (into {})",
            tmp.display()
        );
        let out = Command::new("apt-get")
            .args(["download", package])
            .current_dir(&tmp)
            .output()
            .context("cannot run apt-get (not a Debian/Ubuntu system?)")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            bail!("apt-get download {package} failed: {last} (try `apt-get update` first)");
        }
        let deb = fs::read_dir(&tmp)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("apt-get download produced no .deb")?;
        let root = tmp.join("root");
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&root)
            .output()
            .context("cannot run dpkg-deb")?;
        if !out.status.success() {
            bail!(
                "dpkg-deb -x {} failed: {}",
                deb.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(root)
    }
}

/// An HTTP error status.
#[derive(Debug)]
struct HttpStatus(u16, String);

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.0, self.1)
    }
}

impl std::error::Error for HttpStatus {}

/// A connection-level failure: the host is not tried again in this run.
#[derive(Debug)]
struct Unreachable(String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

fn http_error(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, resp) => {
            anyhow::Error::new(HttpStatus(code, resp.status_text().to_owned()))
        }
        ureq::Error::Transport(t) => {
            let msg = match t.message() {
                Some(m) => format!("{}: {m}", t.kind()),
                None => t.kind().to_string(),
            };
            let msg = match std::error::Error::source(&t) {
                Some(s) => format!("{msg} ({s})"),
                None => msg,
            };
            anyhow::Error::new(Unreachable(msg))
        }
    }
}

/// `scheme://host[:port]/…` → `host[:port]`.
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// `<dest>.<ext>`.
fn sidecar(dest: &Path, ext: &str) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn sidecar_of_part(part: &Path) -> PathBuf {
    sidecar(part, "src")
}

/// Whether a stream starts with the gzip magic (`1f 8b`).
pub fn is_gzip(head: &[u8]) -> bool {
    head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
}

/// Hex sha256 and length of everything `r` yields.
pub fn sha256_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n_total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((hex(&h.finalize()), n_total))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks size, then sha256, of a cached payload.
pub fn verify_file(path: &Path, f: &FileEntry) -> Result<()> {
    let len = fs::metadata(path)?.len();
    if len != f.bytes {
        bail!("size {len} bytes, expected {}", f.bytes);
    }
    let (sha, _) = sha256_reader(File::open(path)?)?;
    check_digest(&sha, len, f)
}

/// Compares a measured digest and size with the manifest's.
pub fn check_digest(sha: &str, len: u64, f: &FileEntry) -> Result<()> {
    if len != f.bytes {
        bail!("payload is {len} bytes, expected {}", f.bytes);
    }
    if sha != f.sha256 {
        bail!("sha256 mismatch: got {sha}, expected {}", f.sha256);
    }
    Ok(())
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    n: u64,
    limit: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        if self.n > self.limit {
            return Err(io::Error::other(format!(
                "payload larger than the expected {} bytes",
                self.limit
            )));
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads `src` (gunzipping it when it starts with the gzip magic), verifies the payload,
/// and atomically renames it to `dest`. Returns whether it was gzip.
pub fn install_from_file(src: &Path, f: &FileEntry, dest: &Path) -> Result<bool> {
    let file = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    install_from_reader(file, f, dest)
}

/// As [`install_from_file`], from any reader.
pub fn install_from_reader(r: impl Read, f: &FileEntry, dest: &Path) -> Result<bool> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let gz = is_gzip(r.fill_buf()?);
    let tmp = sidecar(dest, &format!("{}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        let out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = HashingWriter {
            inner: io::BufWriter::with_capacity(1 << 16, out),
            hasher: Sha256::new(),
            n: 0,
            limit: f.bytes,
        };
        if gz {
            io::copy(&mut MultiGzDecoder::new(r), &mut w).context("gunzip failed")?;
        } else {
            io::copy(&mut r, &mut w)?;
        }
        let sha = hex(&w.hasher.finalize_reset());
        check_digest(&sha, w.n, f)?;
        let out = w.inner.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        fs::rename(&tmp, dest).with_context(|| format!("renaming into {}", dest.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| gz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};

    fn entry(payload: &[u8]) -> FileEntry {
        let (sha256, bytes) = sha256_reader(payload).unwrap();
        FileEntry {
            name: "payload".into(),
            role: "train".into(),
            sha256,
            bytes,
            urls: vec![],
        }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gm-xtask-data-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn sha256_known_values() {
        assert_eq!(
            sha256_reader(&b""[..]).unwrap().0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_reader(&b"abc"[..]).unwrap(),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
                3
            )
        );
    }

    #[test]
    fn gzip_magic_detection() {
        assert!(is_gzip(&gzip(b"hello")));
        assert!(!is_gzip(b"\x00\x00\x08\x03"), "IDX header is not gzip");
        assert!(!is_gzip(b"0 1 0 1"));
        assert!(!is_gzip(b"\x1f"));
        assert!(!is_gzip(b""));
    }

    #[test]
    fn mirror_candidate_order() {
        assert_eq!(
            mirror_candidates("/srv/m/", "mnist", "t10k-labels-idx1-ubyte"),
            [
                "/srv/m/mnist/t10k-labels-idx1-ubyte.gz",
                "/srv/m/mnist/t10k-labels-idx1-ubyte",
                "/srv/m/t10k-labels-idx1-ubyte.gz",
                "/srv/m/t10k-labels-idx1-ubyte",
            ]
        );
        let m = Mirror::parse("https://example.org/data/").unwrap();
        assert_eq!(m, Mirror::Url("https://example.org/data".into()));
        assert_eq!(m.candidates("a", "b")[0], "https://example.org/data/a/b.gz");
        assert!(Mirror::parse("/definitely/not/a/folder").is_err());
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("http://yann.lecun.com/exdb/mnist/x.gz"),
            "yann.lecun.com"
        );
        assert_eq!(url_host("https://h:8080"), "h:8080");
        assert_eq!(url_host("https://h?q"), "h");
    }

    #[test]
    fn install_gz_and_plain_and_reject_wrong() {
        let d = tmpdir("install");
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let f = entry(&payload);
        let dest = d.join("payload");

        // gzip source, detected by magic even without a .gz name
        let src = d.join("src-no-ext");
        fs::write(&src, gzip(&payload)).unwrap();
        assert!(install_from_file(&src, &f, &dest).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), payload);
        verify_file(&dest, &f).unwrap();

        // plain source
        fs::remove_file(&dest).unwrap();
        let src = d.join("src.plain");
        fs::write(&src, &payload).unwrap();
        assert!(!install_from_file(&src, &f, &dest).unwrap());
        verify_file(&dest, &f).unwrap();

        // corrupted cache detected
        let mut bad = payload.clone();
        bad.push(b'x');
        fs::write(&dest, &bad).unwrap();
        assert!(verify_file(&dest, &f).is_err());
        bad.pop();
        bad[7] ^= 1;
        fs::write(&dest, &bad).unwrap();
        let err = verify_file(&dest, &f).unwrap_err().to_string();
        assert!(err.contains("sha256 mismatch"), "{err}");

        // wrong payload: nothing installed, no temp file left behind
        fs::remove_file(&dest).unwrap();
        let src = d.join("src.bad");
        fs::write(&src, gzip(&bad)).unwrap();
        assert!(install_from_file(&src, &f, &dest).is_err());
        assert!(!dest.exists());
        // too long: stopped at the limit
        let mut long = payload.clone();
        long.extend_from_slice(b"tail");
        fs::write(&src, &long).unwrap();
        assert!(install_from_file(&src, &f, &dest).is_err());
        assert!(!dest.exists());
        let leftovers: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        fs::remove_dir_all(&d).unwrap();
    }
}
