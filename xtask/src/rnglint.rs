//! A workspace check, run as an xtask unit test: every test that draws from libtorch's
//! global generator directly holds the process-wide RNG lock (`gm_core::rng_guard`, or a
//! crate's `test_rng_lock()`), so seeded figures do not change with the test threads'
//! timing. Draws reached only through helpers are not seen by this scan.

#![cfg(test)]

use std::path::{Path, PathBuf};

/// Calls that draw from (or reseed) libtorch's global generator.
const DRAWS: &[&str] = &[
    "manual_seed(",
    "Tensor::rand(",
    "Tensor::randn(",
    "Tensor::randint(",
    "Tensor::randperm(",
    "rand_like(",
    "randn_like(",
    ".bernoulli()",
    ".bernoulli_",
    ".normal_(",
    ".uniform_(",
    ".multinomial(",
];

/// What holding the lock looks like in a test body.
const LOCKS: &[&str] = &[
    "rng_guard::lock()",
    "rng_guard::seeded(",
    "= seeded(",
    "test_rng_lock()",
    "RNG.lock()",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `(name, body)` of every `#[test]` function in `src` (body up to its matching brace).
fn tests_of(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("#[test]") {
        rest = &rest[i + 7..];
        let Some(f) = rest.find("fn ") else { break };
        let name: String = rest[f + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(open) = rest[f..].find('{').map(|o| f + o) else {
            break;
        };
        let mut depth = 0usize;
        let mut end = rest.len();
        for (k, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push((name, rest[open..end].to_string()));
        rest = &rest[end..];
    }
    out
}

#[test]
fn tests_that_draw_from_the_global_generator_hold_the_lock() {
    let mut files = Vec::new();
    rust_files(&crate::util::repo_root().join("crates"), &mut files);
    files.sort();
    let (mut seen, mut bad) = (0, Vec::new());
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        for (name, body) in tests_of(&src) {
            if let Some(d) = DRAWS.iter().find(|d| body.contains(*d)) {
                seen += 1;
                if !LOCKS.iter().any(|l| body.contains(l)) {
                    bad.push(format!(
                        "{}: {name} calls {d} without the lock",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} drawing tests found: is the scan broken?"
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn the_scan_finds_test_bodies() {
    let src =
        "#[test]\nfn a() { let x = { 1 }; Tensor::randn(x); }\n#[test]\n#[ignore]\nfn b() {}\n";
    let t = tests_of(src);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].0, "a");
    assert!(t[0].1.contains("Tensor::randn("), "{}", t[0].1);
    assert_eq!(t[1], ("b".to_string(), "{".to_string()));
}
