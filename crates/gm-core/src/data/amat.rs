//! Reader of the `.amat` text files of statically binarized MNIST (Larochelle & Murray 2011).
//!
//! Each line is one example: `cols` values, each the single character `0` or `1`, separated by
//! spaces (tabs and a `\r` before the newline are accepted too; blank lines are skipped). The
//! exact parser ([`parse_amat`]) walks the bytes once without building strings; any other
//! token, a short or long line, or a wrong row count is an [`Error::Format`] naming the file,
//! the line and the column. [`parse_amat_tensor`] first tries the layout Larochelle's files
//! have — every value followed by exactly one space, the last of a line by `\n` — checked and
//! decoded by vectorized libtorch operations (the 78 MB training file in well under a second
//! even in a debug build), and falls back to the exact parser for anything else.

use std::path::Path;

use tch::{Kind, Tensor};

use super::files;
use crate::{Error, Result};

/// Reads the `.amat` file at `path` (raw or gzip-wrapped); see [`parse_amat`].
pub fn read_amat(path: &Path, cols: usize, expected_rows: Option<usize>) -> Result<Vec<u8>> {
    parse_amat(&files::read_payload(path)?, path, cols, expected_rows)
}

/// Like [`parse_amat`], as a `Uint8` tensor `[rows, cols]`; see the module docs.
pub fn parse_amat_tensor(
    bytes: &[u8],
    path: &Path,
    cols: usize,
    expected_rows: Option<usize>,
) -> Result<Tensor> {
    let stride = 2 * cols;
    let rows = bytes.len() / stride.max(1);
    let canonical_size = cols > 0 && rows > 0 && rows * stride == bytes.len();
    if canonical_size && expected_rows.unwrap_or(rows) == rows {
        let t = Tensor::from_slice(bytes).view([rows as i64, cols as i64, 2]);
        let values = t.select(2, 0);
        // '0' = 0x30 and '1' = 0x31 are the only bytes with v | 1 == 0x31
        let values_ok = bool::try_from(values.bitwise_or(1).eq(0x31).all());
        let mut row_seps = vec![b' '; cols];
        row_seps[cols - 1] = b'\n';
        let seps_ok = bool::try_from(
            t.select(2, 1)
                .eq_tensor(&Tensor::from_slice(&row_seps))
                .all(),
        );
        if matches!((values_ok, seps_ok), (Ok(true), Ok(true))) {
            return Ok((values - 0x30).to_kind(Kind::Uint8).contiguous());
        }
    }
    let values = parse_amat(bytes, path, cols, expected_rows)?;
    let rows = (values.len() / cols.max(1)) as i64;
    Ok(Tensor::from_slice(&values).view([rows, cols as i64]))
}

#[inline]
fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

/// Parses `.amat` text of 0/1 values into a row-major `rows × cols` byte array; `path` names
/// the file in errors. `expected_rows`, when given, must equal the number of rows.
pub fn parse_amat(
    bytes: &[u8],
    path: &Path,
    cols: usize,
    expected_rows: Option<usize>,
) -> Result<Vec<u8>> {
    let mut out: Vec<u8> =
        Vec::with_capacity(expected_rows.unwrap_or(bytes.len() / 2 / cols.max(1)) * cols);
    let mut line = 1usize;
    let mut col = 0usize;
    let mut rows = 0usize;
    let n = bytes.len();
    let mut i = 0usize;
    let end_line = |col: usize, line: usize, rows: &mut usize| -> Result<()> {
        if col == 0 {
            return Ok(()); // blank line
        }
        if col != cols {
            return Err(Error::format(
                path,
                format!("line {line}: expected {cols} values, found {col}"),
            ));
        }
        *rows += 1;
        Ok(())
    };
    while i < n {
        let b = bytes[i];
        if b == b'\n' {
            end_line(col, line, &mut rows)?;
            line += 1;
            col = 0;
            i += 1;
        } else if is_sep(b) {
            i += 1;
        } else {
            let start = i;
            while i < n && bytes[i] != b'\n' && !is_sep(bytes[i]) {
                i += 1;
            }
            col += 1;
            let tok = &bytes[start..i];
            let v = if tok == b"0" {
                0
            } else if tok == b"1" {
                1
            } else {
                let shown = String::from_utf8_lossy(&tok[..tok.len().min(24)]);
                let more = if tok.len() > 24 { "…" } else { "" };
                return Err(Error::format(
                    path,
                    format!("line {line}, column {col}: expected 0 or 1, found `{shown}{more}`"),
                ));
            };
            if col > cols {
                return Err(Error::format(
                    path,
                    format!(
                        "line {line}, column {col}: expected {cols} values per line, found more"
                    ),
                ));
            }
            out.push(v);
        }
    }
    end_line(col, line, &mut rows)?;
    if let Some(expected) = expected_rows {
        if rows != expected {
            return Err(Error::format(
                path,
                format!("expected {expected} rows of {cols} values, found {rows}"),
            ));
        }
    }
    if rows == 0 {
        return Err(Error::format(path, "no rows: the file is empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<Vec<u8>>) -> String {
        match r {
            Err(Error::Format { path, msg }) => {
                assert_eq!(path, Path::new("dir/binarized_mnist_test.amat"));
                msg
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    const P: &str = "dir/binarized_mnist_test.amat";

    #[test]
    fn amat_reads_rows() {
        let text = b"0 1 1 0\n1 1 1 1\n0 0 0 1\n";
        let v = parse_amat(text, Path::new(P), 4, Some(3)).unwrap();
        assert_eq!(v, [0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1]);
        // CRLF, tabs, trailing spaces, no final newline, blank lines
        let text = b"0\t1 1 0 \r\n\n1 1 1 1";
        let v = parse_amat(text, Path::new(P), 4, None).unwrap();
        assert_eq!(v, [0, 1, 1, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn amat_reads_gz_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.amat");
        std::fs::write(&p, crate::data::idx::tests::gzip(b"1 0\n0 1\n")).unwrap();
        assert_eq!(read_amat(&p, 2, Some(2)).unwrap(), [1, 0, 0, 1]);
    }

    #[test]
    fn amat_bad_value_names_line_and_column() {
        let text = b"0 1 1 0\n1 1 0.5 1\n";
        let m = msg(parse_amat(text, Path::new(P), 4, Some(2)));
        assert!(m.contains("line 2, column 3") && m.contains("`0.5`"), "{m}");
        let text = b"0 1 1 0\n1 1 1 1\n0 0 2 0\n";
        let m = msg(parse_amat(text, Path::new(P), 4, None));
        assert!(m.contains("line 3, column 3") && m.contains("`2`"), "{m}");
        let err = parse_amat(text, Path::new(P), 4, None).unwrap_err();
        assert!(err.to_string().starts_with(P), "{err}");
    }

    #[test]
    fn amat_tensor_fast_and_exact_paths_agree() {
        let p = Path::new(P);
        // canonical layout (fast path) and a variant with CRLF (exact path)
        let canonical = b"0 1 1 0\n1 1 1 1\n0 0 0 1\n";
        let crlf = b"0 1 1 0\r\n1 1 1 1\r\n0 0 0 1\r\n";
        let expect = parse_amat(canonical, p, 4, Some(3)).unwrap();
        for text in [&canonical[..], &crlf[..]] {
            let t = parse_amat_tensor(text, p, 4, Some(3)).unwrap();
            assert_eq!(t.size(), [3, 4]);
            assert_eq!(t.kind(), Kind::Uint8);
            assert_eq!(Vec::<u8>::try_from(&t.flatten(0, -1)).unwrap(), expect);
        }
        // same length as the canonical layout but a bad value or separator: exact errors
        let m = msg(parse_amat_tensor(b"0 1 1 0\n1 1 2 1\n", p, 4, None).map(|_| vec![]));
        assert!(m.contains("line 2, column 3"), "{m}");
        let m = msg(parse_amat_tensor(b"0 1 1 0\n1 1 1  \n", p, 4, None).map(|_| vec![]));
        assert!(m.contains("line 2: expected 4 values, found 3"), "{m}");
        // no final newline: not the canonical layout, but valid
        let t = parse_amat_tensor(b"0 1 1 0\n1 1 1 1 ", p, 4, None).unwrap();
        assert_eq!(t.size(), [2, 4]);
        let m = msg(parse_amat_tensor(b"0 1 1 0\n1 1 1 1\n", p, 4, Some(3)).map(|_| vec![]));
        assert!(m.contains("expected 3 rows"), "{m}");
    }

    #[test]
    fn amat_wrong_shape_is_an_error() {
        let m = msg(parse_amat(b"0 1 1\n", Path::new(P), 4, None));
        assert!(m.contains("line 1: expected 4 values, found 3"), "{m}");
        let m = msg(parse_amat(b"0 1 1 0\n0 1 1 0 1\n", Path::new(P), 4, None));
        assert!(m.contains("line 2, column 5"), "{m}");
        let m = msg(parse_amat(b"0 1 1 0\n", Path::new(P), 4, Some(2)));
        assert!(m.contains("expected 2 rows of 4 values, found 1"), "{m}");
        let m = msg(parse_amat(b"", Path::new(P), 4, None));
        assert!(m.contains("empty"), "{m}");
    }
}
