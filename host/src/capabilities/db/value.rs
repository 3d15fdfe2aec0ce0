//! PostgreSQL values to and from the WIT `value` (null, integer, real,
//! text, blob).
//!
//! Parameters go to the server in text format (a blob bound to `bytea` in
//! binary), so the server parses them as whatever type the statement infers
//! for them: `1` binds to `int4`, `bool` or `numeric`, `"2025-01-31T09:00Z"`
//! to `timestamptz`. Results come back in binary format and are decoded
//! here: booleans and integers as `integer`, floats as `real`, `bytea` as
//! `blob`, and text-like, `numeric`, `uuid`, `json(b)`, dates and times as
//! `text`. Any other type is an error that says to cast the column to text.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use crate::capabilities::bindings::taskhost::plugin::db::Value;

type BoxError = Box<dyn Error + Sync + Send>;

/// A parameter, encoded for whatever type the server inferred.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self.0 {
            Value::Null => return Ok(IsNull::Yes),
            Value::Integer(i) => out.put_slice(i.to_string().as_bytes()),
            Value::Real(f) => out.put_slice(real_text(*f).as_bytes()),
            Value::Text(s) => {
                if s.contains('\0') {
                    return Err("text parameters may not contain NUL characters".into());
                }
                out.put_slice(s.as_bytes())
            }
            Value::Blob(b) => {
                if *ty != Type::BYTEA {
                    return Err(format!("a blob binds only to a bytea parameter, not {ty}").into());
                }
                out.put_slice(b)
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        match self.0 {
            Value::Blob(_) => Format::Binary,
            _ => Format::Text,
        }
    }

    to_sql_checked!();
}

fn real_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "Infinity".into()
    } else if f == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        // Debug is the shortest text that reads back as the same f64.
        format!("{f:?}")
    }
}

/// One result cell, decoded from the binary format.
pub(crate) struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        decode(ty, raw).map(Cell)
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    let text = |raw: &[u8]| -> Result<Value, BoxError> {
        Ok(Value::Text(std::str::from_utf8(raw)?.to_string()))
    };
    Ok(match *ty {
        Type::BOOL => Value::Integer(bool::from_sql(ty, raw)? as i64),
        Type::INT2 => Value::Integer(i16::from_sql(ty, raw)? as i64),
        Type::INT4 => Value::Integer(i32::from_sql(ty, raw)? as i64),
        Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
        Type::OID => Value::Integer(u32::from_sql(ty, raw)? as i64),
        Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)? as f64),
        Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
        Type::BYTEA => Value::Blob(raw.to_vec()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            text(raw)?
        }
        Type::XML => text(raw)?,
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => text(rest)?,
            _ => return Err("unsupported jsonb version".into()),
        },
        Type::NUMERIC => Value::Text(numeric_text(raw)?),
        Type::UUID => Value::Text(uuid_text(raw)?),
        Type::DATE => Value::Text(date_text(i32::from_sql(ty, raw)?)),
        Type::TIMESTAMP => Value::Text(timestamp_text(i64::from_sql(ty, raw)?, false)),
        Type::TIMESTAMPTZ => Value::Text(timestamp_text(i64::from_sql(ty, raw)?, true)),
        Type::TIME => Value::Text(time_text(i64::from_sql(ty, raw)?)),
        _ if matches!(ty.kind(), Kind::Enum(_)) => text(raw)?,
        _ => {
            return Err(format!(
                "type {ty} cannot be returned as a db value; cast the column in SQL (e.g. `col::text`)"
            )
            .into());
        }
    })
}

fn be_i16(raw: &[u8], at: usize) -> Result<i16, BoxError> {
    raw.get(at..at + 2)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated numeric".into())
}

/// The binary `numeric` (base-10000 digits) as decimal text.
pub(crate) fn numeric_text(raw: &[u8]) -> Result<String, BoxError> {
    let ndigits = be_i16(raw, 0)?.max(0) as usize;
    let weight = be_i16(raw, 2)? as i32;
    let sign = be_i16(raw, 4)? as u16;
    let dscale = be_i16(raw, 6)?.max(0) as usize;
    let digits = (0..ndigits)
        .map(|i| be_i16(raw, 8 + 2 * i))
        .collect::<Result<Vec<_>, _>>()?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digit = |i: i32| -> i16 {
        if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    if out == "-0" || (out.starts_with("-0.") && out[1..].bytes().all(|b| b == b'0' || b == b'.')) {
        out.remove(0);
    }
    Ok(out)
}

fn uuid_text(raw: &[u8]) -> Result<String, BoxError> {
    let bytes: [u8; 16] = raw.try_into().map_err(|_| "a uuid is 16 bytes")?;
    Ok(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
}

/// Days and microseconds count from 2000-01-01 in PostgreSQL.
const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120;

fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => chrono::NaiveDate::from_num_days_from_ce_opt(PG_EPOCH_DAYS_FROM_CE + days)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| format!("{days} days from 2000-01-01")),
    }
}

fn timestamp_text(micros: i64, utc: bool) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("2000-01-01 is a date");
    match epoch.checked_add_signed(chrono::TimeDelta::microseconds(micros)) {
        Some(t) if utc => t
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        None => format!("{micros} microseconds from 2000-01-01"),
    }
}

fn time_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        base
    } else {
        format!("{base}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in [ndigits, weight, sign as i16, dscale] {
            v.extend_from_slice(&n.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode_to_decimal_text() {
        // 123.4500
        assert_eq!(
            numeric_text(&numeric(2, 0, 0, 4, &[123, 4500])).unwrap(),
            "123.4500"
        );
        // -0.001
        assert_eq!(
            numeric_text(&numeric(1, -1, 0x4000, 3, &[10])).unwrap(),
            "-0.001"
        );
        // 10000
        assert_eq!(numeric_text(&numeric(1, 1, 0, 0, &[1])).unwrap(), "10000");
        // 0
        assert_eq!(numeric_text(&numeric(0, 0, 0, 0, &[])).unwrap(), "0");
        // 0.00000001 (weight -2)
        assert_eq!(
            numeric_text(&numeric(1, -2, 0, 8, &[1])).unwrap(),
            "0.00000001"
        );
        assert_eq!(numeric_text(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
    }

    #[test]
    fn times_decode_to_iso_text() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(timestamp_text(1_500_000, true), "2000-01-01T00:00:01.500Z");
        assert_eq!(timestamp_text(0, false), "2000-01-01T00:00:00");
        assert_eq!(time_text(3_723_000_000 + 250_000), "01:02:03.25");
    }

    #[test]
    fn reals_encode_as_text_that_reads_back() {
        assert_eq!(real_text(1.5), "1.5");
        assert_eq!(real_text(1e300), "1e300");
        assert_eq!(real_text(f64::NEG_INFINITY), "-Infinity");
    }
}
