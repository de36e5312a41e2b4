//! Charts of a `tgw-perf ndr` report (its JSON, so a saved report can be
//! drawn again): throughput by frame size per profile, each search's
//! trials, and the latency distribution of each profile and size. PNG
//! through plotters' bitmap backend; text through ab_glyph with DejaVu
//! Sans read from the system (Debian's fonts-dejavu-core), so nothing
//! links fontconfig or freetype.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::FontStyle;
use serde_json::Value;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SIZE: (u32, u32) = (900, 520);

/// Draws every chart of `report` into `dir`; returns their paths.
pub fn draw(report: &Value, dir: &Path) -> Result<Vec<PathBuf>, String> {
    load_font()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let results = report["results"].as_array().cloned().unwrap_or_default();
    let mut written = Vec::new();
    for profile in unique(&results, "profile") {
        let of_profile: Vec<&Value> = results.iter().filter(|r| r["profile"] == profile).collect();
        let path = dir.join(format!("throughput-{profile}.png"));
        throughput(&of_profile, &profile, report, &path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
        for size in unique(&results, "size") {
            let runs: Vec<&Value> = of_profile
                .iter()
                .copied()
                .filter(|r| r["size"] == size)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let path = dir.join(format!("search-{profile}-{size}.png"));
            search(&runs, &format!("{profile}, {size}"), report, &path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            written.push(path);
            if runs.iter().any(|r| r["latency"].is_object()) {
                let path = dir.join(format!("latency-{profile}-{size}.png"));
                latency(&runs, &format!("{profile}, {size}"), report, &path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                written.push(path);
            }
        }
    }
    Ok(written)
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Registers the font once; plotters keeps it for the process.
fn load_font() -> Result<(), String> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT)
                .map_err(|e| format!("{FONT}: {e} (apt-get install fonts-dejavu-core)"))?;
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes.leak())
                .map_err(|_| format!("{FONT}: not a font plotters reads"))
        })
        .clone()
}

/// The distinct values of `key` over `results`, in order of appearance.
fn unique(results: &[Value], key: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in results {
        if let Some(v) = r[key].as_str() {
            if !seen.iter().any(|s| s == v) {
                seen.push(v.to_owned());
            }
        }
    }
    seen
}

fn colour(device: &str) -> RGBColor {
    if device == "tgw" {
        RGBColor(214, 39, 40)
    } else {
        RGBColor(31, 119, 180)
    }
}

/// What the threshold is called in titles.
fn threshold(report: &Value) -> String {
    match report["loss_threshold_percent"].as_f64() {
        Some(l) if l > 0.0 => format!("PDR ({l}% loss)"),
        _ => "NDR (no loss)".into(),
    }
}

/// Throughput (Mpps) by frame size: a bar per device side by side, and
/// the line rate as a grey mark across each group.
fn throughput(runs: &[&Value], profile: &str, report: &Value, path: &Path) -> Drawn {
    let owned: Vec<Value> = runs.iter().map(|r| (*r).clone()).collect();
    let sizes = unique(&owned, "size");
    let devices = unique(&owned, "device");
    let top = runs
        .iter()
        .filter_map(|r| r["line_rate_pps"].as_f64())
        .chain(runs.iter().filter_map(|r| r["ndr_pps"].as_f64()))
        .fold(0.0f64, f64::max)
        / 1e6;
    let n = sizes.len() as f64;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{profile}: {} by frame size", threshold(report)),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..(top * 1.45).max(1e-3))?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("frame size, bytes (imix: 7:4:1 of 64/570/1518)")
        .y_desc("Mpps")
        .x_labels(sizes.len() + 1)
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                sizes.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .disable_x_mesh()
        .draw()?;
    let at = |size: &str| sizes.iter().position(|s| s == size).unwrap_or(0) as f64;
    let width = 0.8 / devices.len().max(1) as f64;
    for (d, device) in devices.iter().enumerate() {
        let c = colour(device);
        let bars: Vec<(f64, f64)> = runs
            .iter()
            .filter(|r| r["device"] == device.as_str())
            .filter_map(|r| {
                let x = at(r["size"].as_str()?) - 0.4 + d as f64 * width;
                Some((x, r["ndr_mpps"].as_f64()?))
            })
            .collect();
        chart
            .draw_series(
                bars.iter()
                    .map(|&(x, y)| Rectangle::new([(x, 0.0), (x + width * 0.95, y)], c.filled())),
            )?
            .label(device.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], c.filled()));
        chart.draw_series(bars.iter().map(|&(x, y)| {
            Text::new(
                format!("{y:.2}"),
                (x + width * 0.1, y + top * 0.05),
                ("sans-serif", 13).into_font().color(&c),
            )
        }))?;
    }
    let grey = RGBColor(110, 110, 110);
    let marks: Vec<(f64, f64)> = sizes
        .iter()
        .filter_map(|s| {
            let rate = runs.iter().find(|r| r["size"] == s.as_str())?["line_rate_pps"].as_f64()?;
            Some((at(s), rate / 1e6))
        })
        .collect();
    chart
        .draw_series(marks.iter().map(|&(x, y)| {
            PathElement::new(vec![(x - 0.45, y), (x + 0.45, y)], grey.stroke_width(3))
        }))?
        .label("line rate (the generator's max)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], grey.stroke_width(3)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Each device's trials in order: offered rate above (filled: passed,
/// hollow: lost frames), loss below.
fn search(runs: &[&Value], title: &str, report: &Value, path: &Path) -> Drawn {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("{title}: the {} search, trial by trial", threshold(report)),
        ("sans-serif", 22),
    )?;
    let (upper, lower) = root.split_vertically(300);
    let steps = |r: &Value| r["steps"].as_array().cloned().unwrap_or_default();
    let trials = runs
        .iter()
        .map(|r| steps(r).len())
        .max()
        .unwrap_or(1)
        .max(1) as i32;
    let top = runs
        .iter()
        .filter_map(|r| r["line_rate_pps"].as_f64())
        .fold(0.0f64, f64::max)
        / 1e6;

    let mut rate = ChartBuilder::on(&upper)
        .margin(10)
        .x_label_area_size(10)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..trials as f64 + 1.0, 0.0..top * 1.08)?;
    rate.configure_mesh()
        .light_line_style(TRANSPARENT)
        .y_desc("offered Mpps")
        .x_label_formatter(&|_| String::new())
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    // Loss on a log axis; no loss at all is drawn on its floor.
    const FLOOR: f64 = 1e-5;
    let mut loss = ChartBuilder::on(&lower)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..trials as f64 + 1.0, (FLOOR..100.0).log_scale())?;
    loss.configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("trial (repeats of slowed trials included); filled: passed, hollow: lost more")
        .y_desc("loss %, none at bottom")
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| format!("{v:e}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    for (d, r) in runs.iter().enumerate() {
        let device = r["device"].as_str().unwrap_or("?").to_owned();
        let c = colour(&device);
        let steps = steps(r);
        // Side by side, so that two devices at the same rate both show.
        let offset = (d as f64 - (runs.len() as f64 - 1.0) / 2.0) * 0.12;
        let pts: Vec<(f64, f64, f64, bool)> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    i as f64 + 1.0 + offset,
                    s["rate_pps"].as_f64().unwrap_or(0.0) / 1e6,
                    (s["loss_fraction"].as_f64().unwrap_or(0.0) * 100.0).max(FLOOR),
                    s["pass"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        rate.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            c.stroke_width(1),
        ))?
        .label(format!(
            "{device}: {:.3} Mpps",
            r["ndr_mpps"].as_f64().unwrap_or(0.0)
        ))
        .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
        rate.draw_series(pts.iter().map(|p| {
            let style = if p.3 { c.filled() } else { c.stroke_width(2) };
            Circle::new((p.0, p.1), 6, style)
        }))?;
        loss.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.2)),
            c.stroke_width(1),
        ))?;
        loss.draw_series(pts.iter().map(|p| {
            let style = if p.3 { c.filled() } else { c.stroke_width(2) };
            Circle::new((p.0, p.2), 6, style)
        }))?;
    }
    rate.configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The latency distribution of each device, the histogram's buckets
/// merged to eight per power of two, on a log axis of microseconds.
fn latency(runs: &[&Value], title: &str, report: &Value, path: &Path) -> Drawn {
    // Per device: its name, its (µs, % of frames) points, its legend.
    type Series = (String, Vec<(f64, f64)>, String);
    let series: Vec<Series> = runs
        .iter()
        .filter(|r| r["latency"].is_object())
        .map(|r| {
            let lat = &r["latency"]["latency"];
            let device = r["device"].as_str().unwrap_or("?").to_owned();
            let us = |k: &str| {
                lat[k]
                    .as_f64()
                    .map_or("-".into(), |n| format!("{:.1}", n / 1e3))
            };
            let label = format!(
                "{device} at {:.2} Mpps: p50 {} p99 {} p99.9 {} max {} µs",
                r["latency"]["rate_pps"].as_f64().unwrap_or(0.0) / 1e6,
                us("p50_ns"),
                us("p99_ns"),
                us("p999_ns"),
                us("max_ns"),
            );
            (device, octave_eighths(lat), label)
        })
        .collect();
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold((f64::MAX, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (lo, hi) = if hi > 0.0 {
        (lo / 1.5, hi * 1.5)
    } else {
        (0.1, 10.0)
    };
    let top = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let at = report["latency_at"].as_f64().unwrap_or(0.0) * 100.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title}: one-way latency at {at:.0}% of each device's rate"),
            ("sans-serif", 22),
        )
        .margin(12)
        .margin_right(40)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..top * 1.25)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("latency, µs (log)")
        .y_desc("% of frames")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .x_label_formatter(&|v| {
            if *v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .draw()?;
    for (device, points, label) in series {
        let c = colour(&device);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The histogram's buckets (JSON: [low ns, width ns, count]) summed into
/// eighths of a power of two: (middle in µs, % of frames).
fn octave_eighths(lat: &Value) -> Vec<(f64, f64)> {
    let total = lat["count"].as_f64().unwrap_or(0.0).max(1.0);
    let mut bins: std::collections::BTreeMap<i64, f64> = Default::default();
    for b in lat["buckets"].as_array().into_iter().flatten() {
        let (Some(low), Some(width), Some(c)) = (b[0].as_f64(), b[1].as_f64(), b[2].as_f64())
        else {
            continue;
        };
        let mid = (low + width / 2.0).max(1.0);
        *bins.entry((mid.log2() * 8.0).floor() as i64).or_default() += c;
    }
    bins.into_iter()
        .map(|(k, c)| (2f64.powf((k as f64 + 0.5) / 8.0) / 1e3, c / total * 100.0))
        .collect()
}
