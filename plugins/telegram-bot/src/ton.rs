//! TON amounts as integer nanotons (1 TON = 10^9 nanotons). The seed's
//! payloads write amounts in TON (`"amount": 10.0`); they are read as
//! decimal text, never through a float.

use serde_json::Value;

/// Nanotons in one TON.
pub const NANO: i64 = 1_000_000_000;

/// Why an amount could not be read.
#[derive(Debug, PartialEq)]
pub struct BadAmount(pub String);

impl std::fmt::Display for BadAmount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "amount {}: expected TON as a decimal number with at most 9 decimals, like 10.5",
            self.0
        )
    }
}

/// A TON amount given as a JSON number (`10.0`) or string (`"10.5"`), in
/// nanotons. A JSON number is read from its shortest decimal form, which
/// is exact for amounts with at most nine decimals.
pub fn from_json(value: &Value) -> Result<i64, BadAmount> {
    match value {
        Value::Number(n) => parse(&n.to_string()),
        Value::String(s) => parse(s),
        other => Err(BadAmount(other.to_string())),
    }
}

/// `"10"`, `"10.5"`, `"0.000000001"` as nanotons; negative, exponents,
/// more than nine decimals and overflow are errors.
pub fn parse(text: &str) -> Result<i64, BadAmount> {
    let bad = || BadAmount(format!("{text:?}"));
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 9 {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    whole
        .checked_mul(NANO)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_are_exact_nanotons() {
        assert_eq!(from_json(&json!(10.0)), Ok(10 * NANO));
        assert_eq!(from_json(&json!(2)), Ok(2 * NANO));
        assert_eq!(from_json(&json!(0.1)), Ok(100_000_000));
        assert_eq!(from_json(&json!("1.000000001")), Ok(NANO + 1));
        assert!(from_json(&json!("1.0000000001")).is_err());
        assert!(from_json(&json!(-1)).is_err());
        assert!(from_json(&json!("1e9")).is_err());
        assert!(from_json(&json!(null)).is_err());
    }
}
