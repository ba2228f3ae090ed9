//! What every figure shares: the bundled font, the colours, number formatting, text placement,
//! a panel of lines with a legend, and writing a [`Figure`] as PNG and SVG.

use std::ffi::OsString;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;

use crate::AnalysisError;

/// DejaVu Sans 2.37 from Debian's fonts-dejavu-core; its licence is `fonts/DejaVuSans-LICENSE.txt`.
static FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Tableau 10: distinct for up to ten maps, and readable by most colour-blind viewers.
pub(super) const PALETTE: [RGBColor; 10] = [
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
pub(super) const SOFTMAX: RGBColor = RGBColor(40, 40, 40);
pub(super) const MISSING: RGBColor = RGBColor(220, 220, 220);

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

pub(super) type DrawResult<DB> =
    Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

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
pub(super) trait Figure {
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

pub(super) fn save(figure: &impl Figure, stem: &Path) -> Result<PlotFiles, AnalysisError> {
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

pub(super) fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

pub(super) fn viridis(value: f64, (lo, hi): (f64, f64)) -> RGBColor {
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
pub(super) fn text_on(color: RGBColor) -> RGBColor {
    let luma = 0.299 * f64::from(color.0) + 0.587 * f64::from(color.1) + 0.114 * f64::from(color.2);
    if luma > 140.0 { BLACK } else { WHITE }
}

/// A value with about three significant digits and no trailing zeros, for ticks and cells.
pub(super) fn short(v: f64) -> String {
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
pub(super) fn title_width(text: &str, size: f64) -> u32 {
    (text.chars().count() as f64 * size * 0.62) as u32 + 40
}

pub(super) fn data_error(what: &str, message: impl std::fmt::Display) -> AnalysisError {
    AnalysisError::Data(format!("{what}: {message}"))
}

/// `(min, max)` of finite values, padded when they are equal so that a range is never empty.
pub(super) fn span(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
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

/// `(lo, hi)` widened to whole powers of ten, for a log axis: plotters labels a log axis only at
/// powers of ten (and multiples of them past the first), so a range inside one decade would
/// have no label. Needs `0 < lo ≤ hi`.
pub(super) fn decades((lo, hi): (f64, f64)) -> (f64, f64) {
    let (lo, hi) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    );
    if lo < hi { (lo, hi) } else { (lo, hi * 10.0) }
}

/// Text placed at a backend pixel (as `ChartContext::backend_coord` returns) on `area`.
pub(super) fn text_at<DB: DrawingBackend>(
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

pub(super) fn text_width<DB: DrawingBackend>(
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

/// A named line of `(x, y)` points, e.g. `("softmax", [(step, loss), …])`.
pub type Series = (String, Vec<(f64, f64)>);

/// One panel of lines with a legend: what the training curves and the generation-memory
/// figure share. Each line keeps its own colour, so that a map has the same colour in every
/// panel even where it has no points in one.
pub(super) struct LinePanel {
    pub(super) title: String,
    pub(super) x_desc: String,
    pub(super) y_desc: String,
    pub(super) lines: Vec<(Series, RGBColor)>,
    pub(super) x: (f64, f64),
    pub(super) y: (f64, f64),
    pub(super) log_y: bool,
}

impl LinePanel {
    /// A panel over `lines` (finite points; y > 0 when `log_y`), with ranges from the data.
    /// The y axis is logarithmic only when asked and the values span at least a decade: a log
    /// axis is labelled at powers of ten only, and a narrower span looks the same on a linear
    /// axis, which keeps its tick labels.
    pub(super) fn new(
        title: &str,
        (x_desc, y_desc): (&str, &str),
        lines: Vec<(Series, RGBColor)>,
        log_y: bool,
    ) -> Self {
        let all = || lines.iter().flat_map(|((_, p), _)| p.iter());
        let x = span(all().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let (lo, hi) = span(all().map(|p| p.1)).unwrap_or((0.0, 1.0));
        let log_y = log_y && lo > 0.0 && hi / lo >= 10.0;
        let y = if log_y {
            decades((lo, hi))
        } else {
            let pad = (hi - lo) * 0.05;
            (lo - pad, hi + pad)
        };
        Self {
            title: title.into(),
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            lines,
            x,
            y,
            log_y,
        }
    }

    pub(super) fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (lo, hi) = self.y;
        if self.log_y {
            let y: LogCoord<f64> = (lo..hi).log_scale().into();
            self.draw_on(area, y)
        } else {
            let y: RangedCoordf64 = (lo..hi).into();
            self.draw_on(area, y)
        }
    }

    fn draw_on<DB: DrawingBackend, Y>(&self, area: &DrawingArea<DB, Shift>, y: Y) -> DrawResult<DB>
    where
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, font(26.0))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(self.x.0..self.x.1, y)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .label_style(font(16.0))
            .axis_desc_style(font(18.0))
            .draw()?;
        for ((name, points), color) in &self.lines {
            let color = *color;
            chart
                .draw_series(
                    LineSeries::new(points.clone(), color.stroke_width(2))
                        .point_size(if points.len() <= 30 { 3 } else { 0 }),
                )?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(font(16.0))
            .draw()
    }
}

/// The palette colour of the `i`-th line.
pub(super) fn line_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}
