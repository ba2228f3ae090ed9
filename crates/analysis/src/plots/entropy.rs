//! The spikiness figure: mean attention entropy per map.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{
    DrawResult, Figure, PALETTE, PlotFiles, SOFTMAX, data_error, font, save, short, text_at,
    text_width,
};
use crate::AnalysisError;

struct EntropyBars {
    /// Softmax first.
    bars: Vec<(String, f64, RGBColor)>,
    softmax: f64,
}

/// Mean attention entropy per feature map (method.md §5, "spikiness"), one horizontal bar each,
/// with softmax's bar on top and its value as a dashed reference line. Lower is spikier.
pub fn entropy_bars(
    rows: &[(String, f64)],
    softmax: f64,
    stem: &Path,
) -> Result<PlotFiles, AnalysisError> {
    let what = "entropy bars";
    if rows.is_empty() {
        return Err(data_error(what, "no feature map rows to draw"));
    }
    let mut bars = vec![("softmax".to_string(), softmax, SOFTMAX)];
    for (i, (name, v)) in rows.iter().enumerate() {
        bars.push((name.clone(), *v, PALETTE[i % PALETTE.len()]));
    }
    if let Some((name, v, _)) = bars.iter().find(|(_, v, _)| !v.is_finite() || *v < 0.0) {
        return Err(data_error(
            what,
            format!("{name} has entropy {v}; entropies are finite and ≥ 0"),
        ));
    }
    save(&EntropyBars { bars, softmax }, stem)
}

impl Figure for EntropyBars {
    fn size(&self) -> (u32, u32) {
        (960, 150 + 46 * self.bars.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let n = self.bars.len();
        let names: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        let label_width = text_width(root, &names, 18.0) + 20;
        let max = self.bars.iter().map(|b| b.1).fold(0.0, f64::max);
        let x_max = if max > 0.0 { max * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption("Mean attention entropy (lower = spikier)", font(26.0))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0.0..x_max, 0.0..n as f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(8)
            .x_label_formatter(&|v| short(*v))
            .x_desc("entropy of each attention row, nats (mean over rows, heads, layers)")
            .label_style(font(16.0))
            .axis_desc_style(font(18.0))
            .draw()?;
        for (k, (name, v, color)) in self.bars.iter().enumerate() {
            // bar k from the top
            let y = (n - 1 - k) as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.15), (*v, y + 0.85)],
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{v:.3}"),
                (*v + x_max * 0.01, y + 0.5),
                font(16.0).pos(Pos::new(HPos::Left, VPos::Center)),
            )))?;
            let (px, py) = chart.backend_coord(&(0.0, y + 0.5));
            let style = font(18.0).pos(Pos::new(HPos::Right, VPos::Center));
            text_at(root, name, (px - 8, py), &style)?;
        }
        chart.draw_series(DashedLineSeries::new(
            [(self.softmax, 0.0), (self.softmax, n as f64)],
            6,
            4,
            SOFTMAX.stroke_width(1),
        ))?;
        Ok(())
    }
}
