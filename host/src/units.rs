//! Human-written quantities in config and on the command line: byte sizes
//! (`64KiB`, `16MiB`), and serde adapters for durations, which
//! [`crate::schedule::parse_duration`] reads (`500ms`, `30s`, `1h30m`).

use std::time::Duration;

/// A quantity that does not parse; the message repeats the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("bad size {0:?}: expected a number and a unit, e.g. 512B, 64KiB, 16MiB, 1GiB")]
    Size(String),
    #[error(
        "ambiguous size {text:?}: {unit} could mean powers of 1000 or of 1024; write {binary} ({bytes} bytes) or the exact bytes with B"
    )]
    AmbiguousSize {
        text: String,
        unit: String,
        binary: String,
        bytes: u64,
    },
}

/// Formats a duration the way [`crate::schedule::parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Parses a byte size: `<integer>` bytes or `<integer><unit>` with units
/// `B`, `KiB`, `MiB`, `GiB`. `KB`, `MB`, `GB` (and `K`, `M`, `G`) are refused
/// as ambiguous, naming the binary unit meant: they used to be read as
/// powers of two without a word, a surprise to whoever meant powers of ten.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(text.to_string());
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let unit = s[digits..].trim();
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "K" | "kB" | "k" | "MB" | "M" | "GB" | "G" => {
            let (binary, factor) = match unit.chars().next() {
                Some('K' | 'k') => ("KiB", 1u64 << 10),
                Some('M') => ("MiB", 1 << 20),
                _ => ("GiB", 1 << 30),
            };
            return Err(UnitError::AmbiguousSize {
                text: text.to_string(),
                unit: unit.to_string(),
                binary: format!("{n}{binary}"),
                bytes: n.saturating_mul(factor),
            });
        }
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

/// Serde adapters so config structs can hold `Duration` and byte counts
/// written as strings (`"30s"`, `"64MiB"`). A bare integer is refused with
/// the spellings that work: `timeout = 30` was read as 30 ms, never what was
/// meant. The errors surface through toml with the file's line and key.
pub mod serde_units {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }

    pub mod duration {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            match Raw::deserialize(d)? {
                Raw::Int(n) => Err(D::Error::custom(format!(
                    "a duration needs a unit: write \"{n}s\" or \"{n}ms\" (or 5m, 1h30m, 1d), not a bare {n}"
                ))),
                Raw::Text(s) => crate::schedule::parse_duration(&s).map_err(D::Error::custom),
            }
        }

        pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&super::super::format_duration(*d))
        }
    }

    /// A list of durations, each written as [`duration`] writes one.
    pub mod durations {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
            Vec::<String>::deserialize(d)?
                .iter()
                .map(|t| crate::schedule::parse_duration(t).map_err(D::Error::custom))
                .collect()
        }

        pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|d| super::super::format_duration(*d)))
        }
    }

    pub mod option_duration {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::duration::deserialize(d).map(Some)
        }

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::duration::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }

    /// A duration that must lie in a range, checked where it is read so the
    /// error carries the line: `#[serde(deserialize_with = "...")]` with a
    /// small function per setting calling [`within`].
    pub fn within<'de, D: Deserializer<'de>>(
        d: D,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, D::Error> {
        let v = duration::deserialize(d)?;
        if v < min || v > max {
            return Err(D::Error::custom(format!(
                "{} is out of range: it must be from {} to {}",
                crate::units::format_duration(v),
                crate::units::format_duration(min),
                crate::units::format_duration(max)
            )));
        }
        Ok(v)
    }

    pub mod size {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
            match Raw::deserialize(d)? {
                Raw::Int(n) => Err(D::Error::custom(format!(
                    "a size needs a unit: write \"{n}B\" (or 64KiB, 16MiB, 1GiB), not a bare {n}"
                ))),
                Raw::Text(s) => super::super::parse_size(&s).map_err(D::Error::custom),
            }
        }

        pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u64(*n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_back_to_what_parses() {
        for d in ["1h30m", "500ms", "2d", "45s"] {
            assert_eq!(
                format_duration(crate::schedule::parse_duration(d).unwrap()),
                d
            );
        }
    }

    #[test]
    fn decimal_looking_units_are_refused_naming_the_binary_one() {
        let err = parse_size("16MB").unwrap_err().to_string();
        assert!(err.contains("16MiB (16777216 bytes)"), "{err}");
        assert!(parse_size("1K").is_err());
        assert!(parse_size("2GB").is_err());
    }

    #[test]
    fn sizes_parse_binary_units() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
