//! The paper-style figures, each written as `<stem>.png` and `<stem>.svg`.
//!
//! Text is drawn with DejaVu Sans, bundled in `fonts/` and registered with plotters' `ab_glyph`
//! backend, so no system font is needed (architecture.md: without a font plotters panics on the
//! first label). Inputs are checked before drawing: an empty or non-finite input is an
//! [`AnalysisError::Data`], never a panic inside plotters.

use std::ffi::OsString;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::{CsvReadOptions, DataType, SerReader};

use crate::{AnalysisError, AttentionMap, AttentionReport};

/// DejaVu Sans 2.37 from Debian's fonts-dejavu-core; its licence is `fonts/DejaVuSans-LICENSE.txt`.
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Tableau 10: distinct for up to ten maps, and readable by most colour-blind viewers.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
];
const SOFTMAX: RGBColor = RGBColor(40, 40, 40);
const MISSING: RGBColor = RGBColor(220, 220, 220);

/// Matplotlib's viridis at nine stops, interpolated linearly: perceptually uniform, so equal KL
/// or weight steps look like equal colour steps.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// A named line of `(x, y)` points, e.g. `("softmax", [(step, loss), …])`.
pub type Series = (String, Vec<(f64, f64)>);

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The two files a figure was written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

impl PlotFiles {
    fn of(stem: &Path) -> Self {
        let with = |ext: &str| {
            let mut name = OsString::from(stem.as_os_str());
            name.push(ext);
            PathBuf::from(name)
        };
        Self {
            png: with(".png"),
            svg: with(".svg"),
        }
    }
}

/// A figure that can draw itself on any plotters backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

fn register_font(figure: &Path) -> Result<(), AnalysisError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(AnalysisError::Plot {
            path: figure.to_path_buf(),
            message: "the bundled font crates/analysis/fonts/DejaVuSans.ttf did not load; \
                      restore it from Debian's fonts-dejavu-core package"
                .into(),
        })
    }
}

fn save(figure: &impl Figure, stem: &Path) -> Result<PlotFiles, AnalysisError> {
    let files = PlotFiles::of(stem);
    register_font(&files.png)?;
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(AnalysisError::io(parent))?;
    }
    let (w, h) = figure.size();
    let plot_error = |path: &Path| {
        let path = path.to_path_buf();
        move |e: &dyn std::fmt::Display| AnalysisError::Plot {
            path,
            message: e.to_string(),
        }
    };
    // The PNG goes through the workspace's `image` crate rather than plotters' own encoder,
    // which would pull in a second version of `image`.
    let mut pixels = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|()| figure.draw(&root))
            .and_then(|()| root.present())
            .map_err(|e| plot_error(&files.png)(&e))?;
    }
    let mut png = Cursor::new(Vec::new());
    image::RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| plot_error(&files.png)(&"pixel buffer does not match the figure size"))?
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| plot_error(&files.png)(&e))?;
    std::fs::write(&files.png, png.into_inner()).map_err(AnalysisError::io(&files.png))?;
    {
        let root = SVGBackend::new(&files.svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|()| figure.draw(&root))
            .and_then(|()| root.present())
            .map_err(|e| plot_error(&files.svg)(&e))?;
    }
    Ok(files)
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

fn viridis(value: f64, (lo, hi): (f64, f64)) -> RGBColor {
    let t = if hi > lo {
        ((value - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Black on light cells, white on dark ones.
fn text_on(color: RGBColor) -> RGBColor {
    let luma = 0.299 * f64::from(color.0) + 0.587 * f64::from(color.1) + 0.114 * f64::from(color.2);
    if luma > 140.0 { BLACK } else { WHITE }
}

/// A value with about three significant digits and no trailing zeros, for ticks and cells.
fn short(v: f64) -> String {
    let a = v.abs();
    let decimals = match a {
        _ if a == 0.0 => return "0".into(),
        _ if !(1e-3..1e4).contains(&a) => return format!("{v:.1e}"),
        _ if a >= 100.0 => 0,
        _ if a >= 10.0 => 1,
        _ if a >= 1.0 => 2,
        _ => 3,
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A generous estimate of a caption's width, for sizing a figure before any backend exists.
fn title_width(text: &str, size: f64) -> u32 {
    (text.chars().count() as f64 * size * 0.62) as u32 + 40
}

fn data_error(what: &str, message: impl std::fmt::Display) -> AnalysisError {
    AnalysisError::Data(format!("{what}: {message}"))
}

/// `(min, max)` of finite values, padded when they are equal so that a range is never empty.
fn span(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        None
    } else if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        Some((lo - pad, hi + pad))
    } else {
        Some((lo, hi))
    }
}

/// Text placed at a backend pixel (as `ChartContext::backend_coord` returns) on `area`.
fn text_at<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    (x, y): (i32, i32),
    style: &TextStyle,
) -> DrawResult<DB> {
    let (bx, by) = area.get_base_pixel();
    area.draw(&Text::new(
        text.to_string(),
        (x - bx, y - by),
        style.clone(),
    ))
}

fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[String],
    size: f64,
) -> u32 {
    labels
        .iter()
        .filter_map(|l| area.estimate_text_size(l, &font(size)).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0)
}

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
        let curve = &r.pooled;
        let bins = curve.count.len();
        let sizes_ok = curve.edges.len() == bins + 1
            && [&curve.teacher, &curve.student, &curve.kernel]
                .iter()
                .all(|s| s.len() == bins);
        if bins == 0 || !sizes_ok {
            return Err(data_error(
                what,
                format!(
                    "report `{}` has a malformed pooled curve ({} edges, {bins} bins)",
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

/// A matrix drawn as coloured cells, row 0 at the top.
struct Matrix {
    title: String,
    rows: usize,
    cols: usize,
    values: Vec<Option<f64>>,
    row_labels: Vec<String>,
    col_labels: Vec<String>,
    x_desc: String,
    y_desc: String,
    /// Write each cell's value into it.
    annotate: bool,
}

struct Heatmaps {
    title: String,
    panels: Vec<Matrix>,
    scale: (f64, f64),
    scale_label: String,
    panel_size: (u32, u32),
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

fn kl_matrix(report: &AttentionReport) -> Option<Matrix> {
    let rows = report.layers.len();
    let cols = report.layers.iter().map(|l| l.heads.len()).max()?;
    let mut values = vec![None; rows * cols];
    for (r, layer) in report.layers.iter().enumerate() {
        for (c, head) in layer.heads.iter().enumerate() {
            values[r * cols + c] = head.kl.filter(|v| v.is_finite());
        }
    }
    values.iter().any(Option::is_some).then(|| Matrix {
        title: report.attention.clone(),
        rows,
        cols,
        values,
        row_labels: (0..rows).map(|l| l.to_string()).collect(),
        col_labels: (0..cols).map(|h| h.to_string()).collect(),
        x_desc: "head".into(),
        y_desc: "layer".into(),
        annotate: rows * cols <= 64,
    })
}

/// KL(a‖â) per layer × head (method.md §5, "fidelity") of one report.
pub fn kl_heatmap(report: &AttentionReport, stem: &Path) -> Result<PlotFiles, AnalysisError> {
    kl_heatmaps(std::slice::from_ref(report), stem)
}

/// KL(a‖â) per layer × head, one panel per map on one colour scale (0 to the largest KL).
/// Reports without a student (softmax) are left out; it is an error if none has a KL.
pub fn kl_heatmaps(reports: &[AttentionReport], stem: &Path) -> Result<PlotFiles, AnalysisError> {
    let panels: Vec<Matrix> = reports.iter().filter_map(kl_matrix).collect();
    if panels.is_empty() {
        return Err(data_error(
            "KL heatmap",
            "no report has a KL value (softmax-only reports have none; analyse a linear map)",
        ));
    }
    let max = panels
        .iter()
        .flat_map(|m| m.values.iter().flatten())
        .fold(0.0, |a: f64, &b| a.max(b));
    let side = panels.iter().map(|m| m.rows.max(m.cols)).max().unwrap_or(1) as u32;
    let panel = (40 * side).clamp(300, 520);
    save(
        &Heatmaps {
            title: "Fidelity: KL(softmax ‖ map) per layer and head, nats".into(),
            panels,
            scale: (0.0, if max > 0.0 { max } else { 1.0 }),
            scale_label: "KL (nats)".into(),
            panel_size: (panel + 120, panel + 110),
        },
        stem,
    )
}

/// One head's attention on one example: softmax (the first map's teacher) and then each map's
/// student, side by side on one colour scale. Maps without a student add no panel.
pub fn attention_maps(
    maps: &[(String, AttentionMap)],
    stem: &Path,
) -> Result<PlotFiles, AnalysisError> {
    let what = "attention maps";
    let Some((_, first)) = maps.first() else {
        return Err(data_error(what, "no attention maps to draw"));
    };
    for (label, m) in maps {
        m.validate()
            .map_err(|e| data_error(what, format!("{label}: {e}")))?;
        if m.size != first.size {
            return Err(data_error(
                what,
                format!("{label} has size {}, the first map {}", m.size, first.size),
            ));
        }
        let values = m.teacher.iter().chain(m.student.iter().flatten());
        if let Some(v) = values.into_iter().find(|v| !v.is_finite()) {
            return Err(data_error(what, format!("{label} holds the weight {v}")));
        }
    }
    let size = first.size;
    let tokens: Vec<String> = if first.tokens.is_empty() {
        (0..size).map(|i| i.to_string()).collect()
    } else {
        first.tokens.iter().map(|t| shorten(t, 12)).collect()
    };
    let matrix = |title: &str, weights: &[f32]| Matrix {
        title: title.to_string(),
        rows: size,
        cols: size,
        values: weights.iter().map(|&w| Some(f64::from(w))).collect(),
        row_labels: tokens.clone(),
        col_labels: tokens.clone(),
        x_desc: "key".into(),
        y_desc: "query".into(),
        annotate: false,
    };
    let mut panels = vec![matrix("softmax", &first.teacher)];
    for (label, m) in maps {
        if let Some(student) = &m.student {
            panels.push(matrix(label, student));
        }
    }
    let max = panels
        .iter()
        .flat_map(|m| m.values.iter().flatten())
        .fold(0.0, |a: f64, &b| a.max(b));
    let panel = (22 * size as u32).clamp(320, 560);
    save(
        &Heatmaps {
            title: format!(
                "Attention weights, layer {} head {}",
                first.layer, first.head
            ),
            panels,
            scale: (0.0, if max > 0.0 { max } else { 1.0 }),
            scale_label: "weight".into(),
            panel_size: (panel + 150, panel + 200),
        },
        stem,
    )
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}

struct Curves {
    series: Vec<Series>,
    y_label: String,
    x: (f64, f64),
    y: (f64, f64),
    log_y: bool,
}

/// One line per series (x: step, y: `y_label`). With `log_y` the y axis is logarithmic when
/// the values span at least a decade; a narrower span looks the same on a linear axis, which is
/// used then so that it keeps its tick labels. `log_y` needs every y > 0.
pub fn training_curves(
    series: &[Series],
    y_label: &str,
    log_y: bool,
    stem: &Path,
) -> Result<PlotFiles, AnalysisError> {
    let what = "training curves";
    if series.is_empty() {
        return Err(data_error(what, "no series to draw"));
    }
    for (name, points) in series {
        if points.is_empty() {
            return Err(data_error(what, format!("series `{name}` has no points")));
        }
        if let Some((x, y)) = points
            .iter()
            .find(|(x, y)| !x.is_finite() || !y.is_finite() || (log_y && *y <= 0.0))
        {
            return Err(data_error(
                what,
                format!(
                    "series `{name}` has the point ({x}, {y}); points must be finite{}",
                    if log_y {
                        " with y > 0 on a log axis"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let x = span(all().map(|p| p.0)).unwrap_or((0.0, 1.0));
    let (lo, hi) = span(all().map(|p| p.1)).unwrap_or((0.0, 1.0));
    // plotters labels a log axis only at powers of ten (and multiples of them past the first),
    // so a log axis is used from a decade of data up, widened to whole decades.
    let log_y = log_y && lo > 0.0 && hi / lo >= 10.0;
    let y = if log_y {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()),
        )
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    };
    save(
        &Curves {
            series: series.to_vec(),
            y_label: y_label.to_string(),
            x,
            y,
            log_y,
        },
        stem,
    )
}

impl Figure for Curves {
    fn size(&self) -> (u32, u32) {
        (1000, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (lo, hi) = self.y;
        if self.log_y {
            let y: LogCoord<f64> = (lo..hi).log_scale().into();
            draw_curves(root, self, y)
        } else {
            let y: RangedCoordf64 = (lo..hi).into();
            draw_curves(root, self, y)
        }
    }
}

fn draw_curves<DB: DrawingBackend, Y>(
    root: &DrawingArea<DB, Shift>,
    fig: &Curves,
    y: Y,
) -> DrawResult<DB>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&fig.y_label, font(26.0))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(fig.x.0..fig.x.1, y)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(fig.y_label.as_str())
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .label_style(font(16.0))
        .axis_desc_style(font(18.0))
        .draw()?;
    for (i, (name, points)) in fig.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(
                LineSeries::new(points.clone(), color.stroke_width(2))
                    .point_size(if points.len() <= 30 { 3 } else { 0 }),
            )?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(font(16.0))
        .draw()
}

/// Reads a run's `metrics.csv` (`stage,label,step,global_step,loss,lr,tokens_per_second`, then
/// `val_<metric>` columns, empty where not measured) into one series per stage label:
/// `(global_step, column)` for every row where `column` has a value, in file order.
pub fn metrics_series(csv: &Path, column: &str) -> Result<Vec<Series>, AnalysisError> {
    let fail = |message: String| AnalysisError::Csv {
        path: csv.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(csv).map_err(AnalysisError::io(csv))?;
    let frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
        .map_err(|e| fail(format!("not a readable CSV: {e}")))?;
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let get = |name: &str, dtype: DataType| {
        frame
            .column(name)
            .map_err(|_| {
                fail(format!(
                    "no column `{name}`; it has {} (metrics.csv from `hedgehog run` has \
                     label, global_step, loss and val_<metric> columns)",
                    names.join(", ")
                ))
            })?
            .strict_cast(&dtype)
            .map_err(|e| fail(format!("column `{name}` is not {dtype}: {e}")))
    };
    let labels = get("label", DataType::String)?;
    let steps = get("global_step", DataType::Float64)?;
    let values = get(column, DataType::Float64)?;
    let (labels, steps, values) = (
        labels.str().map_err(|e| fail(e.to_string()))?,
        steps.f64().map_err(|e| fail(e.to_string()))?,
        values.f64().map_err(|e| fail(e.to_string()))?,
    );
    let mut series: Vec<Series> = Vec::new();
    for ((label, step), value) in labels.iter().zip(steps.iter()).zip(values.iter()) {
        let (Some(step), Some(value)) = (step, value) else {
            continue;
        };
        let label = label.unwrap_or("").to_string();
        match series.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push((step, value)),
            None => series.push((label, vec![(step, value)])),
        }
    }
    Ok(series)
}
