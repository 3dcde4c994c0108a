//! How scenario keys read quantities: serde adapters over `afterburner::units`, the one parser of
//! durations, counts and bit rates that the command lines use too, plus the range checks that run
//! inside deserialization so the `toml` crate reports them with the file's line and column.

use std::time::Duration;

use afterburner::units::{format_duration, parse_bit_rate, parse_count, parse_duration};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A number as written in TOML, or text with a unit or prefix (`"2k"`, `"53.3k"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Integer(i64),
    Float(f64),
    Text(String),
}

/// Durations as text in TOML and JSON: `"500ms"`, `"10s"`, `"2m"`.
pub mod duration_text {
    use super::*;

    /// Writes the duration the way it is read back.
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    /// Reads `"500ms"`, `"10s"`, `"2m"`; a bare number is refused with the text to write.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let number = match NumberOrText::deserialize(d)? {
            NumberOrText::Text(text) => return parse_duration(&text).map_err(D::Error::custom),
            NumberOrText::Integer(n) => n.to_string(),
            NumberOrText::Float(n) => n.to_string(),
        };
        Err(D::Error::custom(format!(
            "`{number}` is not a duration: write it as text with its unit, like \"{number}s\" or \"{number}ms\""
        )))
    }
}

pub(crate) fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_text::deserialize(d).map(Some)
}

/// Bits per second: a number, or text like `"53.3k"` or `"28.8kbit"`.
pub(super) fn bit_rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = match NumberOrText::deserialize(d)? {
        NumberOrText::Integer(n) => n as f64,
        NumberOrText::Float(n) => n,
        NumberOrText::Text(text) => parse_bit_rate(&text).map_err(D::Error::custom)?,
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(D::Error::custom("a bit rate must be a positive number"));
    }
    Ok(value)
}

pub(super) fn some_bit_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    bit_rate(d).map(Some)
}

/// A positive number, or text with an SI prefix (`"1.5k"`): rates.
pub(super) fn positive_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = match NumberOrText::deserialize(d)? {
        NumberOrText::Integer(n) => n as f64,
        NumberOrText::Float(n) => n,
        NumberOrText::Text(text) => parse_count(&text).map_err(D::Error::custom)?,
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(D::Error::custom("must be a positive number"));
    }
    Ok(value)
}

pub(super) fn some_positive_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    positive_f64(d).map(Some)
}

/// A whole number of at least 1, or text with an SI prefix (`"2k"`): client counts, points.
pub(super) fn positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let value = match NumberOrText::deserialize(d)? {
        NumberOrText::Integer(n) => n as f64,
        NumberOrText::Float(n) => n,
        NumberOrText::Text(text) => parse_count(&text).map_err(D::Error::custom)?,
    };
    if value.fract() != 0.0 {
        return Err(D::Error::custom(format!("{value} is not a whole number")));
    }
    if !(1.0..=f64::from(u32::MAX)).contains(&value) {
        return Err(D::Error::custom("must be at least 1"));
    }
    Ok(value as u32)
}

pub(super) fn some_positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    positive_u32(d).map(Some)
}

pub(super) fn positive_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    positive_u32(d).map(|n| n as usize)
}
