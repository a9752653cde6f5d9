//! Checks of config values: each returns `Ok(())` or one [`Error::Config`] naming the field,
//! its value and what was expected, so that a model's `validate` reads as a list of rules.
//!
//! ```
//! use gm_core::checks;
//! checks::positive("model.beta", 1.0)?;
//! assert!(checks::at_least("model.hidden", 0, 1, "a positive number of hidden units").is_err());
//! checks::in_range("model.k", 3, 1..=100, "a number of iterations in 1..=100")?;
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::{Error, Result};
use std::fmt::Display;
use std::ops::RangeInclusive;

/// `value` is a finite number > 0 ("a positive finite number").
pub fn positive(field: &str, value: f64) -> Result<()> {
    ok_or(
        field,
        value,
        value > 0.0 && value.is_finite(),
        "a positive finite number",
    )
}

/// `value` is a finite number ≥ 0 ("a finite number ≥ 0").
pub fn non_negative(field: &str, value: f64) -> Result<()> {
    ok_or(
        field,
        value,
        value >= 0.0 && value.is_finite(),
        "a finite number ≥ 0",
    )
}

/// `value` is finite ("a finite number").
pub fn finite(field: &str, value: f64) -> Result<()> {
    ok_or(field, value, value.is_finite(), "a finite number")
}

/// `value ≥ min`, else the error says `expected`.
pub fn at_least<T: PartialOrd + Display>(
    field: &str,
    value: T,
    min: T,
    expected: impl Into<String>,
) -> Result<()> {
    let ok = value >= min;
    ok_or(field, value, ok, expected)
}

/// `value` lies in `range`, else the error says `expected`.
pub fn in_range<T: PartialOrd + Display>(
    field: &str,
    value: T,
    range: RangeInclusive<T>,
    expected: impl Into<String>,
) -> Result<()> {
    let ok = range.contains(&value);
    ok_or(field, value, ok, expected)
}

fn ok_or(field: &str, value: impl Display, ok: bool, expected: impl Into<String>) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, value, expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::Config { field, value, .. }) => format!("{field}={value}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn each_check_names_the_field_and_value() {
        assert!(positive("a", 0.5).is_ok());
        assert_eq!(field_of(positive("a", 0.0)), "a=0");
        assert_eq!(field_of(positive("a", f64::INFINITY)), "a=inf");
        assert_eq!(field_of(positive("a", f64::NAN)), "a=NaN");
        assert!(non_negative("b", 0.0).is_ok());
        assert_eq!(field_of(non_negative("b", -1.0)), "b=-1");
        assert!(finite("c", -3.0).is_ok());
        assert_eq!(field_of(finite("c", f64::NAN)), "c=NaN");
        assert!(at_least("d", 1, 1, "≥ 1").is_ok());
        assert_eq!(field_of(at_least("d", 0, 1, "≥ 1")), "d=0");
        assert!(in_range("e", 100, 1..=100, "1..=100").is_ok());
        assert_eq!(field_of(in_range("e", 101, 1..=100, "1..=100")), "e=101");
        assert_eq!(field_of(in_range("e", 0usize, 1..=9, "1..=9")), "e=0");
    }
}
