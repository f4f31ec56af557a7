//! Latency percentile spectrum plots (SVG): HdrHistogram's classic "latency
//! by percentile distribution".
//!
//! The x axis is `log10(1 / (1 - p))`, so every decade to the right is one
//! more nine (90%, 99%, 99.9%, ...). A linear percentile axis would squeeze
//! the tail, where queueing, fsync and scheduling stalls live, into the last
//! pixel; this one gives each nine the same width as the median.
//!
//! Only plotters' SVG backend is compiled in. It writes `<text>` elements and
//! leaves fonts to the viewer, so no font files (and no `ttf` feature) are
//! needed on the benchmark host.

use std::path::Path;

use anyhow::{bail, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, KeyPointWeight};
use plotters::prelude::*;

use crate::report::{Report, SpectrumPoint};
use crate::timeline::Sample;

/// One line of the plot.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// Shown in the legend.
    pub label: String,
    /// In any order of percentile; plotted sorted as given.
    pub points: &'a [SpectrumPoint],
}

const SIZE_PX: (u32, u32) = (1024, 640);

/// The axis never goes past 99.9999999%. Beyond that `1 - p/100` is within a
/// few ulps of zero in f64 and the position would be noise; no run of ours
/// records 10^9 samples in one histogram anyway.
const DECADES_MAX: u32 = 9;

/// Positions closer than this to a whole decade count as on it: 99.999% comes
/// out of f64 as 4.999999999, and must not open a sixth, empty decade.
const DECADE_SNAP: f64 = 1e-6;

/// Headroom above the highest latency so the top of the line is visible.
const Y_HEADROOM: f64 = 1.05;

/// Tableau 10: distinguishable on white and for common colour blindness.
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes an SVG latency-by-percentile plot of `series` to `path`.
///
/// Points at 100% (infinitely far right on this axis) are drawn at the right
/// edge, which is the first whole decade past every finite point. Points with
/// a non-finite latency or percentile are skipped, and so is a series left
/// with no points: a legend entry without a line would only confuse.
/// Colours are assigned by position in `series`, empty ones included, so the
/// same call shape always gives the same colours.
pub fn write_svg(path: &Path, title: &str, series: &[Series<'_>]) -> Result<()> {
    let lines: Vec<Vec<(f64, f64)>> = series.iter().map(|s| to_xy(s.points)).collect();
    let decades = axis_decades(lines.iter().flatten().map(|&(x, _)| x));
    let right_edge = f64::from(decades);
    let y_max_ms = lines
        .iter()
        .flatten()
        .map(|&(_, y)| y)
        .fold(0.0_f64, f64::max);
    // An all-zero (or empty) plot still needs a non-empty range to draw.
    let y_top_ms = if y_max_ms > 0.0 {
        y_max_ms * Y_HEADROOM
    } else {
        1.0
    };

    let root = SVGBackend::new(path, SIZE_PX).into_drawing_area();
    root.fill(&WHITE).context("drawing plot background")?;
    let x_axis = NinesAxis { decades };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        // Room for the rightmost tick label, which is centred on the edge.
        .margin_right(48)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_axis, 0.0..y_top_ms)
        .context("building plot axes")?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        // Plotters' default is ten minor lines per label on f64 axes: noise.
        .y_max_light_lines(2)
        .x_label_formatter(&|x| decade_label(*x))
        .draw()
        .context("drawing plot grid")?;

    for (i, (s, xy)) in series.iter().zip(&lines).enumerate() {
        if xy.is_empty() {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        let clamped = xy.iter().map(|&(x, y)| (x.min(right_edge), y));
        chart
            .draw_series(LineSeries::new(clamped, color.stroke_width(2)))
            .with_context(|| format!("drawing series {:?}", s.label))?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .context("drawing plot legend")?;
    // SVGBackend only creates the file here (its Drop would swallow the error).
    root.present()
        .with_context(|| format!("writing plot {}", path.display()))?;
    Ok(())
}

/// Plots a report's produce-to-ack and end-to-end spectra to `path`, leaving
/// out a spectrum that is empty (e.g. a produce-only run).
pub fn write_report_svg(path: &Path, report: &Report) -> Result<()> {
    let candidates = [
        ("produce → ack", &report.spectrum.produce_ack),
        ("end to end", &report.spectrum.end_to_end),
    ];
    let series: Vec<Series<'_>> = candidates
        .into_iter()
        .filter(|(_, points)| !points.is_empty())
        .map(|(label, points)| Series {
            label: label.to_string(),
            points,
        })
        .collect();
    if series.is_empty() {
        bail!("the report has no latency spectrum to plot (no message was measured)");
    }
    let title = format!(
        "tidegate latency by percentile, {} ({:.0} s measured)",
        report.started_at, report.measured_s
    );
    write_svg(path, &title, &series)
}

/// Size of the timeline plot: two panels, one above the other.
const TIMELINE_SIZE_PX: (u32, u32) = (1024, 800);

/// Headroom above a timeline panel's highest point: room for the legend in
/// the upper right corner above the lines.
const TIMELINE_HEADROOM: f64 = 1.35;

/// The end of the warmup: a dashed line, apart from the grid's.
const WARMUP_COLOR: RGBColor = RGBColor(148, 103, 189);

/// One line of a timeline panel: `(t_s, value)` points.
struct TimeSeries {
    label: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Plots a report's timeline to `path`: the acknowledged (and sent) rate
/// above, the produce-to-ack p99 (and p50) below, on the same time axis,
/// with a line where the measured window starts.
///
/// Each second is drawn at its middle; a second without acknowledgements
/// has no latency point.
pub fn write_timeline_svg(path: &Path, report: &Report) -> Result<()> {
    let samples = &report.timeline;
    if samples.is_empty() {
        bail!("the report has no timeline to plot (the run sent nothing)");
    }
    let x_max = samples
        .iter()
        .map(|s| s.t_s + s.span_s)
        .fold(1.0_f64, f64::max);
    let warmup_s = report
        .config
        .get("warmup")
        .and_then(|w| w.as_str())
        .and_then(|w| humantime::parse_duration(w).ok())
        .map(|w| w.as_secs_f64())
        .filter(|&w| w > 0.0 && w < x_max);
    let mid = |s: &Sample| s.t_s + s.span_s / 2.0;
    let rates = [
        TimeSeries {
            label: "acknowledged",
            color: COLORS[0],
            points: samples
                .iter()
                .map(|s| (mid(s), s.acked_msgs_per_s))
                .collect(),
        },
        TimeSeries {
            label: "sent",
            color: COLORS[1],
            points: samples
                .iter()
                .map(|s| (mid(s), s.produced_msgs_per_s))
                .collect(),
        },
    ];
    let latency_ms = |of: fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter_map(|s| of(s).map(|us| (mid(s), us / 1000.0)))
            .collect()
    };
    let latencies = [
        TimeSeries {
            label: "produce → ack p99",
            color: COLORS[3],
            points: latency_ms(|s| s.produce_ack_p99_us),
        },
        TimeSeries {
            label: "produce → ack p50",
            color: COLORS[2],
            points: latency_ms(|s| s.produce_ack_p50_us),
        },
    ];

    let root = SVGBackend::new(path, TIMELINE_SIZE_PX).into_drawing_area();
    root.fill(&WHITE).context("drawing plot background")?;
    let title = format!(
        "tidegate over time, {} ({} throttle hints)",
        report.started_at, report.flow.throttle_hints
    );
    let root = root
        .titled(&title, ("sans-serif", 22))
        .context("drawing plot title")?;
    let panels = root.split_evenly((2, 1));
    let panel = |area, y_desc, y_decimals, series| {
        TimePanel {
            x_max,
            warmup_s,
            y_desc,
            y_decimals,
            series,
        }
        .draw(area)
    };
    panel(&panels[0], "messages per second", 0, &rates)?;
    panel(&panels[1], "produce → ack latency (ms)", 1, &latencies)?;
    root.present()
        .with_context(|| format!("writing plot {}", path.display()))?;
    Ok(())
}

/// One panel of the timeline plot.
struct TimePanel<'a> {
    x_max: f64,
    warmup_s: Option<f64>,
    y_desc: &'a str,
    /// Decimals of the y labels.
    y_decimals: usize,
    series: &'a [TimeSeries],
}

impl TimePanel<'_> {
    fn draw(&self, area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<()> {
        let y_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|&(_, y)| y))
            .filter(|y| y.is_finite())
            .fold(0.0_f64, f64::max);
        let y_top = if y_max > 0.0 {
            y_max * TIMELINE_HEADROOM
        } else {
            1.0
        };
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..self.x_max, 0.0..y_top)
            .context("building plot axes")?;
        chart
            .configure_mesh()
            .x_desc("time since sending started (s)")
            .y_desc(self.y_desc)
            .y_max_light_lines(2)
            .x_max_light_lines(2)
            .y_label_formatter(&|y| format!("{y:.*}", self.y_decimals))
            .draw()
            .context("drawing plot grid")?;
        if let Some(warmup_s) = self.warmup_s {
            chart
                .draw_series(DashedLineSeries::new(
                    [(warmup_s, 0.0), (warmup_s, y_top)],
                    8,
                    6,
                    WARMUP_COLOR.stroke_width(2),
                ))
                .context("drawing the end of the warmup")?
                .label("warmup ends, measuring starts")
                .legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], WARMUP_COLOR.stroke_width(2))
                });
        }
        for s in self.series {
            let color = s.color;
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .with_context(|| format!("drawing series {:?}", s.label))?
                .label(s.label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .with_context(|| format!("drawing points of {:?}", s.label))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .context("drawing plot legend")?;
        Ok(())
    }
}

/// The x axis, in decades of nines (`0.0..decades`).
///
/// Plotters' own `(0.0..d).with_key_points(..)` would give the ticks, but it
/// keeps `f64`'s `NoDefaultFormatting`, for which plotters 0.3.7 provides no
/// label formatter, so `configure_mesh()` does not compile on it. This axis is
/// linear like `f64`'s and places bold ticks on whole decades and light grid
/// lines inside them.
struct NinesAxis {
    decades: u32,
}

impl Ranged for NinesAxis {
    // Labels come from `decade_label` via `x_label_formatter`; Debug is the
    // unused fallback this choice requires.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let right = f64::from(self.decades);
        let fraction = value.clamp(0.0, right) / right;
        let span = f64::from(limit.1 - limit.0);
        // Bounded by `limit` because the fraction is within 0..=1.
        limit.0 + (fraction * span).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let bold = (0..=self.decades).map(f64::from);
        match hint.weight() {
            KeyPointWeight::Bold => bold.collect(),
            KeyPointWeight::Any => bold.chain(light_points(self.decades)).collect(),
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..f64::from(self.decades)
    }
}

/// Plot coordinates: x in decades of nines (infinite at 100%), y in ms.
fn to_xy(points: &[SpectrumPoint]) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|p| p.percentile.is_finite() && p.latency_us.is_finite())
        .map(|p| (nines(p.percentile), p.latency_us / 1000.0))
        .collect()
}

/// `log10(1 / (1 - p))` for a percentile `p`; infinite at (or past) 100.
fn nines(percentile: f64) -> f64 {
    let remaining = 1.0 - percentile.clamp(0.0, 100.0) / 100.0;
    if remaining <= 0.0 {
        f64::INFINITY
    } else {
        -remaining.log10()
    }
}

/// How many decades the x axis spans: enough for every finite point, and
/// when there are 100% points, one whole decade strictly past the finite
/// ones so the final step up stays visible.
fn axis_decades(xs: impl Iterator<Item = f64>) -> u32 {
    let mut max_finite = 0.0_f64;
    let mut has_infinite = false;
    for x in xs {
        if x.is_finite() {
            max_finite = max_finite.max(x);
        } else {
            has_infinite = true;
        }
    }
    let snapped = if (max_finite - max_finite.round()).abs() < DECADE_SNAP {
        max_finite.round()
    } else {
        max_finite
    };
    let decades = if has_infinite {
        snapped.floor() + 1.0
    } else {
        snapped.ceil()
    };
    // Saturating cast: the value is finite, non-negative and small.
    (decades as u32).clamp(1, DECADES_MAX)
}

/// Unlabelled grid lines at 50%, 80%, 95%, 98%, 99.5%, ... : the 2 and 5
/// steps inside each decade, as on log paper.
fn light_points(decades: u32) -> Vec<f64> {
    let steps = [2.0_f64.log10(), 5.0_f64.log10()];
    (0..decades)
        .flat_map(|d| steps.iter().map(move |s| f64::from(d) + s))
        .collect()
}

/// "0%", "90%", "99%", "99.9%", ... for decade 0, 1, 2, 3, ...
fn decade_label(x: f64) -> String {
    // Key points are whole decades, so rounding only removes f64 noise.
    let decade = x.round().max(0.0) as usize;
    match decade {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        _ => format!("99{}%", fraction_of_nines(decade - 2)),
    }
}

fn fraction_of_nines(count: usize) -> String {
    if count == 0 {
        String::new()
    } else {
        format!(".{}", "9".repeat(count))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::report::{Host, Latencies, Spectra, Throughput, Verify};

    fn point(percentile: f64, latency_us: f64) -> SpectrumPoint {
        SpectrumPoint {
            percentile,
            latency_us,
        }
    }

    fn spectrum(scale: f64) -> Vec<SpectrumPoint> {
        [0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
            .iter()
            .enumerate()
            .map(|(i, &p)| point(p, scale * (100.0 + 300.0 * i as f64)))
            .collect()
    }

    fn report(produce: Vec<SpectrumPoint>, e2e: Vec<SpectrumPoint>) -> Report {
        Report {
            version: crate::report::REPORT_VERSION,
            started_at: "2025-01-01T00:00:00Z".to_string(),
            config: serde_json::json!({}),
            host: Host {
                cpus: 2,
                kernel: "test".to_string(),
                spawned_server: true,
            },
            measured_s: 10.0,
            throughput: Throughput::default(),
            latency_us: Latencies::default(),
            spectrum: Spectra {
                produce_ack: produce,
                end_to_end: e2e,
            },
            verify: Verify::default(),
            flow: Default::default(),
            producers: Vec::new(),
            timeline: Vec::new(),
            stream_beside: None,
            hiccups: Vec::new(),
            cpu_busy: Vec::new(),
        }
    }

    #[test]
    fn svg_is_written_with_series_labels_and_nines_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.svg");
        let a = spectrum(1.0);
        let b = spectrum(2.5);
        let series = [
            Series {
                label: "run-a ack=durable".to_string(),
                points: &a,
            },
            Series {
                label: "run-b ack=written".to_string(),
                points: &b,
            },
        ];
        write_svg(&path, "two runs", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in ["run-a ack=durable", "run-b ack=written", "two runs"] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        for tick in ["0%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(
                svg.contains(&format!(">\n{tick}\n<")),
                "missing tick {tick}"
            );
        }
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn report_svg_skips_empty_spectrum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.svg");
        write_report_svg(&path, &report(spectrum(1.0), Vec::new())).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("produce → ack"));
        assert!(!svg.contains("end to end"));
    }

    #[test]
    fn report_without_any_spectrum_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        let err = write_report_svg(&path, &report(Vec::new(), Vec::new())).unwrap_err();
        assert!(err.to_string().contains("no latency spectrum"), "{err:#}");
        assert!(!path.exists());
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("x.svg");
        let a = spectrum(1.0);
        let series = [Series {
            label: "a".to_string(),
            points: &a,
        }];
        let err = write_svg(&path, "t", &series).unwrap_err();
        assert!(format!("{err:#}").contains("missing-dir"), "{err:#}");
    }

    #[test]
    fn degenerate_input_still_plots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.svg");
        let odd = [point(f64::NAN, 1.0), point(100.0, 0.0), point(0.0, 0.0)];
        let series = [
            Series {
                label: "odd".to_string(),
                points: &odd,
            },
            Series {
                label: "empty-series-label".to_string(),
                points: &[],
            },
        ];
        write_svg(&path, "odd", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("odd"));
        assert!(
            !svg.contains("empty-series-label"),
            "empty series in legend"
        );
    }

    fn timeline_sample(t_s: f64, acked: f64, p99_us: Option<f64>) -> Sample {
        Sample {
            t_s,
            span_s: 1.0,
            produced_msgs_per_s: acked,
            acked_msgs_per_s: acked,
            produce_ack_p50_us: p99_us.map(|p| p / 2.0),
            produce_ack_p99_us: p99_us,
            ..Sample::default()
        }
    }

    #[test]
    fn timeline_svg_has_both_panels_and_the_warmup_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.svg");
        let mut r = report(Vec::new(), Vec::new());
        r.config = serde_json::json!({ "warmup": "2s" });
        r.timeline = (0..5)
            .map(|t| timeline_sample(f64::from(t), 1_000.0 * f64::from(t), Some(900.0)))
            .collect();
        // A second without acks has no latency point, and still plots.
        r.timeline.push(timeline_sample(5.0, 0.0, None));
        write_timeline_svg(&path, &r).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "messages per second",
            "produce → ack latency (ms)",
            "acknowledged",
            "produce → ack p99",
            "measuring starts",
            "time since sending started (s)",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn report_without_a_timeline_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.svg");
        let err = write_timeline_svg(&path, &report(Vec::new(), Vec::new())).unwrap_err();
        assert!(err.to_string().contains("no timeline"), "{err:#}");
        assert!(!path.exists());
    }

    #[test]
    fn percentiles_map_to_decades_of_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), f64::INFINITY);
        assert_eq!(nines(100.5), f64::INFINITY);
    }

    #[test]
    fn axis_ends_one_decade_past_finite_points_when_100_is_present() {
        // 99.999% sits on decade 5 (up to f64 noise); the 100% point goes to 6.
        assert_eq!(
            axis_decades([0.0, nines(99.999), f64::INFINITY].into_iter()),
            6
        );
        assert_eq!(
            axis_decades([0.0, nines(99.95), f64::INFINITY].into_iter()),
            4
        );
        // Without a 100% point the axis just covers the data.
        assert_eq!(axis_decades([0.0, nines(99.999)].into_iter()), 5);
        assert_eq!(axis_decades([0.0, nines(99.95)].into_iter()), 4);
        assert_eq!(axis_decades(std::iter::empty()), 1);
        assert_eq!(axis_decades([f64::INFINITY].into_iter()), 1);
        assert_eq!(axis_decades([40.0].into_iter()), DECADES_MAX);
    }

    #[test]
    fn decade_labels_count_nines() {
        let labels: Vec<String> = (0..=5).map(|d| decade_label(f64::from(d))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }
}
