//! Matrices drawn as coloured cells on one shared scale with a colour bar, for the KL heatmaps
//! and the attention maps.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{
    DrawResult, Figure, MISSING, font, short, text_at, text_on, text_width, title_width, viridis,
};

/// A matrix drawn as coloured cells, row 0 at the top.
pub(super) struct Matrix {
    pub(super) title: String,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) values: Vec<Option<f64>>,
    pub(super) row_labels: Vec<String>,
    pub(super) col_labels: Vec<String>,
    pub(super) x_desc: String,
    pub(super) y_desc: String,
    /// Write each cell's value into it.
    pub(super) annotate: bool,
}

pub(super) struct Heatmaps {
    pub(super) title: String,
    pub(super) panels: Vec<Matrix>,
    pub(super) scale: (f64, f64),
    pub(super) scale_label: String,
    pub(super) panel_size: (u32, u32),
}

const COLOR_BAR_WIDTH: u32 = 130;

/// Panels per row of a heatmap figure: more wrap onto further rows so a figure stays readable.
const HEATMAP_COLUMNS: usize = 3;

impl Heatmaps {
    /// `(columns, rows)` of the panel grid.
    fn grid(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        // One row up to three panels, else a near-square grid (four panels: 2 × 2).
        let columns = if n <= HEATMAP_COLUMNS {
            n
        } else {
            (n as f64).sqrt().ceil() as usize
        }
        .min(HEATMAP_COLUMNS);
        (columns, n.div_ceil(columns))
    }
}

impl Figure for Heatmaps {
    fn size(&self) -> (u32, u32) {
        let (columns, rows) = self.grid();
        let panels = self.panel_size.0 * columns as u32 + COLOR_BAR_WIDTH;
        (
            panels.max(title_width(&self.title, 26.0)),
            self.panel_size.1 * rows as u32 + 50,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = root.titled(&self.title, font(26.0))?;
        let (w, _) = body.dim_in_pixel();
        let (panels, bar) = body.split_horizontally(w - COLOR_BAR_WIDTH);
        let (columns, rows) = self.grid();
        for (m, area) in self.panels.iter().zip(panels.split_evenly((rows, columns))) {
            draw_matrix(&area, m, self.scale)?;
        }
        draw_color_bar(&bar, self.scale, &self.scale_label)
    }
}

fn draw_matrix<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    m: &Matrix,
    scale: (f64, f64),
) -> DrawResult<DB> {
    let (rows, cols) = (m.rows as f64, m.cols as f64);
    let row_width = text_width(area, &m.row_labels, 14.0);
    let col_width = text_width(area, &m.col_labels, 14.0);
    // Long column labels (tokens) stand upright.
    let upright = col_width > 40;
    let mut chart = ChartBuilder::on(area)
        .caption(&m.title, font(22.0))
        .margin(12)
        .x_label_area_size(36 + if upright { col_width } else { 20 })
        .y_label_area_size(40 + row_width)
        .build_cartesian_2d(0.0..cols, 0.0..rows)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc(m.x_desc.as_str())
        .y_desc(m.y_desc.as_str())
        .axis_desc_style(font(17.0))
        .draw()?;
    let cell_px = {
        let (x0, _) = chart.backend_coord(&(0.0, 0.0));
        let (x1, _) = chart.backend_coord(&(1.0, 0.0));
        x1 - x0
    };
    for r in 0..m.rows {
        for c in 0..m.cols {
            let y = rows - 1.0 - r as f64;
            let value = m.values[r * m.cols + c];
            let color = value.map_or(MISSING, |v| viridis(v, scale));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(c as f64, y), (c as f64 + 1.0, y + 1.0)],
                color.filled(),
            )))?;
            if m.annotate && cell_px >= 34 {
                let text = value.map_or_else(|| "n/a".to_string(), short);
                chart.draw_series(std::iter::once(Text::new(
                    text,
                    (c as f64 + 0.5, y + 0.5),
                    font(13.0)
                        .color(&text_on(color))
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )))?;
            }
        }
    }
    // Thin the labels so that they never overlap.
    let every = |n: usize| n.div_ceil(40).max(1);
    for (r, label) in m.row_labels.iter().enumerate().step_by(every(m.rows)) {
        let (px, py) = chart.backend_coord(&(0.0, rows - 0.5 - r as f64));
        let style = font(14.0).pos(Pos::new(HPos::Right, VPos::Center));
        text_at(area, label, (px - 6, py), &style)?;
    }
    for (c, label) in m.col_labels.iter().enumerate().step_by(every(m.cols)) {
        let (px, py) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
        let style = if upright {
            font(14.0)
                .transform(FontTransform::Rotate90)
                .pos(Pos::new(HPos::Left, VPos::Center))
        } else {
            font(14.0).pos(Pos::new(HPos::Center, VPos::Top))
        };
        text_at(area, label, (px, py + 6), &style)?;
    }
    Ok(())
}

fn draw_color_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (lo, hi): (f64, f64),
    label: &str,
) -> DrawResult<DB> {
    let mut chart = ChartBuilder::on(area)
        .caption(label, font(17.0))
        .margin_top(30)
        .margin_bottom(60)
        .margin_left(10)
        .margin_right(4)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0, lo..hi)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|v| short(*v))
        .label_style(font(14.0))
        .draw()?;
    let steps = 100;
    chart.draw_series((0..steps).map(|s| {
        let a = lo + (hi - lo) * s as f64 / steps as f64;
        let b = lo + (hi - lo) * (s + 1) as f64 / steps as f64;
        // The gradient stops short of the right edge, where the tick labels start.
        Rectangle::new(
            [(0.0, a), (0.75, b)],
            viridis(0.5 * (a + b), (lo, hi)).filled(),
        )
    }))?;
    Ok(())
}
