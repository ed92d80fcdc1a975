//! The experiment's pictures, drawn with plotters into PNG and SVG: a metric
//! against a swept parameter with error bars over seeds, optical against GPU
//! latency bars, a per-layer stacked latency breakdown, accuracy against latency,
//! and the four planes of one sample with physical axes and colour bars.
//!
//! Every plot is drawn twice from the same data (a bitmap and an SVG backend) and
//! written atomically; text uses the DejaVu Sans font compiled in, so no system
//! font is needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::anyhow;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::atomic::write_atomic;

/// One line of a metric plot: `(x, mean, sd)` per point.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points in x order.
    pub points: Vec<(f64, f64, f64)>,
}

/// A metric against a swept parameter.
#[derive(Debug, Clone)]
pub struct MetricPlot {
    /// Title.
    pub title: String,
    /// X-axis label.
    pub x_label: String,
    /// Y-axis label.
    pub y_label: String,
    /// Log-spaced x (drawn on a log axis).
    pub log_x: bool,
    /// Log y axis.
    pub log_y: bool,
    /// Category names when x is not numeric (x is then the index).
    pub categories: Option<Vec<String>>,
    /// The lines.
    pub series: Vec<Series>,
}

/// Groups of bars (log y): e.g. one group per model, one bar per machine or GPU.
#[derive(Debug, Clone)]
pub struct BarPlot {
    /// Title.
    pub title: String,
    /// X-axis label (what the groups are).
    pub x_label: String,
    /// Y-axis label.
    pub y_label: String,
    /// `(group, [(bar, value)])`.
    pub groups: Vec<(String, Vec<(String, f64)>)>,
}

/// Stacked bars: one bar per layer, one segment per part.
#[derive(Debug, Clone)]
pub struct StackPlot {
    /// Title.
    pub title: String,
    /// Y-axis label.
    pub y_label: String,
    /// The parts' names (legend), bottom first.
    pub parts: Vec<String>,
    /// `(layer, value per part)`.
    pub bars: Vec<(String, Vec<f64>)>,
}

/// A point with its label: `(label, x, y)`.
pub type Labelled = (String, f64, f64);

/// Labelled points on log-x axes.
#[derive(Debug, Clone)]
pub struct ScatterPlot {
    /// Title.
    pub title: String,
    /// X-axis label.
    pub x_label: String,
    /// Y-axis label.
    pub y_label: String,
    /// `(series, [(label, x, y)])`.
    pub series: Vec<(String, Vec<Labelled>)>,
}

/// One plane picture.
#[derive(Debug, Clone)]
pub struct PlanePanel {
    /// Title, e.g. `input plane |E|`.
    pub title: String,
    /// Axis unit, e.g. `mm` or `cycles/mm`.
    pub unit: String,
    /// Colour-bar label.
    pub value_label: String,
    /// `[y][x]` values (already scaled, e.g. in dB).
    pub values: Vec<Vec<f64>>,
    /// Extent `[x0, x1, y0, y1]` in `unit`.
    pub extent: [f64; 4],
}

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when a font is registered twice, which `Once` prevents.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// A number with 3 significant digits, in scientific notation outside [1e-2, 1e4).
pub fn sig(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-2..1e4).contains(&a) {
        let s = format!("{v:.2e}");
        s.replace("e0", "").replace(".00e", "e")
    } else {
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

type Res = anyhow::Result<()>;

fn e<T: std::fmt::Debug>(err: T) -> anyhow::Error {
    anyhow!("drawing: {err:?}")
}

/// A picture drawable on any plotters backend.
pub trait Plot {
    /// Draws onto `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res;
    /// Picture size in pixels.
    fn size(&self) -> (u32, u32) {
        (900, 560)
    }
}

/// Draws `p` into `base.png` and `base.svg`, each written atomically; returns both
/// paths.
pub fn render<P: Plot>(base: &Path, p: &P) -> anyhow::Result<Vec<PathBuf>> {
    fonts();
    let size = p.size();
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        p.draw(&root)?;
        root.present().map_err(e)?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(e)?;
        w.write_image_data(&buf).map_err(e)?;
    }
    let png_path = base.with_extension("png");
    write_atomic(&png_path, &png_bytes)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        p.draw(&root)?;
        root.present().map_err(e)?;
    }
    let svg_path = base.with_extension("svg");
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

/// A `(lo, hi)` range padded by 5 % (and widened when flat).
fn padded((lo, hi): (f64, f64)) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let span = hi - lo;
    let pad = if span > 0.0 {
        0.05 * span
    } else {
        0.05 * lo.abs().max(1e-12)
    };
    (lo - pad, hi + pad)
}

fn min_max(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)))
}

fn lg(v: f64) -> f64 {
    v.max(1e-300).log10()
}

impl MetricPlot {
    /// Category labels too many or too long to lie flat.
    fn turned(&self) -> bool {
        self.categories.as_ref().is_some_and(|c| crowded(c, 900))
    }
}

impl Plot for MetricPlot {
    fn size(&self) -> (u32, u32) {
        match &self.categories {
            Some(c) if self.turned() => (900, 560 + label_area(c, true) - 48),
            _ => (900, 560),
        }
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res {
        let p = self;
        let turned = p.turned();
        let tx = |x: f64| if p.log_x { lg(x) } else { x };
        let ty = |y: f64| if p.log_y { lg(y) } else { y };
        let (x0, x1) = match &p.categories {
            // Half a slot either side, so that the end labels fit.
            Some(c) => (-0.5, c.len().max(1) as f64 - 0.5),
            None => padded(min_max(p.series.iter().flat_map(|s| s.points.iter().map(|q| tx(q.0))))),
        };
        let (y0, y1) = padded(min_max(p.series.iter().flat_map(|s| {
            s.points.iter().flat_map(|q| {
                let lo = if p.log_y { q.1 } else { q.1 - q.2 };
                [ty(lo), ty(q.1 + q.2)]
            })
        })));
        // Headroom above the data for the legend, which would otherwise sit on the
        // highest point whenever every corner holds one (one line per machine
        // setting in `layer_error`).
        let y1 = if p.series.len() > 1 { y1 + 0.25 * (y1 - y0) } else { y1 };
        let categories = p.categories.as_deref().map(category_fmt);
        let x_fmt = |v: &f64| -> String {
            match &categories {
                Some(f) => f(v),
                None if p.log_x => sig(10f64.powf(*v)),
                None => sig(*v),
            }
        };
        let y_fmt = |v: &f64| if p.log_y { sig(10f64.powf(*v)) } else { sig(*v) };
        let x_area = match &p.categories {
            Some(c) if turned => label_area(c, true),
            _ => 48,
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&p.title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(x_area)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(e)?;
        let x_labels = match &p.categories {
            // Enough label slots that every whole index gets one.
            Some(c) => 4 * c.len() + 1,
            None => 8,
        };
        chart
            .configure_mesh()
            .x_desc(&p.x_label)
            .y_desc(&p.y_label)
            .x_labels(x_labels)
            .x_label_formatter(&|v: &f64| if turned { String::new() } else { x_fmt(v) })
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(e)?;
        if let (Some(c), true) = (&p.categories, turned) {
            turned_labels(root, &chart, c, y0)?;
        }
        let n = p.series.len() as u32;
        for (i, s) in p.series.iter().enumerate() {
            let c = color(i);
            // Earlier lines wider, so a line hidden under an equal later one shows.
            let w = 2 + 2 * (n - 1 - i as u32).min(3);
            let pts: Vec<(f64, f64)> = s.points.iter().map(|q| (tx(q.0), ty(q.1))).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(w)))
                .map_err(e)?
                .label(&s.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(w)));
            chart
                .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 3 + w, c.filled())))
                .map_err(e)?;
            chart
                .draw_series(s.points.iter().filter(|q| q.2 > 0.0).map(|q| {
                    let lo = if p.log_y {
                        (q.1 - q.2).max(q.1 * 1e-3)
                    } else {
                        q.1 - q.2
                    };
                    ErrorBar::new_vertical(tx(q.0), ty(lo), ty(q.1), ty(q.1 + q.2), c.stroke_width(2), 10)
                }))
                .map_err(e)?;
        }
        // The legend goes where the fewest points are.
        let all: Vec<(f64, f64)> = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| (tx(q.0), ty(q.1))))
            .collect();
        let (xm, ym) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let corner = [
            (SeriesLabelPosition::LowerRight, false, true),
            (SeriesLabelPosition::UpperRight, true, true),
            (SeriesLabelPosition::LowerLeft, false, false),
            (SeriesLabelPosition::UpperLeft, true, false),
        ]
        .into_iter()
        .min_by_key(|(_, up, right)| {
            all.iter()
                .filter(|(x, y)| (*y > ym) == *up && (*x > xm) == *right)
                .count()
        })
        .map_or(SeriesLabelPosition::LowerRight, |c| c.0);
        legend(&mut chart, corner)?;
        Ok(())
    }
}

/// The legend of `chart`'s labelled series at `pos`, on a translucent box.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Res {
    chart
        .configure_series_labels()
        .position(pos)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)
}

/// Whether category labels `names` are too long to stand side by side under a
/// plot `width` pixels wide (at about 8 px per character at 14 px).
fn crowded(names: &[String], width: u32) -> bool {
    names.len() > 8 || names.iter().map(|n| n.chars().count() + 2).sum::<usize>() * 8 > width as usize - 120
}

/// Height of the label area for `names` (turned upright when `crowded`).
fn label_area(names: &[String], crowded: bool) -> u32 {
    if crowded {
        16 + 7 * names.iter().map(|s| s.chars().count()).max().unwrap_or(0) as u32
    } else {
        48
    }
}

/// Category labels turned upright under the x axis at 0, 1, 2, …: plotters places
/// turned mesh labels over the axis, so these are drawn by hand, reading downwards
/// from just under each category.
fn turned_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    names: &[String],
    y0: f64,
) -> Res {
    let style = ("sans-serif", 12).into_font().transform(FontTransform::Rotate90);
    for (i, name) in names.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64, y0));
        root.draw(&Text::new(name.clone(), (px + 6, py + 8), style.clone()))
            .map_err(e)?;
    }
    Ok(())
}

/// Category axis labels: index `i` at `i`, blank between.
fn category_fmt(names: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
            names[i as usize].clone()
        } else {
            String::new()
        }
    }
}

impl Plot for BarPlot {
    fn size(&self) -> (u32, u32) {
        let names: Vec<String> = self.groups.iter().map(|g| g.0.clone()).collect();
        // Room for turned labels under the bars.
        (
            900,
            if crowded(&names, 900) {
                560 + label_area(&names, true) - 48
            } else {
                560
            },
        )
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res {
        let names: Vec<String> = self.groups.iter().map(|g| g.0.clone()).collect();
        let mut bars: Vec<String> = Vec::new();
        for (_, g) in &self.groups {
            for (b, _) in g {
                if !bars.contains(b) {
                    bars.push(b.clone());
                }
            }
        }
        let (lo, hi) = min_max(self.groups.iter().flat_map(|g| g.1.iter().map(|b| lg(b.1))));
        // A decade below the smallest bar, so that every bar shows.
        let (y0, y1) = ((lo - 0.5).floor(), hi.ceil().max(lo.floor() + 1.0));
        let n = self.groups.len().max(1) as f64;
        let turned = crowded(&names, self.size().0);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(label_area(&names, turned))
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..n - 0.5, y0..y1)
            .map_err(e)?;
        let fmt = category_fmt(&names);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(4 * names.len() + 1)
            .x_label_formatter(&|v: &f64| if turned { String::new() } else { fmt(v) })
            .y_labels(((y1 - y0) as usize + 1).max(2))
            .y_label_formatter(&|v: &f64| sig(10f64.powf(*v)))
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(e)?;
        if turned {
            turned_labels(root, &chart, &names, y0)?;
        }
        let width = 0.8 / bars.len().max(1) as f64;
        for (bi, b) in bars.iter().enumerate() {
            let c = color(bi);
            let rects: Vec<_> = self
                .groups
                .iter()
                .enumerate()
                .filter_map(|(gi, (_, g))| {
                    let v = g.iter().find(|x| &x.0 == b)?.1;
                    let x = gi as f64 - 0.4 + bi as f64 * width;
                    Some(Rectangle::new([(x, y0), (x + width * 0.92, lg(v))], c.filled()))
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(e)?
                .label(b)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

impl Plot for StackPlot {
    fn size(&self) -> (u32, u32) {
        (1000, 600)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res {
        let names: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        let top = self
            .bars
            .iter()
            .map(|b| b.1.iter().sum::<f64>())
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        // Milliseconds or microseconds, whichever reads better.
        let (scale, unit) = if top >= 1e-3 { (1e3, "ms") } else { (1e6, "µs") };
        let n = self.bars.len().max(1) as f64;
        // Many layers: labels turned upright, so they do not collide.
        let turned = crowded(&names, self.size().0);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(label_area(&names, turned))
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..top * scale * 1.3)
            .map_err(e)?;
        let fmt = category_fmt(&names);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(4 * names.len() + 1)
            .x_label_formatter(&|v: &f64| if turned { String::new() } else { fmt(v) })
            .label_style(("sans-serif", 14))
            .y_label_formatter(&|v: &f64| sig(*v))
            .y_desc(format!("{} ({unit})", self.y_label))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(e)?;
        if turned {
            turned_labels(root, &chart, &names, 0.0)?;
        }
        for (pi, part) in self.parts.iter().enumerate() {
            let c = color(pi);
            let rects: Vec<_> = self
                .bars
                .iter()
                .enumerate()
                .map(|(i, (_, v))| {
                    let below: f64 = v[..pi].iter().sum();
                    let x = i as f64;
                    Rectangle::new(
                        [(x - 0.35, below * scale), (x + 0.35, (below + v[pi]) * scale)],
                        c.filled(),
                    )
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(e)?
                .label(part)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

impl Plot for ScatterPlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res {
        let (xl, xh) = min_max(self.series.iter().flat_map(|s| s.1.iter().map(|p| lg(p.1))));
        let (x0, x1) = (xl.floor(), xh.ceil().max(xl.floor() + 1.0));
        let (y0, y1) = padded(min_max(self.series.iter().flat_map(|s| s.1.iter().map(|p| p.2))));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_labels(((x1 - x0) as usize + 1).max(2))
            .x_label_formatter(&|v: &f64| sig(10f64.powf(*v)))
            .y_label_formatter(&|v: &f64| sig(*v))
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(e)?;
        // Points of a series that coincide on the plot (within 1 % of each axis)
        // share one marker and one label listing them all, so labels never print
        // over each other.
        let merged = |pts: &[Labelled]| -> Vec<Labelled> {
            let mut out: Vec<Labelled> = Vec::new();
            for (label, x, y) in pts {
                let near = |(_, x2, y2): &&mut Labelled| {
                    (lg(*x) - lg(*x2)).abs() < 0.01 * (x1 - x0) && (y - y2).abs() < 0.01 * (y1 - y0)
                };
                match out.iter_mut().find(near) {
                    Some(p) if !label.is_empty() => p.0 = format!("{}, {label}", p.0),
                    Some(_) => {}
                    None => out.push((label.clone(), *x, *y)),
                }
            }
            out
        };
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let c = color(i);
            let pts = merged(pts);
            chart
                .draw_series(pts.iter().map(|(label, x, y)| {
                    EmptyElement::at((lg(*x), *y))
                        + Circle::new((0, 0), 5, c.filled())
                        + Text::new(label.clone(), (7, -14), ("sans-serif", 12))
                }))
                .map_err(e)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 7, y), 5, c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
        Ok(())
    }
}

/// The inferno colour map at `t` in [0, 1].
fn inferno(t: f64) -> RGBColor {
    let [r, g, b] = crate::images::Colormap::Inferno.rgb(t);
    RGBColor(r, g, b)
}

/// Four planes side by side, each with its colour bar.
#[derive(Debug, Clone)]
pub struct Planes {
    /// Title.
    pub title: String,
    /// The panels.
    pub panels: Vec<PlanePanel>,
}

impl Plot for Planes {
    fn size(&self) -> (u32, u32) {
        (1200, 1040)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res {
        let root = root.titled(&self.title, ("sans-serif", 24)).map_err(e)?;
        let cells = root.split_evenly((2, 2));
        for (area, p) in cells.iter().zip(&self.panels) {
            let (plot, bar) = area.split_horizontally(area.dim_in_pixel().0 as i32 - 90);
            let (lo, hi) = min_max(p.values.iter().flatten().copied());
            let span = (hi - lo).max(f64::MIN_POSITIVE);
            let [x0, x1, y0, y1] = p.extent;
            let mut chart = ChartBuilder::on(&plot)
                .caption(&p.title, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(format!("x ({})", p.unit))
                .y_desc(format!("y ({})", p.unit))
                .x_label_formatter(&|v: &f64| sig(*v))
                .y_label_formatter(&|v: &f64| sig(*v))
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 14))
                .draw()
                .map_err(e)?;
            let ny = p.values.len();
            let nx = p.values.first().map_or(0, Vec::len);
            let (dx, dy) = ((x1 - x0) / nx.max(1) as f64, (y1 - y0) / ny.max(1) as f64);
            chart
                .draw_series(p.values.iter().enumerate().flat_map(|(j, row)| {
                    row.iter().enumerate().map(move |(i, v)| {
                        let (x, y) = (x0 + i as f64 * dx, y1 - j as f64 * dy);
                        Rectangle::new([(x, y), (x + dx, y - dy)], inferno((v - lo) / span).filled())
                    })
                }))
                .map_err(e)?;
            let mut cb = ChartBuilder::on(&bar)
                .margin_top(40)
                .margin_bottom(48)
                .margin_right(4)
                .y_label_area_size(0)
                .right_y_label_area_size(56)
                .build_cartesian_2d(0.0..1.0, lo..lo + span)
                .map_err(e)?;
            cb.configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_desc(&p.value_label)
                .y_label_formatter(&|v: &f64| sig(*v))
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 12))
                .draw()
                .map_err(e)?;
            let steps = 64;
            cb.draw_series((0..steps).map(|k| {
                let a = lo + span * k as f64 / steps as f64;
                let b = lo + span * (k + 1) as f64 / steps as f64;
                Rectangle::new([(0.0, a), (0.35, b)], inferno((k as f64 + 0.5) / steps as f64).filled())
            }))
            .map_err(e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(sig(0.0), "0");
        assert_eq!(sig(12.345), "12.3");
        assert_eq!(sig(0.5), "0.5");
        assert_eq!(sig(1000.0), "1000");
        assert_eq!(sig(1.5e-5), "1.50e-5");
        assert_eq!(sig(2.0e6), "2e6");
    }

    #[test]
    fn every_kind_renders_a_png_and_an_svg() {
        let dir = crate::test_dir("plots");
        let m = MetricPlot {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_x: true,
            log_y: false,
            categories: None,
            series: vec![Series {
                label: "a".into(),
                points: vec![(10.0, 0.5, 0.1), (100.0, 0.7, 0.0)],
            }],
        };
        let files = render(&dir.join("m"), &m).unwrap();
        let png = std::fs::read(&files[0]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
        let b = BarPlot {
            title: "b".into(),
            x_label: "model".into(),
            y_label: "s".into(),
            groups: vec![("m".into(), vec![("optics".into(), 1e-4), ("a100".into(), 1e-3)])],
        };
        render(&dir.join("b"), &b).unwrap();
        let s = StackPlot {
            title: "s".into(),
            y_label: "time".into(),
            parts: vec!["optical".into(), "electronic".into()],
            bars: vec![("embed".into(), vec![1e-4, 2e-4]), ("head".into(), vec![0.0, 1e-5])],
        };
        render(&dir.join("s"), &s).unwrap();
        let sc = ScatterPlot {
            title: "c".into(),
            x_label: "latency".into(),
            y_label: "acc".into(),
            series: vec![("machine".into(), vec![("p0".into(), 1e-4, 0.8)])],
        };
        render(&dir.join("c"), &sc).unwrap();
        let panel = PlanePanel {
            title: "p".into(),
            unit: "mm".into(),
            value_label: "v".into(),
            values: vec![vec![0.0, 1.0], vec![2.0, 3.0]],
            extent: [-1.0, 1.0, -1.0, 1.0],
        };
        let pl = Planes {
            title: "planes".into(),
            panels: vec![panel.clone(), panel.clone(), panel.clone(), panel],
        };
        let files = render(&dir.join("p"), &pl).unwrap();
        assert!(files.iter().all(|f| f.exists()));
    }
}
