//! What every chart shares: size, fonts, the colour-blind-safe palette (Okabe & Ito, 2008), and
//! how numbers and latencies are written on axes. One place, so all charts of a page look alike.

use plotters::style::{RGBColor, ShapeStyle};

use crate::prepare::Hue;

/// Chart size in SVG pixels. The page is laid out for 1200 px; the SVG scales down with the
/// window (CSS `width: 100%`), never up, so text stays at least this readable.
pub const WIDTH: u32 = 1120;
pub const HEIGHT: u32 = 420;
/// The grouped bars: one small panel per metric side by side.
pub const BARS_HEIGHT: u32 = 360;

pub const FONT: &str = "sans-serif";
/// Font sizes as plotters takes them: its SVG backend writes `size / 1.24` px, so 20 is 16 px.
pub const CAPTION_PX: u32 = 26;
pub const LABEL_PX: u32 = 20;
pub const AXIS_DESC_PX: u32 = 21;

/// Text and axes: dark grey, never a palette colour, so `mark_series` can tell data from frame.
pub const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub const AXIS: RGBColor = RGBColor(0x44, 0x44, 0x44);
pub const GRID_BOLD: RGBColor = RGBColor(0xD0, 0xD0, 0xD0);
pub const GRID_LIGHT: RGBColor = RGBColor(0xEE, 0xEE, 0xEE);
/// The warm-up region's shading, and the legend's background.
pub const WARMUP: RGBColor = RGBColor(0xE6, 0xE6, 0xE6);
pub const BACKGROUND: RGBColor = RGBColor(0xFF, 0xFF, 0xFF);

/// The total: black, as in Okabe & Ito's palette, but pure #000000 is kept for data only.
pub const TOTAL: RGBColor = RGBColor(0x00, 0x00, 0x00);

/// Okabe & Ito's colours, yellow last (weak on white), black apart as `TOTAL`.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0xF0, 0xE4, 0x42), // yellow
];

pub const THIN_PX: u32 = 2;
pub const THICK_PX: u32 = 4;

pub fn colour(hue: Hue) -> RGBColor {
    match hue {
        Hue::Total => TOTAL,
        Hue::Index(n) => PALETTE[n % PALETTE.len()],
    }
}

pub fn stroke(hue: Hue, thick: bool) -> ShapeStyle {
    let width = if thick { THICK_PX } else { THIN_PX };
    ShapeStyle::from(colour(hue)).stroke_width(width)
}

/// Every colour data is drawn in, as the SVG backend writes it (`#RRGGBB`).
fn series_colours() -> impl Iterator<Item = String> {
    std::iter::once(TOTAL)
        .chain(PALETTE)
        .map(|c| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2))
}

/// Adds `class="series"` to every shape of `svg` drawn in a data colour, so data can be told
/// from axes, grid and text (tests count them; a reader's devtools can find them). Legend
/// swatches are marked too: they exist only beside a drawn series.
pub fn mark_series(svg: &str) -> String {
    let colours: Vec<String> = series_colours().collect();
    let mut out = String::with_capacity(svg.len() + 1024);
    for line in svg.split_inclusive('\n') {
        let shape = ["<polyline ", "<polygon ", "<rect ", "<circle "]
            .iter()
            .find(|tag| line.starts_with(**tag));
        let data = shape.is_some()
            && colours.iter().any(|c| {
                line.contains(&format!("stroke=\"{c}\"")) || line.contains(&format!("fill=\"{c}\""))
            });
        match shape {
            Some(tag) if data => {
                out.push_str(tag);
                out.push_str("class=\"series\" ");
                out.push_str(&line[tag.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// `12 300` as `12.3k`: axis labels stay short at any magnitude.
pub fn si(value: f64) -> String {
    let a = value.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (value / 1e9, "G")
    } else if a >= 1e6 {
        (value / 1e6, "M")
    } else if a >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    // Three significant digits, so 0.005 and 0.002 on a log axis stay apart.
    let magnitude = if scaled == 0.0 {
        0
    } else {
        scaled.abs().log10().floor() as i32
    };
    let decimals = (2 - magnitude).clamp(0, 9) as usize;
    let text = format!("{scaled:.decimals$}");
    // 1.50k -> 1.5k
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{suffix}")
}

/// The unit latencies up to `max_us` read best in: (divisor from µs, unit name).
pub fn latency_unit(max_us: f64) -> (f64, &'static str) {
    if max_us >= 2_000_000.0 {
        (1e6, "s")
    } else if max_us >= 2_000.0 {
        (1e3, "ms")
    } else {
        (1.0, "µs")
    }
}

/// The binary unit bytes up to `max_bytes` read best in: (divisor, unit name).
pub fn bytes_unit(max_bytes: f64) -> (f64, &'static str) {
    if max_bytes >= 2.0 * (1u64 << 30) as f64 {
        ((1u64 << 30) as f64, "GiB")
    } else if max_bytes >= 2.0 * (1u64 << 20) as f64 {
        ((1u64 << 20) as f64, "MiB")
    } else if max_bytes >= 2.0 * 1024.0 {
        (1024.0, "KiB")
    } else {
        (1.0, "B")
    }
}

/// The unit a time axis of `duration_s` reads best in: (divisor from seconds, unit name).
pub fn time_unit(duration_s: f64) -> (f64, &'static str) {
    if duration_s > 7200.0 {
        (3600.0, "h")
    } else if duration_s > 1200.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_labels_are_short() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(1500.0), "1.5k");
        assert_eq!(si(20_057.3), "20.1k");
        assert_eq!(si(15_000.0), "15k");
        assert_eq!(si(2_500_000.0), "2.5M");
        assert_eq!(si(0.25), "0.25");
        assert_eq!(si(0.005), "0.005");
        assert_eq!(si(123_456.0), "123k");
    }

    #[test]
    fn only_data_colours_are_marked() {
        let svg = "<svg>\n<rect x=\"0\" fill=\"#FFFFFF\" stroke=\"none\"/>\n\
                   <polyline fill=\"none\" stroke=\"#0072B2\" points=\"1,2 3,4 \"/>\n\
                   <polyline fill=\"none\" stroke=\"#444444\" points=\"1,2 3,4 \"/>\n</svg>\n";
        let marked = mark_series(svg);
        assert_eq!(marked.matches("class=\"series\"").count(), 1);
        assert!(marked.contains("<polyline class=\"series\" fill=\"none\" stroke=\"#0072B2\""));
    }
}
