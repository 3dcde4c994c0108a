//! Quantities written as text, parsed and printed in one place for every command line and
//! scenario file of the workspace (afterburner's flags, the loadgen's flags and scenarios):
//! durations (`humantime`), byte sizes in powers of 1024 and counts and bit rates with SI
//! prefixes (`parse-size`). Each error names the text it could not read and shows a valid form.

use std::time::Duration;

/// Text that is not the quantity asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not {expected}")]
pub struct UnitError {
    /// The text as given.
    pub text: String,
    /// What was asked for, with examples: "a duration like 500ms or 10s".
    pub expected: &'static str,
}

impl UnitError {
    fn new(text: &str, expected: &'static str) -> UnitError {
        UnitError {
            text: text.to_string(),
            expected,
        }
    }
}

const DURATION: &str = "a duration like 500ms, 10s or 2m";
const BYTES: &str = "a size like 8192, 8KiB or 10MiB (K, M, G are powers of 1024)";
const COUNT: &str = "a positive number like 500, 2k or 1.5M";
const BIT_RATE: &str = "a bit rate like 53300, 53.3k, 28.8kbit or 1.5M (bits per second)";

/// `250ms`, `10s`, `2m`, `1h30m`: anything `humantime` reads.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    humantime::parse_duration(text.trim()).map_err(|_| UnitError::new(text, DURATION))
}

/// A duration the way [`parse_duration`] reads it back: `1m 30s`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// `8192`, `8K`, `8KiB`, `10MiB`, `1G`: bytes, with K, M, G, T (with or without `iB`/`B`) as
/// powers of 1024, as server configuration files and `ulimit` mean them.
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(text.trim())
        .map_err(|_| UnitError::new(text, BYTES))
}

/// `2000`, `2k`, `1.5M`, `0.5`: a positive count or rate with an optional SI prefix (k = 1000,
/// M = 10^6, G = 10^9). Plain numbers keep their fraction (an open-loop rate of 0.5/s).
pub fn parse_count(text: &str) -> Result<f64, UnitError> {
    let trimmed = text.trim();
    let value = match trimmed.parse::<f64>() {
        Ok(plain) => plain,
        Err(_) => parse_size::Config::new()
            .with_decimal()
            .parse_size(trimmed)
            .map_err(|_| UnitError::new(text, COUNT))? as f64,
    };
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(UnitError::new(text, COUNT))
    }
}

/// A line rate in bits per second as lines are sold: `53300`, `53.3k`, `28.8kbit`, `56kbps`,
/// `1.5M`, `1.5Mbit/s`; the `bit`, `bps` or `bit/s` unit is optional.
pub fn parse_bit_rate(text: &str) -> Result<f64, UnitError> {
    let lower = text.trim().to_ascii_lowercase();
    let number = ["bit/s", "bps", "bit"]
        .iter()
        .find_map(|unit| lower.strip_suffix(unit))
        .unwrap_or(&lower);
    parse_count(number).map_err(|_| UnitError::new(text, BIT_RATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_humantime_and_errors_name_the_text() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        let error = parse_duration("3").unwrap_err().to_string();
        assert_eq!(error, "`3` is not a duration like 500ms, 10s or 2m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(
            parse_duration(&format_duration(Duration::from_millis(1500))),
            Ok(Duration::from_millis(1500))
        );
    }

    #[test]
    fn sizes_use_powers_of_1024() {
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("8KiB"), Ok(8192));
        assert_eq!(parse_bytes("8k"), Ok(8192));
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5 parsecs")
            .unwrap_err()
            .to_string()
            .contains("parsecs"));
    }

    #[test]
    fn counts_take_si_prefixes_and_must_be_positive() {
        assert_eq!(parse_count("2000"), Ok(2000.0));
        assert_eq!(parse_count("2k"), Ok(2000.0));
        assert_eq!(parse_count("1.5M"), Ok(1_500_000.0));
        assert_eq!(parse_count("0.5"), Ok(0.5));
        for bad in ["fast", "0", "-3", "", "inf", "NaN"] {
            assert!(parse_count(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bit_rates_take_prefixes_and_an_optional_unit() {
        assert_eq!(parse_bit_rate("53300"), Ok(53_300.0));
        assert_eq!(parse_bit_rate("53.3k"), Ok(53_300.0));
        assert_eq!(parse_bit_rate("28.8kbit"), Ok(28_800.0));
        assert_eq!(parse_bit_rate("56kbps"), Ok(56_000.0));
        assert_eq!(parse_bit_rate("1.5Mbit/s"), Ok(1_500_000.0));
        let error = parse_bit_rate("fast").unwrap_err().to_string();
        assert!(error.contains("`fast` is not a bit rate"), "{error}");
    }
}
