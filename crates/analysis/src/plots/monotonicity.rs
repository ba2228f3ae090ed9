//! The monotonicity figure: binned weights against the score, a panel per map.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::{
    DrawResult, Figure, PALETTE, PlotFiles, SOFTMAX, data_error, font, save, short, span,
};
use crate::{AnalysisError, AttentionReport};

struct Panel {
    title: String,
    x: (f64, f64),
    teacher: Vec<(f64, f64)>,
    student: Vec<(f64, f64)>,
    kernel: Vec<(f64, f64)>,
    color: RGBColor,
}

struct MonotonicityPanels {
    panels: Vec<Panel>,
    grid: (usize, usize),
}

/// One panel per report: the binned mean weight of the map (`â`) and of softmax (`a`) against
/// the score `q·k/√d`, pooled over layers and heads, and the map's raw kernel `φ(q)·φ(k)` on
/// the right axis (method.md §5, "monotonicity"). A softmax report shows its teacher only.
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
            return Err(data_error(
                what,
                format!(
                    "report `{}` has no per-row monotonicity curve: it was written before the \
                     curve was measured within each query row; re-run its analyze stage",
                    r.attention
                ),
            ));
        };
        let bins = curve.count.len();
        let sizes_ok = curve.edges.len() == bins + 1
            && [&curve.teacher, &curve.student, &curve.kernel]
                .iter()
                .all(|s| s.len() == bins);
        if bins == 0 || !sizes_ok {
            return Err(data_error(
                what,
                format!(
                    "report `{}` has a malformed curve ({} edges, {bins} bins)",
                    r.attention,
                    curve.edges.len()
                ),
            ));
        }
        let centers = curve.centers();
        let points = |series: &[Option<f64>]| -> Vec<(f64, f64)> {
            centers
                .iter()
                .zip(series)
                .filter_map(|(&x, y)| y.filter(|y| y.is_finite()).map(|y| (x, y)))
                .collect()
        };
        let teacher = points(&curve.teacher);
        if teacher.is_empty() {
            return Err(data_error(
                what,
                format!(
                    "report `{}` has no binned weights (was any batch added?)",
                    r.attention
                ),
            ));
        }
        let x = span(curve.edges.iter().copied().filter(|v| v.is_finite())).ok_or_else(|| {
            data_error(
                what,
                format!("report `{}` has no finite bin edges", r.attention),
            )
        })?;
        let student = points(&curve.student);
        let color = PALETTE[maps % PALETTE.len()];
        maps += usize::from(!student.is_empty());
        panels.push(Panel {
            title: r.attention.clone(),
            x,
            student,
            kernel: points(&curve.kernel),
            teacher,
            color,
        });
    }
    let cols = panels.len().min(3);
    let grid = (panels.len().div_ceil(cols), cols);
    save(&MonotonicityPanels { panels, grid }, stem)
}

impl Figure for MonotonicityPanels {
    fn size(&self) -> (u32, u32) {
        (620 * self.grid.1 as u32, 60 + 460 * self.grid.0 as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = root.titled(
            "Monotonicity: mean attention weight against the score q·k/√d",
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
    let w_max = p
        .teacher
        .iter()
        .chain(&p.student)
        .map(|&(_, y)| y)
        .fold(0.0, f64::max);
    let w_max = if w_max > 0.0 { w_max * 1.08 } else { 1.0 };
    let (k_lo, k_hi) = span(p.kernel.iter().map(|&(_, y)| y).chain([0.0])).unwrap_or((0.0, 1.0));
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, font(22.0))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .right_y_label_area_size(if p.kernel.is_empty() { 10 } else { 70 })
        .build_cartesian_2d(p.x.0..p.x.1, 0.0..w_max)?
        .set_secondary_coord(p.x.0..p.x.1, k_lo..k_hi * 1.08);
    chart
        .configure_mesh()
        .x_desc("score q·k/√d")
        .y_desc("mean weight")
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .label_style(font(15.0))
        .axis_desc_style(font(17.0))
        .draw()?;
    let line = |points: &[(f64, f64)], color: RGBColor| {
        LineSeries::new(points.to_vec(), color.stroke_width(3)).point_size(3)
    };
    chart
        .draw_series(line(&p.teacher, SOFTMAX))?
        .label("softmax a")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], SOFTMAX.stroke_width(3)));
    if !p.student.is_empty() {
        let color = p.color;
        chart
            .draw_series(line(&p.student, color))?
            .label("map â")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    if !p.kernel.is_empty() {
        chart
            .configure_secondary_axes()
            .y_desc("mean raw kernel φ(q)·φ(k)")
            .y_label_formatter(&|v| short(*v))
            .label_style(font(15.0))
            .axis_desc_style(font(17.0))
            .draw()?;
        let color = p.color;
        chart
            .draw_secondary_series(DashedLineSeries::new(
                p.kernel.clone(),
                8,
                5,
                color.stroke_width(2),
            ))?
            .label("raw kernel (right axis)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 10, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(font(15.0))
        .draw()
}
