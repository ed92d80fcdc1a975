//! From the records of an output directory: `summary.csv` (one row per point and
//! backend, mean and sd over seeds), `report.md` (the config, the machine, the
//! results table, the plots) and the plots themselves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fourf_nn::data::{load_fashion_mnist, Split};
use fourf_sim::{ConvJob, FourF, Mode, Op, Planner, PlannerConfig};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use super::config::{data_dir, BackendChoice, Experiment, ExperimentConfig};
use super::plots::{render, BarPlot, MetricPlot, PlanePanel, Planes, ScatterPlot, Series, StackPlot};
use super::runner::Record;
use crate::atomic::write_atomic;
use crate::machine_file::load_machine;

/// The sample planes, saved so that `fourf plot` redraws them without the machine.
pub const PLANES: &str = "planes.json";

/// Mean and sample standard deviation.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// The metrics of one backend at one point, over its seeds.
#[derive(Debug, Clone)]
struct Cell {
    point: usize,
    backend: String,
    seeds: usize,
    accuracy: Vec<f64>,
    agreement: Vec<f64>,
    logit_error: Vec<f64>,
    frames: Vec<f64>,
}

fn cells(records: &[Record]) -> Vec<Cell> {
    let mut map: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    for r in records {
        for b in &r.backends {
            let c = map
                .entry((r.point, BackendChoice::rank(&b.backend)))
                .or_insert_with(|| Cell {
                    point: r.point,
                    backend: b.backend.clone(),
                    seeds: 0,
                    accuracy: Vec::new(),
                    agreement: Vec::new(),
                    logit_error: Vec::new(),
                    frames: Vec::new(),
                });
            c.seeds += 1;
            c.accuracy.extend(b.accuracy);
            c.agreement.extend(b.agreement);
            c.logit_error.extend(b.logit_error);
            c.frames.extend(b.frames_per_image);
        }
    }
    map.into_values().collect()
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), super::plots::sig),
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6e}")
    } else {
        String::new()
    }
}

/// The first record of each point (latency does not depend on the seed).
fn first_per_point(records: &[Record]) -> BTreeMap<usize, &Record> {
    let mut m = BTreeMap::new();
    for r in records {
        m.entry(r.point).or_insert(r);
    }
    m
}

/// `summary.csv`.
fn summary_csv(exp: &Experiment, records: &[Record]) -> String {
    let axes = exp.axes();
    let gpus: Vec<String> = records
        .iter()
        .find_map(|r| r.latency.as_ref())
        .map_or(Vec::new(), |l| l.gpus.iter().map(|g| g.gpu.clone()).collect());
    let mut head: Vec<String> = vec!["point".into()];
    head.extend(axes.iter().cloned());
    for h in [
        "backend",
        "seeds",
        "images",
        "accuracy_mean",
        "accuracy_sd",
        "agreement_mean",
        "agreement_sd",
        "logit_error_mean",
        "logit_error_sd",
        "frames_per_image",
        "machine_latency_s",
        "machine_energy_j",
    ] {
        head.push(h.into());
    }
    for g in &gpus {
        head.push(format!("{g}_latency_s"));
        head.push(format!("{g}_energy_j"));
    }
    let mut out = head.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(",") + "\n";
    let firsts = first_per_point(records);
    for c in cells(records) {
        let r = firsts[&c.point];
        let mut row = vec![c.point.to_string()];
        for a in &axes {
            row.push(csv_field(&r.values.get(a).map_or(String::new(), value_text)));
        }
        row.push(c.backend.clone());
        row.push(c.seeds.to_string());
        row.push(r.images.to_string());
        for v in [&c.accuracy, &c.agreement, &c.logit_error] {
            let (m, s) = mean_sd(v);
            row.push(num(m));
            row.push(num(s));
        }
        row.push(num(mean_sd(&c.frames).0));
        match &r.latency {
            Some(l) => {
                row.push(num(l.latency_s));
                row.push(l.energy_j.map_or(String::new(), num));
                for g in &gpus {
                    let x = l.gpus.iter().find(|x| &x.gpu == g);
                    row.push(x.map_or(String::new(), |x| num(x.latency_s)));
                    row.push(x.map_or(String::new(), |x| num(x.energy_j)));
                }
            }
            None => row.extend(std::iter::repeat_n(String::new(), 2 + 2 * gpus.len())),
        }
        out += &row.join(",");
        out.push('\n');
    }
    out
}

/// The markdown results table.
fn results_table(exp: &Experiment, records: &[Record]) -> String {
    let axes = exp.axes();
    let mut s = String::from("| point |");
    for a in &axes {
        let _ = write!(s, " {a} |");
    }
    s += " backend | accuracy (%) | agreement (%) | logit error | frames/image |\n|---|";
    s += &"---|".repeat(axes.len() + 5);
    s.push('\n');
    let firsts = first_per_point(records);
    let pm = |v: &[f64], scale: f64| {
        let (m, sd) = mean_sd(v);
        if !m.is_finite() {
            "–".to_string()
        } else if v.len() > 1 {
            format!("{:.2} ± {:.2}", m * scale, sd * scale)
        } else {
            format!("{:.2}", m * scale)
        }
    };
    for c in cells(records) {
        let r = firsts[&c.point];
        let _ = write!(s, "| {} |", c.point);
        for a in &axes {
            let _ = write!(s, " {} |", r.values.get(a).map_or(String::new(), value_text));
        }
        let (le, _) = mean_sd(&c.logit_error);
        let (fr, _) = mean_sd(&c.frames);
        let _ = writeln!(
            s,
            " {} | {} | {} | {} | {} |",
            c.backend,
            pm(&c.accuracy, 100.0),
            pm(&c.agreement, 100.0),
            if le.is_finite() {
                format!("{le:.3e}")
            } else {
                "–".into()
            },
            if fr.is_finite() {
                format!("{fr:.2}")
            } else {
                "–".into()
            },
        );
    }
    s
}

/// The latency section of the report: per point, the machine and each GPU
/// (seconds and joules per image, the optics' speed-up, the break-even rates).
fn latency_table(exp: &Experiment, records: &[Record]) -> String {
    let firsts: Vec<&Record> = first_per_point(records)
        .into_values()
        .filter(|r| r.latency.is_some())
        .collect();
    let Some(first) = firsts.first() else {
        return String::new();
    };
    let l0 = first.latency.as_ref().expect("filtered");
    let axes = exp.axes();
    let mut s = format!(
        "## Latency and energy per image (batch {})\n\nSpeed-up: GPU time over the machine's (> 1: the optics is faster). Break-even: the input-SLM rate, the rate of both SLMs, and the frame rate of the whole machine (SLMs, camera and link keeping pace) at which the machine ties the GPU (none: no rate can).\n\n| point |",
        l0.batch
    );
    for a in &axes {
        let _ = write!(s, " {a} |");
    }
    s += " device | seconds | joules | speed-up | break-even input SLM (Hz) | break-even both SLMs (Hz) | break-even machine (frames/s) |\n|---|";
    s += &"---|".repeat(axes.len() + 7);
    s.push('\n');
    let sig = super::plots::sig;
    for r in &firsts {
        let l = r.latency.as_ref().expect("filtered");
        let vals: String = axes
            .iter()
            .map(|a| format!(" {} |", r.values.get(a).map_or(String::new(), value_text)))
            .collect();
        let _ = writeln!(
            s,
            "| {} |{vals} 4f machine | {} | {} | | | | |",
            r.point,
            sig(l.latency_s),
            l.energy_j.map_or("–".into(), sig)
        );
        for g in &l.gpus {
            let _ = writeln!(
                s,
                "| {} |{vals} {} | {} | {} | {} | {} | {} | {} |",
                r.point,
                g.gpu,
                sig(g.latency_s),
                sig(g.energy_j),
                sig(g.optics_speedup),
                g.break_even_input_rate_hz.map_or("none".into(), sig),
                g.break_even_slm_rate_hz.map_or("none".into(), sig),
                g.break_even_frame_rate_hz.map_or("none".into(), sig),
            );
        }
    }
    s.push('\n');
    s
}

/// A metric plot per metric over the first swept axis, one line per backend (and
/// per value of the other axes).
fn metric_plots(exp: &Experiment, records: &[Record]) -> Vec<(String, MetricPlot)> {
    let axes = exp.axes();
    let Some(x_key) = axes.first() else {
        return Vec::new();
    };
    let firsts = first_per_point(records);
    let xs: Vec<&serde_json::Value> = firsts.values().filter_map(|r| r.values.get(x_key)).collect();
    let numeric = xs.iter().all(|v| v.is_number());
    let mut categories: Vec<String> = Vec::new();
    if !numeric {
        for v in &xs {
            let t = value_text(v);
            if !categories.contains(&t) {
                categories.push(t);
            }
        }
    }
    let x_of = |r: &Record| -> f64 {
        let v = &r.values[x_key];
        if numeric {
            v.as_f64().unwrap_or(f64::NAN)
        } else {
            categories.iter().position(|c| *c == value_text(v)).unwrap_or(0) as f64
        }
    };
    let others = |r: &Record| -> String {
        axes[1..]
            .iter()
            .map(|k| {
                // Legends name machine settings by their machine key.
                let short = k.strip_prefix("machine.").unwrap_or(k);
                format!("{short} = {}", r.values.get(k).map_or(String::new(), value_text))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cells = cells(records);
    type Pick = fn(&Cell) -> &Vec<f64>;
    let metrics: [(&str, &str, &str, Pick, f64, bool); 4] = [
        (
            "accuracy",
            "accuracy",
            "top-1 accuracy (%)",
            |c| &c.accuracy,
            100.0,
            false,
        ),
        (
            "agreement",
            "agreement with digital",
            "top-1 agreement (%)",
            |c| &c.agreement,
            100.0,
            false,
        ),
        (
            "logit_error",
            "relative logit error",
            "mean ‖Δlogits‖/‖logits‖",
            |c| &c.logit_error,
            1.0,
            true,
        ),
        (
            "frames",
            "frames per image",
            "frames per image",
            |c| &c.frames,
            1.0,
            false,
        ),
    ];
    let mut out = Vec::new();
    for (file, title, y_label, pick, scale, log_y) in metrics {
        let mut series: BTreeMap<(usize, String), Series> = BTreeMap::new();
        for c in &cells {
            let v = pick(c);
            if v.is_empty() {
                continue;
            }
            let r = firsts[&c.point];
            let o = others(r);
            let label = if o.is_empty() {
                c.backend.clone()
            } else {
                format!("{} ({o})", c.backend)
            };
            let order = BackendChoice::rank(&c.backend);
            let (m, sd) = mean_sd(v);
            series
                .entry((order, label.clone()))
                .or_insert_with(|| Series {
                    label,
                    points: Vec::new(),
                })
                .points
                .push((x_of(r), m * scale, sd * scale));
        }
        let mut series: Vec<Series> = series.into_values().collect();
        if series.is_empty() || (log_y && series.iter().all(|s| s.points.iter().all(|p| p.1 <= 0.0))) {
            continue;
        }
        for s in &mut series {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        out.push((
            format!("metric_{file}"),
            MetricPlot {
                title: format!("{}: {title} against {x_key}", exp.name()),
                x_label: x_key.clone(),
                y_label: y_label.into(),
                log_x: numeric && exp.log_axes.get(x_key).copied().unwrap_or(false),
                log_y: log_y && series.iter().all(|s| s.points.iter().all(|p| p.1 > 0.0)),
                categories: (!numeric).then(|| categories.clone()),
                series,
            },
        ));
    }
    // Projected latency against the parameter, the machine beside each GPU.
    let lat: Vec<&Record> = firsts.values().copied().filter(|r| r.latency.is_some()).collect();
    if !lat.is_empty() {
        let mut series = vec![Series {
            label: "4f machine".into(),
            points: lat
                .iter()
                .map(|r| (x_of(r), r.latency.as_ref().expect("filtered").latency_s, 0.0))
                .collect(),
        }];
        for (gi, g) in lat[0].latency.as_ref().expect("filtered").gpus.iter().enumerate() {
            series.push(Series {
                label: g.gpu.clone(),
                points: lat
                    .iter()
                    .filter_map(|r| Some((x_of(r), r.latency.as_ref()?.gpus.get(gi)?.latency_s, 0.0)))
                    .collect(),
            });
        }
        for s in &mut series {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        out.push((
            "metric_latency".into(),
            MetricPlot {
                title: format!("{}: projected latency against {x_key}", exp.name()),
                x_label: x_key.clone(),
                y_label: "seconds per image".into(),
                log_x: numeric && exp.log_axes.get(x_key).copied().unwrap_or(false),
                log_y: true,
                categories: (!numeric).then(|| categories.clone()),
                series,
            },
        ));
    }
    out
}

/// Each optical op's relative error, in model order, one line per optical backend
/// and point (metric `layer_error`): where along the network the error grows.
fn layer_error_plot(exp: &Experiment, records: &[Record]) -> Option<MetricPlot> {
    let axes = exp.axes();
    let mut names: Vec<String> = Vec::new();
    // Per op (by index into `names`): its errors over seeds.
    type Errors = BTreeMap<usize, Vec<f64>>;
    // (point, backend rank) → (label, errors)
    let mut lines: BTreeMap<(usize, usize), (String, Errors)> = BTreeMap::new();
    for r in records {
        for b in r.backends.iter().filter(|b| !b.layers.is_empty()) {
            let swept = axes
                .iter()
                .map(|k| {
                    let short = k.strip_prefix("machine.").unwrap_or(k);
                    format!("{short} = {}", r.values.get(k).map_or(String::new(), value_text))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let label = if swept.is_empty() {
                b.backend.clone()
            } else {
                format!("{} ({swept})", b.backend)
            };
            let line = lines
                .entry((r.point, BackendChoice::rank(&b.backend)))
                .or_insert_with(|| (label, BTreeMap::new()));
            for l in &b.layers {
                let i = names.iter().position(|n| *n == l.name).unwrap_or_else(|| {
                    names.push(l.name.clone());
                    names.len() - 1
                });
                line.1.entry(i).or_default().push(l.error);
            }
        }
    }
    // The ideal machine's errors (rounding, ~1e-16) would squash the noisy lines to
    // the top of a log axis; they are drawn only when nothing else is.
    let noisy = lines.keys().any(|k| k.1 != BackendChoice::rank("ideal"));
    let series: Vec<Series> = lines
        .into_iter()
        .filter(|(k, _)| !noisy || k.1 != BackendChoice::rank("ideal"))
        .map(|(_, line)| line)
        .map(|(label, ops)| Series {
            label,
            points: ops
                .into_iter()
                .filter_map(|(i, v)| {
                    let (m, sd) = mean_sd(&v);
                    // A log axis cannot show an exact zero (an op the optics ran exactly).
                    (m > 0.0).then_some((i as f64, m, sd))
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(MetricPlot {
        title: format!("{}: relative error of each optical op", exp.name()),
        x_label: "optical op, in model order".into(),
        y_label: "mean ‖Δy‖/‖y‖".into(),
        log_x: false,
        log_y: true,
        categories: Some(names),
        series,
    })
}

fn model_name(r: &Record) -> String {
    r.config
        .pointer("/model/name")
        .and_then(|v| v.as_str())
        .unwrap_or("model")
        .to_string()
}

/// Latency bars per model, the latency breakdown of the first point of each model
/// (a group per top-level layer), and accuracy against latency.
fn latency_plots(
    exp: &Experiment,
    records: &[Record],
) -> (Option<BarPlot>, Vec<(String, StackPlot)>, Option<ScatterPlot>) {
    let firsts = first_per_point(records);
    let mut per_model: Vec<(String, &Record)> = Vec::new();
    for r in firsts.values() {
        let m = model_name(r);
        if r.latency.is_some() && !per_model.iter().any(|(n, _)| *n == m) {
            per_model.push((m, r));
        }
    }
    if per_model.is_empty() {
        return (None, Vec::new(), None);
    }
    // One bar group per distinct projection: per model, and per batch or machine
    // where those are swept (points with equal projections share a group).
    let mut groups: Vec<(&Record, Vec<(String, f64)>)> = Vec::new();
    for r in firsts.values() {
        let Some(l) = &r.latency else { continue };
        let mut b = vec![("4f machine".to_string(), l.latency_s)];
        b.extend(l.gpus.iter().map(|g| (g.gpu.clone(), g.latency_s)));
        if !groups.iter().any(|(o, ob)| model_name(o) == model_name(r) && *ob == b) {
            groups.push((r, b));
        }
    }
    let batch = |r: &Record| r.latency.as_ref().map_or(0, |l| l.batch);
    let one_batch = groups.iter().all(|(r, _)| batch(r) == batch(groups[0].0));
    let mut labels: Vec<String> = groups
        .iter()
        .map(|(r, _)| {
            if one_batch {
                model_name(r)
            } else {
                format!("{}, batch {}", model_name(r), batch(r))
            }
        })
        .collect();
    let unique = |l: &[String]| l.iter().collect::<std::collections::BTreeSet<_>>().len() == l.len();
    // Otherwise the swept values, in axis order, as few axes as tell them apart.
    let axes = exp.axes();
    let mut x_label = if one_batch {
        "model".to_string()
    } else {
        "model, batch".to_string()
    };
    for k in 1..=axes.len() {
        if unique(&labels) {
            break;
        }
        x_label = axes[..k].join(", ");
        labels = groups
            .iter()
            .map(|(r, _)| {
                axes[..k]
                    .iter()
                    .map(|a| r.values.get(a).map_or(String::new(), value_text))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
    }
    let bars = BarPlot {
        title: if one_batch {
            format!(
                "{}: projected latency per image (batch {})",
                exp.name(),
                batch(groups[0].0)
            )
        } else {
            format!("{}: projected latency per image", exp.name())
        },
        x_label,
        y_label: "seconds per image (log)".into(),
        groups: labels
            .into_iter()
            .zip(groups)
            .map(|(label, (_, b))| (label, b))
            .collect(),
    };
    let stacks = per_model
        .iter()
        .map(|(m, r)| {
            let l = r.latency.as_ref().expect("filtered");
            let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
            for o in &l.ops {
                let parts: Vec<&str> = o.name.split('.').collect();
                let g = if parts.len() >= 2 && parts[1].chars().all(|c| c.is_ascii_digit()) {
                    format!("{}.{}", parts[0], parts[1])
                } else {
                    parts[0].to_string()
                };
                match groups.iter_mut().find(|(n, _)| *n == g) {
                    Some((_, v)) => {
                        v[0] += o.optical_s;
                        v[1] += o.electronic_s;
                    }
                    None => groups.push((g, vec![o.optical_s, o.electronic_s])),
                }
            }
            let file = if per_model.len() == 1 {
                "latency_breakdown".to_string()
            } else {
                format!("latency_breakdown_{}", m.replace(['/', '.', ' '], "_"))
            };
            (
                file,
                StackPlot {
                    title: format!("{m}: projected latency per image by layer on the 4f machine"),
                    y_label: "time per image".into(),
                    parts: vec!["optical (passes, filter changes)".into(), "electronic".into()],
                    bars: groups,
                },
            )
        })
        .collect();
    // Accuracy against latency: each point on the machine, each GPU with the
    // digital accuracy.
    let cells = cells(records);
    let acc = |point: usize, backend: &str| {
        cells
            .iter()
            .find(|c| c.point == point && c.backend == backend)
            .map(|c| mean_sd(&c.accuracy).0)
            .filter(|a| a.is_finite())
    };
    let mut machine_pts = Vec::new();
    let mut gpu_pts: BTreeMap<String, Vec<super::plots::Labelled>> = BTreeMap::new();
    let multi = firsts.len() > 1;
    for (p, r) in &firsts {
        let Some(l) = &r.latency else { continue };
        let label = if multi {
            r.values.values().map(value_text).collect::<Vec<_>>().join(", ")
        } else {
            String::new()
        };
        if let Some(a) = acc(*p, "machine")
            .or_else(|| acc(*p, "surrogate"))
            .or_else(|| acc(*p, "ideal"))
        {
            machine_pts.push((label.clone(), l.latency_s, 100.0 * a));
        }
        if let Some(a) = acc(*p, "digital") {
            for g in &l.gpus {
                // One GPU point per model: the digital result does not change with the machine.
                let e = gpu_pts.entry(g.gpu.clone()).or_default();
                if !e
                    .iter()
                    .any(|x| (x.1 - g.latency_s).abs() <= 1e-12 * g.latency_s && (x.2 - 100.0 * a).abs() < 1e-9)
                {
                    e.push((
                        if per_model.len() > 1 {
                            model_name(r)
                        } else {
                            String::new()
                        },
                        g.latency_s,
                        100.0 * a,
                    ));
                }
            }
        }
    }
    let mut series = Vec::new();
    if !machine_pts.is_empty() {
        series.push(("4f machine (optical accuracy)".to_string(), machine_pts));
    }
    series.extend(gpu_pts.into_iter().map(|(g, v)| (format!("{g} (digital accuracy)"), v)));
    let scatter = (!series.is_empty()).then(|| ScatterPlot {
        title: format!("{}: accuracy against projected latency", exp.name()),
        x_label: "seconds per image (log)".into(),
        y_label: "top-1 accuracy (%)".into(),
        series,
    });
    (Some(bars), stacks, scatter)
}

/// The four planes of one sample, as saved in `planes.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplePlanes {
    /// Machine name.
    pub machine: String,
    /// What was imaged.
    pub what: String,
    /// `[input |E|, Fourier-plane power (dB), output |E|, detected intensity]`,
    /// each `[y][x]`.
    pub planes: Vec<Vec<Vec<f64>>>,
    /// Extent `[x0, x1, y0, y1]` of each plane: mm for the image planes,
    /// cycles/mm for the Fourier plane.
    pub extents: Vec<[f64; 4]>,
}

/// At most this many cells per side in a plane picture.
const MAX_CELLS: usize = 96;

/// `a` block-averaged to at most [`MAX_CELLS`] per side, with the extent of the
/// cells; `crop`: only the bounding box of `crop`'s values above 5 % of its peak
/// (noise below that does not widen the box).
fn shrink(a: &Array2<f64>, pitch: [f64; 2], crop: Option<&Array2<f64>>) -> (Vec<Vec<f64>>, [f64; 4]) {
    let (ny, nx) = a.dim();
    let (mut y0, mut y1, mut x0, mut x1) = (0, ny, 0, nx);
    if let Some(c) = crop {
        let peak = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let on: Vec<(usize, usize)> = c
            .indexed_iter()
            .filter(|(_, v)| v.abs() > 0.05 * peak)
            .map(|(i, _)| i)
            .collect();
        if !on.is_empty() {
            let pad = 4;
            y0 = on.iter().map(|p| p.0).min().expect("non-empty").saturating_sub(pad);
            y1 = (on.iter().map(|p| p.0).max().expect("non-empty") + 1 + pad).min(ny);
            x0 = on.iter().map(|p| p.1).min().expect("non-empty").saturating_sub(pad);
            x1 = (on.iter().map(|p| p.1).max().expect("non-empty") + 1 + pad).min(nx);
            // Square, so the picture keeps its aspect.
            let side = (y1 - y0).max(x1 - x0);
            y1 = (y0 + side).min(ny);
            x1 = (x0 + side).min(nx);
        }
    }
    let side = (y1 - y0).max(x1 - x0);
    let block = side.div_ceil(MAX_CELLS).max(1);
    let mut rows = Vec::new();
    let mut y = y0;
    while y < y1 {
        let mut row = Vec::new();
        let mut x = x0;
        while x < x1 {
            let (ye, xe) = ((y + block).min(y1), (x + block).min(x1));
            let s = a.slice(ndarray::s![y..ye, x..xe]);
            row.push(s.sum() / s.len() as f64);
            x += block;
        }
        rows.push(row);
        y += block;
    }
    // Centred coordinates: sample N/2 is the optical axis.
    let cx = |i: usize| (i as f64 - (nx / 2) as f64) * pitch[1];
    let cy = |j: usize| ((ny / 2) as f64 - j as f64) * pitch[0];
    let ext = [
        cx(x0),
        cx(x0 + rows.first().map_or(0, Vec::len) * block),
        cy(y0 + rows.len() * block),
        cy(y0),
    ];
    (rows, ext)
}

/// The first test image on the first point's machine through a 3×3 Laplacian
/// (edge-detecting) kernel: the four planes.
pub fn sample_planes(c: &ExperimentConfig) -> anyhow::Result<SamplePlanes> {
    let machine = FourF::new(load_machine(&c.machine.name, &c.machine.sets())?)?;
    let data = load_fashion_mnist(&data_dir(c), Split::Test, Some(1))?;
    let image = data.images.index_axis(Axis(0), 0).mapv(f64::from);
    let kernel = ndarray::arr2(&[[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]);
    let jobs = [ConvJob::new(image.view(), kernel.view(), Mode::Same, Op::Convolution)];
    let plan = Planner::new(machine.frame_shape(), PlannerConfig::default()).plan(&jobs)?;
    let (input, kplane) = plan.frame_planes(0, &jobs);
    let mask = machine.program(kplane.view());
    let field = machine.input_field(input.view());
    let [input, _, after, output] = machine.trace_planes(&field, &mask);
    let cfg = machine.config();
    let mm = |p: [f64; 2]| [p[0] * 1e3, p[1] * 1e3];
    // Fourier plane: position x = λ f1 ν, so ν = x / (λ f1), in cycles/mm.
    let lf = cfg.laser.wavelength_m * cfg.lens1.focal_length_m;
    let per_mm = [after.pitch_m[0] / lf * 1e-3, after.pitch_m[1] / lf * 1e-3];
    let power = after.intensity();
    let peak = power.iter().fold(0.0f64, |m, v| m.max(*v)).max(f64::MIN_POSITIVE);
    let db = power.mapv(|v| 10.0 * (v / peak).max(1e-6).log10());
    let mut planes = Vec::new();
    let mut extents = Vec::new();
    let input_abs = input.data.mapv(|v| v.norm());
    let output_abs = output.data.mapv(|v| v.norm());
    // The output planes share the box of where the output's field is strong.
    for (a, pitch, crop) in [
        (input_abs.clone(), mm(input.pitch_m), Some(&input_abs)),
        (db, per_mm, None),
        (output_abs.clone(), mm(output.pitch_m), Some(&output_abs)),
        (output.intensity(), mm(output.pitch_m), Some(&output_abs)),
    ] {
        let (p, e) = shrink(&a, pitch, crop);
        planes.push(p);
        extents.push(e);
    }
    Ok(SamplePlanes {
        machine: cfg.name.clone(),
        what: "test image 0 convolved with a 3×3 Laplacian (same size)".into(),
        planes,
        extents,
    })
}

fn planes_plot(s: &SamplePlanes) -> Planes {
    let titles = [
        ("input plane |E|", "mm", "|E| (a.u.)"),
        ("Fourier plane after the filter", "cycles/mm", "power (dB re peak)"),
        ("output plane |E|", "mm", "|E| (a.u.)"),
        ("output intensity |E|² (camera plane)", "mm", "intensity (a.u.)"),
    ];
    Planes {
        title: format!("{} on `{}`", s.what, s.machine),
        panels: titles
            .iter()
            .zip(&s.planes)
            .zip(&s.extents)
            .map(|(((t, u, v), values), ext)| PlanePanel {
                title: t.to_string(),
                unit: u.to_string(),
                value_label: v.to_string(),
                values: values.clone(),
                extent: *ext,
            })
            .collect(),
    }
}

/// Writes `summary.csv`, `report.md` and the plots into `out`; returns the files
/// and the results table.
pub fn write_outputs(out: &Path, exp: &Experiment, records: &[Record]) -> anyhow::Result<(Vec<PathBuf>, String)> {
    let mut files = Vec::new();
    let summary = out.join("summary.csv");
    write_atomic(&summary, summary_csv(exp, records).as_bytes())?;
    files.push(summary);
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("cannot create {}", plots.display()))?;
    let mut pictures: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut add = |title: &str, f: Vec<PathBuf>| pictures.push((title.to_string(), f));
    for (file, p) in metric_plots(exp, records) {
        let title = p.title.clone();
        add(&title, render(&plots.join(file), &p)?);
    }
    if let Some(p) = layer_error_plot(exp, records) {
        add(&p.title.clone(), render(&plots.join("layer_error"), &p)?);
    }
    let (bars, stacks, scatter) = latency_plots(exp, records);
    if let Some(b) = bars {
        add(&b.title.clone(), render(&plots.join("latency_bars"), &b)?);
    }
    for (file, s) in stacks {
        add(&s.title.clone(), render(&plots.join(file), &s)?);
    }
    if let Some(s) = scatter {
        add(&s.title.clone(), render(&plots.join("accuracy_vs_latency"), &s)?);
    }
    // The sample planes: computed once, then redrawn from planes.json.
    let planes_file = out.join(PLANES);
    let planes: Option<SamplePlanes> = match std::fs::read_to_string(&planes_file) {
        Ok(t) => {
            Some(serde_json::from_str(&t).with_context(|| format!("{}: not sample planes", planes_file.display()))?)
        }
        Err(_) => match records.first() {
            Some(r) => {
                let c: ExperimentConfig =
                    serde_json::from_value(r.config.clone()).context("a record's config does not load")?;
                let s = sample_planes(&c).context("sample planes")?;
                write_atomic(
                    &planes_file,
                    serde_json::to_string(&s).expect("planes serialise").as_bytes(),
                )?;
                Some(s)
            }
            None => None,
        },
    };
    if let Some(s) = &planes {
        let p = planes_plot(s);
        add(&p.title.clone(), render(&plots.join("planes"), &p)?);
        files.push(planes_file);
    }
    for (_, f) in &pictures {
        files.extend(f.iter().cloned());
    }
    let table = results_table(exp, records);
    let total = exp.points.len() * exp.config.seeds.len();
    let mut md = format!(
        "# Experiment `{}`\n\nfourf {} · {} of {total} point×seed runs in `{}` · config hash `{}`\n\n",
        exp.name(),
        env!("CARGO_PKG_VERSION"),
        records.len(),
        super::runner::RESULTS,
        exp.hash()
    );
    if let Some(r) = records.first() {
        if let Ok(c) = serde_json::from_value::<ExperimentConfig>(r.config.clone()) {
            if let Ok(m) = load_machine(&c.machine.name, &c.machine.sets()) {
                let _ = writeln!(
                    md,
                    "## Machine (point {})\n\n`{}`: {}\n",
                    r.point,
                    c.machine.name,
                    crate::conv_cmd::machine_summary(&m)
                );
            }
        }
    }
    let _ = writeln!(md, "## Results\n\nMean ± sd over seeds.\n\n{table}");
    md += &latency_table(exp, records);
    md += "## Plots\n\n";
    for (title, paths) in &pictures {
        let rel = paths[0].strip_prefix(out).unwrap_or(&paths[0]);
        let _ = writeln!(md, "![{title}]({})\n", rel.display());
    }
    let _ = writeln!(md, "## Config\n\n```toml\n{}```", exp.to_toml());
    let report = out.join("report.md");
    write_atomic(&report, md.as_bytes())?;
    files.push(report);
    files.push(out.join(super::runner::RESULTS));
    Ok((files, table))
}
