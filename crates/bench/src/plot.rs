//! The log-log plot of time versus patches, one line per implementation and regime (SVG).

use crate::report::Report;
use plotters::prelude::*;

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// No measurement of the workload to plot.
    #[error("no results for workload {0}")]
    Empty(String),
    /// The drawing backend failed (e.g. the file could not be written).
    #[error("drawing failed: {0}")]
    Draw(String),
}

/// A count as `15k`, `1M`.
fn fmt_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Draws `workload`'s results into an SVG file at `path`. Extrapolated points are drawn as
/// hollow circles on a dashed line.
///
/// # Errors
/// [`PlotError`] when there is nothing to draw or the file cannot be written.
pub fn plot(report: &Report, workload: &str, path: &std::path::Path) -> Result<(), PlotError> {
    let rows: Vec<_> = report.results.iter().filter(|r| r.workload == workload && r.median_ms > 0.0).collect();
    if rows.is_empty() {
        return Err(PlotError::Empty(workload.into()));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, 0f64, f64::MAX, 0f64);
    for r in &rows {
        let x = r.patches as f64;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(r.median_ms);
        y1 = y1.max(r.median_ms);
    }
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{workload}: patching time vs patches (log-log)"), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((x0 * 0.8..x1 * 1.25).log_scale(), (y0 * 0.5..y1 * 2.0).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("patches")
        .y_desc("median time (ms)")
        .x_label_formatter(&|v| fmt_count(*v))
        .y_label_formatter(&|v| crate::report::fmt_ms(*v))
        .draw()
        .map_err(draw_err)?;
    let series = [
        ("kernel", "warm", RED),
        ("rfc-list", "warm", MAGENTA),
        ("bpfpatch", "warm", BLUE),
        ("bpfpatch", "cold", CYAN),
        ("copy-floor", "warm", BLACK),
        ("copy-floor", "cold", RGBColor(128, 128, 128)),
    ];
    for (imp, regime, color) in series {
        let mut pts: Vec<_> = rows.iter().filter(|r| r.imp == imp && r.regime == regime).collect();
        if pts.is_empty() {
            continue;
        }
        pts.sort_by_key(|r| r.patches);
        let measured: Vec<(f64, f64)> =
            pts.iter().filter(|r| !r.extrapolated).map(|r| (r.patches as f64, r.median_ms)).collect();
        let all: Vec<(f64, f64)> = pts.iter().map(|r| (r.patches as f64, r.median_ms)).collect();
        chart.draw_series(DashedLineSeries::new(all.iter().copied(), 6, 4, color.stroke_width(1))).map_err(draw_err)?;
        chart
            .draw_series(LineSeries::new(measured.iter().copied(), color.stroke_width(2)))
            .map_err(draw_err)?
            .label(format!("{imp} ({regime})"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|r| {
                let style = if r.extrapolated { color.stroke_width(1) } else { color.filled() };
                Circle::new((r.patches as f64, r.median_ms), 4, style)
            }))
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}
