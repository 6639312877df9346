//! The bench's figures as pictures: horizontal bar charts (SVG, drawn with `plotters`) of
//! cold start and peak memory, each function beside the SDK-only floors and the Python
//! peers, and of end-to-end throughput beside the floors. Built from the report
//! `bench/report.py` writes, so a chart shows exactly the run's figures.

use plotters::prelude::*;
use serde_json::Value;

/// What a bar measures, which decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An SDK-only floor: the least a function making that call can cost.
    Floor,
    /// One of our functions.
    Fleetwire,
    /// A Python 3.11 + boto3 peer.
    Python,
}

impl Kind {
    fn color(self) -> RGBColor {
        match self {
            Kind::Floor => RGBColor(0x9a, 0xa3, 0xb5),
            Kind::Fleetwire => RGBColor(0x2f, 0x5b, 0xd3),
            Kind::Python => RGBColor(0xe0, 0x8a, 0x1e),
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Kind::Floor => "SDK-only floor",
            Kind::Fleetwire => "fleetwire (Rust)",
            Kind::Python => "Python 3.11 + boto3 peer",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The file name it is written as.
    pub file: &'static str,
    pub title: String,
    /// The unit of the values, shown on the axis and after each value.
    pub unit: &'static str,
    pub bars: Vec<Bar>,
}

fn kind_of(name: &str) -> Kind {
    if name.ends_with("-python") || name.ends_with("python-batch") {
        Kind::Python
    } else if name.contains("floor") {
        Kind::Floor
    } else {
        Kind::Fleetwire
    }
}

/// The charts of one report: cold start, peak memory, throughput.
pub fn from_report(report: &Value) -> Result<Vec<Chart>, String> {
    let rows = report["cold_start"]
        .as_array()
        .ok_or("the report has no cold_start rows")?;
    let per_row = |field: &str| -> Result<Vec<Bar>, String> {
        rows.iter()
            .map(|row| {
                let name = row["name"].as_str().ok_or("a cold_start row has no name")?;
                let value = row[field]
                    .as_f64()
                    .ok_or_else(|| format!("{name} has no {field}"))?;
                Ok(Bar {
                    label: name.to_owned(),
                    value,
                    kind: kind_of(name),
                })
            })
            .collect()
    };
    let measured = report["date"].as_str().unwrap_or("?");
    let machine = report["machine"].as_str().unwrap_or("?");
    let throughput = &report["throughput"];
    let rate = |label: &str, key: &str, kind: Kind| {
        throughput[key].as_f64().map(|value| Bar {
            label: label.to_owned(),
            value,
            kind,
        })
    };
    let throughput_bars: Vec<Bar> = [
        rate(
            "telemetry-ingest, batches of 500",
            "ingest_e2e_records_per_second",
            Kind::Fleetwire,
        ),
        rate(
            "floor B: PutRecords as they are",
            "ingest_e2e_floor_records_per_second",
            Kind::Floor,
        ),
        rate(
            "telemetry-ingest, Python peer",
            "ingest_e2e_python_records_per_second",
            Kind::Python,
        ),
        rate(
            "stream-processor, batches of 100",
            "stream_processor_records_per_second",
            Kind::Fleetwire,
        ),
        rate(
            "floor C: one TransactWriteItems",
            "stream_processor_floor_records_per_second",
            Kind::Floor,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(vec![
        Chart {
            file: "bench-cold-start.svg",
            title: format!("Cold start: init + first invocation ({measured}, {machine})"),
            unit: "ms",
            bars: per_row("cold_start_ms")?,
        },
        Chart {
            file: "bench-memory.svg",
            title: format!("Peak memory (VmHWM) of a fresh process ({measured})"),
            unit: "MiB",
            bars: per_row("peak_rss_mib")?,
        },
        Chart {
            file: "bench-throughput.svg",
            title: format!("End to end against the local stack, warm median ({measured})"),
            unit: "records/s",
            bars: throughput_bars,
        },
    ])
}

const WIDTH: u32 = 900;
const ROW: u32 = 28;

/// The chart as an SVG document.
pub fn render_svg(chart: &Chart) -> Result<String, String> {
    if chart.bars.is_empty() {
        return Err(format!("{}: nothing to draw", chart.file));
    }
    let height = 110 + ROW * chart.bars.len() as u32;
    let max = chart.bars.iter().map(|b| b.value).fold(0.0, f64::max);
    // Room past the longest bar for its value and for the legend.
    let top = if max > 0.0 { max * 1.45 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", chart.file);
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let n = chart.bars.len();
        let labels: Vec<String> = chart.bars.iter().map(|b| b.label.clone()).collect();
        let mut plot = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(250)
            .build_cartesian_2d(0.0..top, (0..n - 1).into_segmented())
            .map_err(|e| fail(&e))?;
        plot.configure_mesh()
            .disable_y_mesh()
            .x_desc(chart.unit)
            .y_labels(n)
            // The first bar at the top.
            .y_label_formatter(&|segment| match segment {
                SegmentValue::CenterOf(i) => labels.get(n - 1 - *i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&|v| figure(*v))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| fail(&e))?;
        for kind in [Kind::Fleetwire, Kind::Floor, Kind::Python] {
            let bars: Vec<(usize, &Bar)> = chart
                .bars
                .iter()
                .enumerate()
                .filter(|(_, b)| b.kind == kind)
                .map(|(i, b)| (n - 1 - i, b))
                .collect();
            if bars.is_empty() {
                continue;
            }
            let color = kind.color();
            plot.draw_series(bars.iter().map(|(i, bar)| {
                let mut rectangle = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(*i)),
                        (bar.value, SegmentValue::Exact(i + 1)),
                    ],
                    color.filled(),
                );
                rectangle.set_margin(4, 4, 0, 0);
                rectangle
            }))
            .map_err(|e| fail(&e))?
            .label(kind.legend())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
            plot.draw_series(bars.iter().map(|(i, bar)| {
                Text::new(
                    format!(" {} {}", figure(bar.value), chart.unit),
                    (bar.value, SegmentValue::CenterOf(*i)),
                    ("sans-serif", 12).into_font(),
                )
            }))
            .map_err(|e| fail(&e))?;
        }
        plot.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// A value as the charts print it: three significant figures at most, thousands grouped.
fn figure(value: f64) -> String {
    if value >= 100.0 || value.fract() == 0.0 {
        let whole = value.round() as u64;
        let digits = whole.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        grouped
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests;
