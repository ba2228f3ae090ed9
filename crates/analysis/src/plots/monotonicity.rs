//! The monotonicity figure: per-row weights relative to the row's top key, against the score
//! relative to the row's maximum, a panel per map.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::{
    DrawResult, Figure, PALETTE, PlotFiles, SOFTMAX, data_error, decades, font, save, short, span,
};
use crate::{AnalysisError, AttentionReport, MonotonicityCurve};

struct Panel {
    title: String,
    x: (f64, f64),
    y: (f64, f64),
    teacher: Vec<(f64, f64)>,
    student: Vec<(f64, f64)>,
    kernel: Vec<(f64, f64)>,
    color: RGBColor,
}

struct MonotonicityPanels {
    panels: Vec<Panel>,
    grid: (usize, usize),
}

const REFERENCE: RGBColor = RGBColor(110, 110, 110);

/// One panel per report, from its per-row curve over every layer and head
/// ([`MonotonicityCurve`], method.md §5): the binned mean of `w_j / w_top` against
/// `s_j − s_top` within each row, for softmax `a`, the map `â` and its raw kernel `φ(q)·φ(k)`
/// (dashed), with the line `y = 1`, the top key's own weight, that a monotone map never
/// crosses at `x < 0`. A softmax report shows its teacher only. For a plain linear map
/// `â = φ(q)·φ(k) / Σ φ(q)·φ(k)`, so the two ratios are the same numbers and the dashed kernel
/// lies on the map's line, drawn wide and pale so that both stay visible; they part only
/// where the map's weights are not its kernel normalised over the same keys.
///
/// The y axis is logarithmic: softmax is `y = exp(x)` there, a straight line of slope one over
/// the whole range, where a linear axis would flatten everything below `x ≈ −3` onto zero.
/// Bins whose mean is not positive (a ReLU kernel zeroes whole bins) cannot be placed on it
/// and are left out. A report written before the curve was measured per row has none and is
/// an error that says to re-run its analyze stage.
pub fn monotonicity_panels(
    reports: &[AttentionReport],
    stem: &Path,
) -> Result<PlotFiles, AnalysisError> {
    let what = "monotonicity panels";
    if reports.is_empty() {
        return Err(data_error(what, "no reports to draw"));
    }
    let mut panels = Vec::new();
    // Colours count linear maps only, as in `entropy_bars`, so a map keeps its colour.
    let mut maps = 0;
    for r in reports {
        let Some(curve) = &r.row_curve else {
            let why = stale_report(&r.attention);
            return Err(data_error(what, format!("{why}; re-run its analyze stage")));
        };
        let mut panel = panel_of(&r.attention, curve).map_err(|e| data_error(what, e))?;
        panel.color = PALETTE[maps % PALETTE.len()];
        maps += usize::from(!panel.student.is_empty());
        panels.push(panel);
    }
    let cols = panels.len().min(3);
    let grid = (panels.len().div_ceil(cols), cols);
    save(&MonotonicityPanels { panels, grid }, stem)
}

/// Why a report without a per-row curve is not drawn (the caller says what to re-run).
pub(crate) fn stale_report(attention: &str) -> String {
    format!(
        "report `{attention}` has no per-row monotonicity curve: it was written before the curve \
         was measured within each query row (its `pooled` curve mixes the rows' normalisers, a \
         different measure, and is not drawn under the new axes)"
    )
}

/// The panel of one curve (colour left to the caller), or what is wrong with the curve.
fn panel_of(attention: &str, curve: &MonotonicityCurve) -> Result<Panel, String> {
    let bins = curve.count.len();
    let sizes_ok = curve.edges.len() == bins + 1
        && [&curve.teacher, &curve.student, &curve.kernel]
            .iter()
            .all(|s| s.len() == bins);
    if bins == 0 || !sizes_ok {
        return Err(format!(
            "report `{attention}` has a malformed curve ({} edges, {bins} bins)",
            curve.edges.len()
        ));
    }
    let centers = curve.centers();
    let points = |series: &[Option<f64>]| -> Vec<(f64, f64)> {
        centers
            .iter()
            .zip(series)
            .filter_map(|(&x, y)| y.filter(|y| y.is_finite() && *y > 0.0).map(|y| (x, y)))
            .collect()
    };
    let teacher = points(&curve.teacher);
    if teacher.is_empty() {
        return Err(format!(
            "report `{attention}` has no binned weights (was any batch added?)"
        ));
    }
    let x = span(curve.edges.iter().copied().filter(|v| v.is_finite()))
        .ok_or_else(|| format!("report `{attention}` has no finite bin edges"))?;
    let (student, kernel) = (points(&curve.student), points(&curve.kernel));
    let all = teacher.iter().chain(&student).chain(&kernel).map(|p| p.1);
    // 1 is always on the axis: it is the top key's own weight, the line to read the rest against.
    let (lo, hi) = span(all.chain([1.0])).unwrap_or((0.1, 1.0));
    Ok(Panel {
        title: attention.to_string(),
        x,
        y: decades((lo, hi)),
        teacher,
        student,
        kernel,
        color: SOFTMAX,
    })
}

impl Figure for MonotonicityPanels {
    fn size(&self) -> (u32, u32) {
        (620 * self.grid.1 as u32, 60 + 460 * self.grid.0 as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = root.titled(
            "Monotonicity within each query row: weight relative to the row's top key",
            font(26.0),
        )?;
        for (panel, area) in self.panels.iter().zip(body.split_evenly(self.grid)) {
            draw_monotonicity(&area, panel)?;
        }
        Ok(())
    }
}

fn draw_monotonicity<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
) -> DrawResult<DB> {
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, font(22.0))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(p.x.0..p.x.1, (p.y.0..p.y.1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("score − row max score")
        .y_desc("weight / weight of the row's top key")
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .label_style(font(15.0))
        .axis_desc_style(font(17.0))
        .draw()?;
    chart
        .draw_series(DashedLineSeries::new(
            [(p.x.0, 1.0), (p.x.1, 1.0)],
            6,
            6,
            REFERENCE.stroke_width(2),
        ))?
        .label("top key (y = 1)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], REFERENCE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(p.teacher.clone(), SOFTMAX.stroke_width(3)).point_size(3))?
        .label("softmax a")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], SOFTMAX.stroke_width(3)));
    let color = p.color;
    if !p.student.is_empty() {
        let wide = color.mix(0.45).stroke_width(6);
        chart
            .draw_series(LineSeries::new(p.student.clone(), wide))?
            .label("map â")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], wide));
    }
    if !p.kernel.is_empty() {
        chart
            .draw_series(DashedLineSeries::new(
                p.kernel.clone(),
                8,
                5,
                color.stroke_width(2),
            ))?
            .label("raw kernel φ(q)·φ(k)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 10, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(font(15.0))
        .draw()
}
