//! Human-written quantities in config and on the command line: byte sizes
//! (`64KiB`, `16MiB`), and serde adapters for durations, which
//! [`crate::schedule::parse_duration`] reads (`500ms`, `30s`, `1h30m`).

use std::time::Duration;

/// A quantity that does not parse; the message repeats the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("bad size {0:?}: expected a number and a unit, e.g. 512B, 64KiB, 16MiB, 1GiB")]
    Size(String),
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
/// `B`, `KiB`, `MiB`, `GiB` (and `KB`, `MB`, `GB` read as the same powers of two).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(text.to_string());
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let factor: u64 = match s[digits..].trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

/// Serde adapters so config structs can hold `Duration` and byte counts
/// written as strings (`"30s"`, `"64MiB"`); integers are read as
/// milliseconds and bytes respectively.
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
                Raw::Int(ms) => Ok(Duration::from_millis(ms)),
                Raw::Text(s) => crate::schedule::parse_duration(&s).map_err(D::Error::custom),
            }
        }

        pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&super::super::format_duration(*d))
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

    pub mod size {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
            match Raw::deserialize(d)? {
                Raw::Int(n) => Ok(n),
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
    fn sizes_parse_binary_units() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
