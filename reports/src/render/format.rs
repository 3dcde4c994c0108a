//! Number formatters shared by the HTML report and the text summary, so a figure reads the same
//! on the page and in the terminal: one precision, one unit and one "missing" mark per quantity.
//! The HTML templates reach them through the filters of `render::html`.

use std::collections::BTreeMap;

use crate::plot::style;
use crate::prepare::Quantity;

/// Shown for a value that does not exist: nothing measured, or no base to compare against.
pub const MISSING: &str = "–";

/// `value` through `format`, or `MISSING`.
pub fn or_missing<T>(value: Option<T>, format: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| MISSING.to_string(), format)
}

/// Microseconds as milliseconds with three significant digits: 0.747, 1.48, 45.0, 1000.
pub fn ms(us: f64) -> String {
    let v = us / 1000.0;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A span of time with its unit: `2.35 s`, or milliseconds below one second (`4.00 ms`).
pub fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{} ms", ms(s * 1e6))
    }
}

/// A time given in microseconds, written as `seconds` writes it: a frame's age, a viewer's
/// startup delay (`1.20 s`, `250 ms`).
pub fn age_us(us: f64) -> String {
    seconds(us / 1e6)
}

/// A measured window or a warm-up in seconds, to a tenth: `10.0`.
pub fn window_s(s: f64) -> String {
    format!("{s:.1}")
}

/// A count as plain digits, 1234567: the terminal's summary is grepped and pasted, and a
/// separator would be one more thing to strip.
pub fn count(n: u64) -> String {
    n.to_string()
}

/// A measured amount shown whole, like a count: bytes per second, socket-seconds.
pub fn whole(v: f64) -> String {
    count(v.round().max(0.0) as u64)
}

/// A time-averaged count: one decimal while small, whole when large.
pub fn mean_count(v: f64) -> String {
    if v.abs() >= 1000.0 {
        whole(v)
    } else {
        format!("{v:.1}")
    }
}

/// A rate per second (ops/s, Mbit/s, connections opened/s): whole from 100 up, else one
/// decimal.
pub fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Bytes in the largest binary unit they fill: 248 B, 1.50 KiB, 1.90 MiB, 2.00 GiB.
pub fn bytes(b: f64) -> String {
    const UNITS: [(f64, &str); 3] = [
        ((1u64 << 30) as f64, "GiB"),
        ((1u64 << 20) as f64, "MiB"),
        (1024.0, "KiB"),
    ];
    match UNITS.iter().find(|(divisor, _)| b.abs() >= *divisor) {
        Some((divisor, unit)) => format!("{:.2} {unit}", b / divisor),
        None => format!("{b:.0} B"),
    }
}

/// A fraction as a percentage with at least two significant digits: 100%, 45%, 7.5%, 0.30%.
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    let decimals = if p == 0.0 || p.abs() >= 10.0 {
        0
    } else if p.abs() >= 1.0 {
        1
    } else {
        2
    };
    format!("{p:.decimals$}%")
}

/// A ratio to a reference: `×1.02` (a reply against its line's time, measured against
/// predicted, a run against the baseline).
pub fn times(ratio: f64) -> String {
    format!("×{ratio:.2}")
}

/// A line rate in bit/s as lines are sold: 56k, 28.8k, 33.6k, 1.5M.
pub fn line_rate(bps: f64) -> String {
    style::si(bps)
}

/// A configured amount in the short form of the charts' axes, as the scenario would say it:
/// 32 clients, 2k users, a 50 ms delay (where a measured 50 ms would read 50.0).
pub fn compact(v: f64) -> String {
    style::si(v)
}

/// CPU time in microseconds (per op, per packet), to a tenth: 76.8.
pub fn cpu_us(us: f64) -> String {
    format!("{us:.1}")
}

/// Frames per second, to a hundredth: a modem viewer's 1.04 beside the source's 4.00.
pub fn fps(v: f64) -> String {
    format!("{v:.2}")
}

/// Events per viewer-minute (freezes), to a hundredth: 0.12.
pub fn per_minute(v: f64) -> String {
    format!("{v:.2}")
}

/// A rate per thousand operations (errors), to a thousandth: 0.125.
pub fn per_kilo_ops(v: f64) -> String {
    format!("{v:.3}")
}

/// Errors by kind, `reset 1, timeout 3`; empty when there were none.
pub fn errors_by_kind(errors: &BTreeMap<String, u64>) -> String {
    errors
        .iter()
        .map(|(kind, n)| format!("{kind} {}", count(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A comparison metric's value in its own display unit (see [`quantity_unit`]).
pub fn quantity(quantity: Quantity, value: f64) -> String {
    match quantity {
        Quantity::OpsPerS | Quantity::MbitPerS => rate(value),
        Quantity::LatencyUs => ms(value),
        Quantity::Count => whole(value),
        Quantity::PerKiloOps => per_kilo_ops(value),
        Quantity::CpuUsPerOp => cpu_us(value),
        Quantity::Bytes => bytes(value),
        Quantity::FramesPerS => fps(value),
        Quantity::Share => percent(value),
    }
}

/// The display unit [`quantity`] writes a metric's value in.
pub fn quantity_unit(quantity: Quantity) -> &'static str {
    match quantity {
        Quantity::OpsPerS => "ops/s",
        Quantity::MbitPerS => "Mbit/s",
        Quantity::LatencyUs => "ms",
        Quantity::Count => "",
        Quantity::PerKiloOps => "per 1000 ops",
        Quantity::CpuUsPerOp => "µs/op",
        Quantity::Bytes => "bytes",
        Quantity::FramesPerS => "fps",
        Quantity::Share => "",
    }
}

/// A signed relative change: +10.2%, -3.1%, +0.00%.
pub fn change(fraction: f64) -> String {
    let text = percent(fraction);
    if fraction >= 0.0 {
        format!("+{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plain_digits() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1_234_567), "1234567");
        assert_eq!(whole(1_499.6), "1500");
    }

    #[test]
    fn milliseconds_keep_three_digits() {
        assert_eq!(ms(747.0), "0.747");
        assert_eq!(ms(1478.0), "1.48");
        assert_eq!(ms(45_000.0), "45.0");
        assert_eq!(ms(1_000_000.0), "1000");
        assert_eq!(seconds(0.004), "4.00 ms");
        assert_eq!(seconds(100.0), "100.00 s");
    }

    #[test]
    fn line_rates_read_as_sold() {
        assert_eq!(line_rate(56_000.0), "56k");
        assert_eq!(line_rate(28_800.0), "28.8k");
        assert_eq!(line_rate(53_333.0), "53.3k");
        assert_eq!(line_rate(1_500_000.0), "1.5M");
        assert_eq!(line_rate(300.0), "300");
    }

    #[test]
    fn percentages_keep_two_significant_digits() {
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.75), "75%");
        assert_eq!(percent(0.075), "7.5%");
        assert_eq!(percent(0.003), "0.30%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn bytes_take_the_largest_unit_they_fill() {
        assert_eq!(bytes(248.0), "248 B");
        assert_eq!(bytes(1536.0), "1.50 KiB");
        assert_eq!(bytes(1_996_288.0), "1.90 MiB");
        assert_eq!(bytes((12u64 << 20) as f64), "12.00 MiB");
    }

    #[test]
    fn missing_values_say_so() {
        assert_eq!(or_missing(None::<f64>, times), MISSING);
        assert_eq!(or_missing(Some(1.019), times), "×1.02");
        assert_eq!(rate(12_000.4), "12000");
        assert_eq!(rate(31.84), "31.8");
        assert_eq!(mean_count(1_900.0), "1900");
    }

    #[test]
    fn errors_are_listed_by_kind() {
        let errors = BTreeMap::from([("timeout".to_string(), 3), ("reset".to_string(), 1_200)]);
        assert_eq!(errors_by_kind(&errors), "reset 1200, timeout 3");
        assert_eq!(errors_by_kind(&BTreeMap::new()), "");
    }
}
