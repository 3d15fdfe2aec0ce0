//! Exact money arithmetic: amounts are whole numbers of the token's
//! smallest unit, kept as decimal text in the database (18-decimal tokens
//! overflow a BIGINT) and as `u128` here; rates are percentages read from
//! the settings as exact decimals. Nothing is ever a float.

use std::fmt;

/// Why an amount or a percentage could not be read.
#[derive(Debug, PartialEq)]
pub struct BadNumber(pub String);

impl fmt::Display for BadNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount in the token's smallest unit, from its decimal text.
pub fn amount(text: &str) -> Result<u128, BadNumber> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadNumber(format!(
            "{text:?} is not a whole number of the token's smallest unit"
        )));
    }
    t.parse()
        .map_err(|_| BadNumber(format!("{text:?} is too large an amount")))
}

/// A percentage as an exact fraction `numerator / denominator`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent {
    numerator: u128,
    denominator: u128,
}

impl Percent {
    /// Reads `"10%"`, `"0.5%"`, `"500%"` (the `%` is required, so a rate
    /// written as a fraction, `"0.10"`, is refused rather than read as
    /// 0.1%).
    pub fn parse(text: &str) -> Result<Percent, BadNumber> {
        let bad = || {
            BadNumber(format!(
                "{text:?} is not a percentage like \"10%\" or \"0.5%\""
            ))
        };
        let digits = text.trim().strip_suffix('%').ok_or_else(bad)?.trim();
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty()
            || fraction.len() > 18
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let numerator: u128 = format!("{whole}{fraction}").parse().map_err(|_| bad())?;
        let denominator = 100 * 10u128.pow(fraction.len() as u32);
        Ok(Percent {
            numerator,
            denominator,
        })
    }

    /// `amount × self`, rounded down to the smallest unit; `None` on overflow.
    pub fn of(&self, amount: u128) -> Option<u128> {
        amount
            .checked_mul(self.numerator)
            .map(|n| n / self.denominator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_exact() {
        let ten = Percent::parse("10%").unwrap();
        // 100.00 in cents.
        assert_eq!(ten.of(10_000), Some(1_000));
        assert_eq!(Percent::parse("500%").unwrap().of(10_000), Some(50_000));
        assert_eq!(Percent::parse("0.5%").unwrap().of(1_000), Some(5));
        assert_eq!(Percent::parse("3%").unwrap().of(7), Some(0));
        assert!(Percent::parse("0.10").is_err());
        assert!(Percent::parse("-1%").is_err());
        assert!(Percent::parse("%").is_err());
        assert!(Percent::parse("1e3%").is_err());
    }

    #[test]
    fn amounts_are_whole_numbers() {
        assert_eq!(
            amount("100000000000000000000"),
            Ok(100_000_000_000_000_000_000)
        );
        assert!(amount("1.5").is_err());
        assert!(amount("").is_err());
        assert!(amount("-3").is_err());
        assert!(amount(&"9".repeat(40)).is_err());
    }
}
