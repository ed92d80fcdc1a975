//! The SLM model against its physics: quantisation error statistics, measured level
//! tables, the fill-factor envelope in the Fourier plane, pixel crosstalk, and the
//! identities between `render` and `response`.

use std::f64::consts::{PI, TAU};
use std::path::PathBuf;

use fourf_sim::devices::slm::{Modulation, Slm, SlmConfig};
use fourf_sim::fft::Fft2;
use fourf_sim::SimError;
use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn slm(config: SlmConfig) -> Slm {
    Slm::new(config, "test_slm").expect("valid SLM")
}

fn kind(modulation: Modulation, bits: Option<u32>) -> SlmConfig {
    SlmConfig {
        modulation,
        bits,
        ..SlmConfig::default()
    }
}

/// Wraps an angle to `[−π, π]`.
fn wrap_pi(x: f64) -> f64 {
    x - TAU * (x / TAU).round()
}

/// A uniformly random point of the unit disk.
fn in_disk(rng: &mut StdRng) -> C64 {
    loop {
        let t = C64::new(2.0 * rng.random::<f64>() - 1.0, 2.0 * rng.random::<f64>() - 1.0);
        if t.norm() <= 1.0 {
            return t;
        }
    }
}

fn random_pixels(rows: usize, cols: usize, scale: f64, seed: u64) -> Array2<C64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| in_disk(&mut rng) * scale)
}

/// Writes `text` to a fresh file in the temporary directory.
fn temp_csv(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("fourf_slm_{}_{name}.csv", std::process::id()));
    std::fs::write(&path, text).expect("write temporary CSV");
    path
}

/// Unbiased sample mean and variance.
fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

#[test]
fn phase_quantisation_error_is_uniform_within_half_a_step() {
    let m = 200_000;
    let mut rng = StdRng::seed_from_u64(11);
    for n in 1..=8u32 {
        let slm = slm(kind(Modulation::Phase, Some(n)));
        let delta = TAU / (1u64 << n) as f64; // the phase step
        let errors: Vec<f64> = (0..m)
            .map(|_| {
                let phi = rng.random::<f64>() * TAU;
                // The target's amplitude is irrelevant to a phase-only SLM.
                let r = slm.response(C64::from_polar(rng.random::<f64>(), phi));
                assert!((r.norm() - 1.0).abs() < 1e-15, "phase-only response {r}");
                wrap_pi(r.arg() - phi)
            })
            .collect();
        let max = errors.iter().fold(0.0f64, |a, e| a.max(e.abs()));
        assert!(max <= PI / (1u64 << n) as f64 + 1e-12, "n = {n}: |error| {max} > π/2^n");
        // Error ~ U(−Δ/2, Δ/2): σ² = Δ²/12, μ4 = Δ⁴/80. Sample mean: Var = σ²/m.
        // Unbiased sample variance s²: Var(s²) = μ4/m − σ⁴(m−3)/(m(m−1)).
        let (mean, var) = mean_var(&errors);
        let mf = m as f64;
        let sigma2 = delta * delta / 12.0;
        let mu4 = delta.powi(4) / 80.0;
        let sd_mean = (sigma2 / mf).sqrt();
        let sd_var = (mu4 / mf - sigma2 * sigma2 * (mf - 3.0) / (mf * (mf - 1.0))).sqrt();
        println!(
            "phase n = {n}: max|e|/(Δ/2) = {:.6}, mean = {:+.2} σ_mean, var/(Δ²/12) = {:.5} ({:+.2} σ_var)",
            max / (delta / 2.0),
            mean / sd_mean,
            var / sigma2,
            (var - sigma2) / sd_var
        );
        assert!(
            mean.abs() <= 3.0 * sd_mean,
            "n = {n}: mean {mean} beyond 3σ = {}",
            3.0 * sd_mean
        );
        assert!(
            (var - sigma2).abs() <= 3.0 * sd_var,
            "n = {n}: variance {var} vs Δ²/12 = {sigma2}, 3σ = {}",
            3.0 * sd_var
        );
    }
}

#[test]
fn amplitude_two_slm_binary_and_complex_quantisation() {
    let mut rng = StdRng::seed_from_u64(12);
    let targets: Vec<C64> = (0..20_000).map(|_| in_disk(&mut rng)).collect();
    for n in 1..=8u32 {
        let levels = (1u64 << n) as f64;
        let half_amp = 0.5 / (levels - 1.0);
        let half_phase = PI / levels;
        let amp = slm(kind(Modulation::Amplitude, Some(n)));
        let two = slm(kind(Modulation::TwoSlm, Some(n)));
        let (mut worst_amp, mut worst_two_a, mut worst_two_p) = (0.0f64, 0.0f64, 0.0f64);
        for &t in &targets {
            let r = amp.response(t);
            assert_eq!(r.im, 0.0, "amplitude SLM gave {r}");
            let k = r.re * (levels - 1.0);
            assert!((k - k.round()).abs() < 1e-9, "{r} is not a level of {n} bits");
            worst_amp = worst_amp.max((r.re - t.re.clamp(0.0, 1.0)).abs());
            let r = two.response(t);
            worst_two_a = worst_two_a.max((r.norm() - t.norm()).abs());
            if r.norm() > 0.0 {
                worst_two_p = worst_two_p.max(wrap_pi(r.arg() - t.arg()).abs());
            }
        }
        println!(
            "n = {n}: amplitude |err|/half-step = {:.6}; two_slm |A| {:.6}, arg {:.6}",
            worst_amp / half_amp,
            worst_two_a / half_amp,
            worst_two_p / half_phase
        );
        assert!(worst_amp <= half_amp + 1e-12, "amplitude n = {n}: {worst_amp}");
        assert!(
            worst_two_a <= half_amp + 1e-12,
            "two_slm amplitude n = {n}: {worst_two_a}"
        );
        assert!(
            worst_two_p <= half_phase + 1e-12,
            "two_slm phase n = {n}: {worst_two_p}"
        );
    }
    // Beyond the unit circle the target is scaled back onto it first.
    let amp = slm(kind(Modulation::Amplitude, Some(8)));
    assert!((amp.response(C64::new(3.0, 4.0)).re - 0.6).abs() <= 0.5 / 255.0);

    for bits in [None, Some(1)] {
        let bin = slm(kind(Modulation::Binary, bits));
        assert_eq!(bin.levels(), Some(2));
        for &t in &targets {
            let r = bin.response(t);
            let want = if t.re >= 0.5 { 1.0 } else { 0.0 };
            assert!(r.re == want && r.im == 0.0, "binary response {r} to {t}");
        }
    }

    let ideal = slm(kind(Modulation::Complex, None));
    for &t in &targets {
        assert!(ideal.response(t) == t, "complex modulation must be exact: {t}");
    }
    let far = C64::new(-3.0, 4.0);
    assert!((ideal.response(far) - far / 5.0).norm() < 1e-15);

    // Continuous phase-only: exactly exp(i arg t).
    let phase = slm(kind(Modulation::Phase, None));
    for &t in &targets[..1000] {
        let r = phase.response(t);
        assert!((r - C64::from_polar(1.0, t.arg())).norm() < 1e-14, "{t} → {r}");
    }
}

/// A 5-level calibration of a phase LCoS: the phase grows nonlinearly with the
/// drive (steps 0.71, 1.17, 1.42, 1.65 rad, as a liquid crystal's response to
/// voltage does) and the reflectance ripples between 0.91 and 0.98.
const LCOS_TABLE: &str = "level,amplitude,phase_rad
0,0.97,0.00
1,0.93,0.71
2,0.98,1.88
3,0.91,3.30
4,0.95,4.95
";

fn table_rows(text: &str) -> Vec<C64> {
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<f64> = l.split(',').map(|v| v.trim().parse().unwrap()).collect();
            C64::from_polar(c[1], c[2])
        })
        .collect()
}

#[test]
fn measured_level_table_is_honoured() {
    let path = temp_csv("lcos", LCOS_TABLE);
    let rows = table_rows(LCOS_TABLE);
    let with_table = |modulation| {
        slm(SlmConfig {
            modulation,
            levels_csv: Some(path.display().to_string()),
            ..SlmConfig::default()
        })
    };
    let mut rng = StdRng::seed_from_u64(13);
    let targets: Vec<C64> = (0..5000).map(|_| in_disk(&mut rng)).collect();
    for modulation in [Modulation::Phase, Modulation::Amplitude, Modulation::TwoSlm] {
        let s = with_table(modulation);
        assert_eq!(s.levels(), Some(5));
        let mut used = [0usize; 5];
        for &t in &targets {
            let r = s.response(t);
            // Exact identity, not a tolerance: the table is the set of responses.
            let k = rows.iter().position(|row| *row == r);
            let k = k.unwrap_or_else(|| panic!("{modulation:?}: response {r} to {t} is not a table row"));
            assert_eq!(s.drive(t), [k as f64, 0.0]);
            used[k] += 1;
        }
        println!("{modulation:?} with the 5-level table: rows used {used:?}");
    }

    // Phase: nearest in phase, on the circle (4.95 rad is 1.33 rad from 2π ≡ 0).
    let phase = with_table(Modulation::Phase);
    for (phi, want) in [(0.3, 0), (0.4, 1), (2.55, 2), (2.6, 3), (5.5, 4), (5.7, 0), (-0.5, 0)] {
        let got = phase.drive(C64::from_polar(0.2, phi))[0];
        assert_eq!(got, want as f64, "phase {phi}: level {got}, expected {want}");
    }
    // Amplitude: nearest in amplitude to clamp(Re t, 0, 1).
    let amp = with_table(Modulation::Amplitude);
    for (t, want) in [(0.95, 4), (0.925, 1), (0.5, 3), (1.0, 2), (-0.7, 3)] {
        let got = amp.drive(C64::new(t, 0.1))[0];
        assert_eq!(got, want as f64, "amplitude {t}: level {got}, expected {want}");
    }
    // two_slm: nearest in the complex plane. 0.95·e^{1.3i} is 0.547 from row 1 and
    // 0.553 from row 2; the origin is nearest to the smallest amplitude (row 3).
    let two = with_table(Modulation::TwoSlm);
    assert_eq!(two.drive(C64::from_polar(0.95, 1.3))[0], 1.0);
    assert_eq!(two.drive(C64::new(0.0, 0.0))[0], 3.0);
    // A fractional drive interpolates amplitude and phase between its rows.
    let mid = phase.response_of_drive([1.5, 0.0]);
    assert!((mid - C64::from_polar(0.955, 1.295)).norm() < 1e-15, "{mid}");

    // A DMD with measured contrast: off leaks 2 %, on reflects 96 % with a tilt phase.
    let dmd_path = temp_csv("dmd", "level,amplitude,phase_rad\n0,0.02,0.0\n1,0.96,0.1\n");
    let dmd = slm(SlmConfig {
        modulation: Modulation::Binary,
        levels_csv: Some(dmd_path.display().to_string()),
        ..SlmConfig::default()
    });
    assert_eq!(dmd.response(C64::new(0.5, 0.0)), C64::from_polar(0.96, 0.1));
    assert_eq!(dmd.response(C64::new(0.45, 0.0)), C64::from_polar(0.02, 0.0));
    std::fs::remove_file(path).ok();
    std::fs::remove_file(dmd_path).ok();
}

#[test]
fn bad_level_tables_name_the_key_the_file_and_the_line() {
    let header = "level,amplitude,phase_rad\n";
    // (name, contents, the line the error must name, modulation, bits)
    let cases = [
        (
            "header",
            "level,amp,phase\n0,1,0\n".to_string(),
            Some("line 1"),
            Modulation::Phase,
            None,
        ),
        (
            "nonnumeric",
            format!("{header}0,1,0\n1,0.9,abc\n"),
            Some("line 3"),
            Modulation::Phase,
            None,
        ),
        (
            "negative",
            format!("{header}0,1,0\n1,1,1\n2,-0.1,2\n"),
            Some("line 4"),
            Modulation::Phase,
            None,
        ),
        ("empty", header.to_string(), Some("line 1"), Modulation::Phase, None),
        (
            "order",
            format!("{header}0,1,0\n2,1,1\n"),
            Some("line 3"),
            Modulation::Phase,
            None,
        ),
        ("bits", LCOS_TABLE.to_string(), None, Modulation::Phase, Some(2)),
        (
            "binary3",
            format!("{header}0,0,0\n1,1,0\n2,1,1\n"),
            None,
            Modulation::Binary,
            None,
        ),
    ];
    for (name, text, line, modulation, bits) in cases {
        let path = temp_csv(name, &text);
        let config = SlmConfig {
            modulation,
            bits,
            levels_csv: Some(path.display().to_string()),
            ..SlmConfig::default()
        };
        let e = Slm::new(config, "filter_slm").expect_err(name);
        let msg = e.to_string();
        println!("{name}: {msg}");
        match &e {
            SimError::InvalidConfig { key, value, valid } => {
                assert_eq!(key, "filter_slm.levels_csv", "{msg}");
                assert_eq!(value, &path.display().to_string(), "{msg}");
                if let Some(line) = line {
                    assert!(valid.contains(line), "{name}: `{valid}` should say {line}");
                }
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
        std::fs::remove_file(path).ok();
    }
    let missing = std::env::temp_dir().join("fourf_slm_no_such_table.csv");
    let e = Slm::new(
        SlmConfig {
            modulation: Modulation::Phase,
            levels_csv: Some(missing.display().to_string()),
            ..SlmConfig::default()
        },
        "filter_slm",
    )
    .unwrap_err()
    .to_string();
    println!("missing: {e}");
    assert!(
        e.contains("filter_slm.levels_csv") && e.contains("fourf_slm_no_such_table.csv"),
        "{e}"
    );
}

/// `|sin(π w k/N) / (w sin(π k/N))|`: the DFT magnitude of a box of `w` samples in
/// `N`, normalised to 1 at DC (the Dirichlet kernel).
fn dirichlet(w: usize, k: usize, n: usize) -> f64 {
    if k.is_multiple_of(n) {
        return 1.0;
    }
    let x = PI * k as f64 / n as f64;
    ((w as f64 * x).sin() / (w as f64 * x.sin())).abs()
}

fn fft2(mut a: Array2<C64>) -> Array2<C64> {
    let (ny, nx) = a.dim();
    let plan = Fft2::new(ny, nx);
    let mut scratch = plan.make_scratch(false);
    plan.forward(a.as_slice_mut().expect("standard layout"), &mut scratch);
    a
}

#[test]
fn fill_factor_gives_the_box_envelope_in_the_fourier_plane() {
    let (s, fill) = (8, 0.5625); // w = round(8·0.75) = 6 samples
    let slm = slm(SlmConfig {
        fill_factor: fill,
        ..SlmConfig::default()
    });
    let w = 6;
    assert!((slm.effective_fill_factor(s) - 0.5625).abs() < 1e-15);
    let mut px = Array2::<C64>::zeros((16, 16));
    px[[5, 9]] = C64::new(1.0, 0.0);
    let field = slm.render(px.view(), s);
    let n = 16 * s;
    assert!((field.iter().map(|v| v.re).sum::<f64>() - (w * w) as f64).abs() < 1e-12);
    let spec = fft2(field);
    let dc = (w * w) as f64;
    let mut worst = 0.0f64;
    for ky in 0..n {
        for kx in 0..n {
            let want = dirichlet(w, ky, n) * dirichlet(w, kx, n);
            worst = worst.max((spec[[ky, kx]].norm() / dc - want).abs());
        }
    }
    println!("single pixel, F = {fill}, s = {s}: max |DFT/DC − Dirichlet| = {worst:.2e}");
    assert!(worst < 1e-10, "{worst}");

    // The continuous envelope |sinc(π a ν)|, a = wΔ, ν = k/(NΔ): below the first zero
    // (k < N/w) the discrete kernel exceeds it by the factor x/sin x, x = πk/N, at most
    // (π/w)/sin(π/w) − 1 = 4.7 % relative for w = 6, and < 1 % of DC in absolute terms.
    let (mut worst_abs, mut worst_rel) = (0.0f64, 0.0f64);
    for k in 1..n.div_ceil(w) {
        if k * w >= n {
            break;
        }
        let u = PI * (w * k) as f64 / n as f64;
        let sinc = (u.sin() / u).abs();
        let got = spec[[0, k]].norm() / dc;
        let x = PI * k as f64 / n as f64;
        let predicted = sinc * (x / x.sin() - 1.0);
        assert!((got - sinc - predicted).abs() < 1e-10, "k = {k}: {got} vs sinc {sinc}");
        worst_abs = worst_abs.max((got - sinc).abs());
        worst_rel = worst_rel.max((got - sinc).abs() / sinc);
    }
    println!("vs continuous sinc below the first zero: max abs {worst_abs:.4}, max rel {worst_rel:.4}");
    assert!(worst_abs < 0.01, "{worst_abs}");
}

#[test]
fn rendered_spectrum_is_pixel_spectrum_times_box_envelope() {
    // For any pattern, rendered = Σ_p x_p·box(n − p s), so its N-point DFT is the
    // pixel pattern's DFT (periodic in k) times the box's: exact, no averaging needed.
    let (rows, cols, s) = (8, 12, 8);
    let slm = slm(SlmConfig {
        fill_factor: 0.5625,
        ..SlmConfig::default()
    });
    let w = 6;
    let px = random_pixels(rows, cols, 1.0, 14);
    let spec = fft2(slm.render(px.view(), s));
    let pspec = fft2(px.clone());
    let (ny, nx) = (rows * s, cols * s);
    let peak = spec.iter().fold(0.0f64, |a, v| a.max(v.norm()));
    let mut worst = 0.0f64;
    for ky in 0..ny {
        for kx in 0..nx {
            let want =
                pspec[[ky % rows, kx % cols]].norm() * (w * w) as f64 * dirichlet(w, ky, ny) * dirichlet(w, kx, nx);
            worst = worst.max((spec[[ky, kx]].norm() - want).abs());
        }
    }
    println!(
        "random {rows}×{cols} pattern: max |R − X·B| / max|R| = {:.2e}",
        worst / peak
    );
    assert!(worst / peak < 1e-12, "{worst}");
}

#[test]
fn crosstalk_blurs_a_pixel_into_a_gaussian() {
    for (sigma_px, s) in [(0.25, 8), (0.5, 8), (1.0, 4), (0.5, 2)] {
        // Continuous amplitude: the response is the (blurred) drive itself.
        let slm = slm(SlmConfig {
            modulation: Modulation::Amplitude,
            crosstalk_px: sigma_px,
            ..SlmConfig::default()
        });
        let p = 15;
        let mut px = Array2::<C64>::zeros((p, p));
        px[[7, 7]] = C64::new(1.0, 0.0);
        let out = slm.render(px.view(), s);
        let n = p * s;
        let total: f64 = out.iter().map(|v| v.re).sum();
        assert!((total - (s * s) as f64).abs() < 1e-9, "sum {total}, expected {}", s * s);
        let mx: Vec<f64> = (0..n).map(|x| out.column(x).iter().map(|v| v.re).sum()).collect();
        let my: Vec<f64> = (0..n).map(|y| out.row(y).iter().map(|v| v.re).sum()).collect();
        // Separable: the 2-D profile is the outer product of its marginals.
        let mut sep = 0.0f64;
        for y in 0..n {
            for x in 0..n {
                sep = sep.max((out[[y, x]].re * total - my[y] * mx[x]).abs());
            }
        }
        assert!(sep < 1e-9, "not separable: {sep}");
        // A box of s samples (variance (s²−1)/12) convolved with a Gaussian of σ·s
        // samples: variance σ²s² + (s²−1)/12.
        let centre = 7.0 * s as f64 + (s as f64 - 1.0) / 2.0;
        for (axis, m) in [("x", &mx), ("y", &my)] {
            let mean = m.iter().enumerate().map(|(i, v)| i as f64 * v).sum::<f64>() / total;
            let var = m
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64 - mean).powi(2) * v)
                .sum::<f64>()
                / total;
            let width = (var - ((s * s) as f64 - 1.0) / 12.0).sqrt();
            let want = sigma_px * s as f64;
            println!(
                "crosstalk σ = {sigma_px} px, s = {s}, {axis}: sum − s² = {:+.1e}, centre {mean:.6} \
                 (expected {centre}), width {width:.6} samples (expected {want}, rel. error {:+.1e})",
                total - (s * s) as f64,
                width / want - 1.0
            );
            assert!((mean - centre).abs() < 1e-9);
            assert!((width / want - 1.0).abs() < 0.02, "width {width} vs {want}");
        }
    }
}

#[test]
fn zero_crosstalk_is_the_blur_free_path() {
    let (rows, cols, s) = (9, 14, 4);
    let px = random_pixels(rows, cols, 1.0, 15);
    let base = SlmConfig {
        modulation: Modulation::Phase,
        bits: Some(8),
        fill_factor: 0.7, // w = round(4·0.837) = 3
        ..SlmConfig::default()
    };
    let sharp = slm(base.clone());
    let out = sharp.render(px.view(), s);
    let w = 3;
    assert!((sharp.effective_fill_factor(s) - 9.0 / 16.0).abs() < 1e-15);
    let open = |r: usize| (0..w).contains(&(r.wrapping_sub((s - w) / 2)));
    for ((y, x), v) in out.indexed_iter() {
        let want = if open(y % s) && open(x % s) {
            sharp.response(px[[y / s, x / s]])
        } else {
            C64::new(0.0, 0.0)
        };
        assert!(*v == want, "({y}, {x}): {v} vs {want}");
    }
    // The blur path with a vanishing σ lands on the same samples.
    let faint = slm(SlmConfig {
        crosstalk_px: 1e-3,
        ..base
    });
    let blurred = faint.render(px.view(), s);
    let diff = (&blurred - &out).iter().fold(0.0f64, |a, v| a.max(v.norm()));
    println!("crosstalk 1e-3 px vs none: max difference {diff:.1e}");
    assert!(diff < 1e-12, "{diff}");
}

#[test]
fn render_at_one_sample_per_pixel_is_response_per_pixel() {
    let path = temp_csv("render_lcos", LCOS_TABLE);
    let px = random_pixels(10, 7, 1.3, 16); // some targets beyond |t| = 1
    let configs = [
        kind(Modulation::Complex, None),
        kind(Modulation::Amplitude, Some(3)),
        kind(Modulation::Amplitude, None),
        kind(Modulation::Phase, Some(5)),
        kind(Modulation::Phase, None),
        kind(Modulation::TwoSlm, Some(4)),
        kind(Modulation::TwoSlm, None),
        kind(Modulation::Binary, None),
        SlmConfig {
            modulation: Modulation::Phase,
            levels_csv: Some(path.display().to_string()),
            ..SlmConfig::default()
        },
    ];
    for c in configs {
        let slm = slm(c);
        let out = slm.render(px.view(), 1);
        assert_eq!(out.dim(), px.dim());
        for (o, t) in out.iter().zip(px.iter()) {
            assert!(
                *o == slm.response(*t),
                "{:?}: {o} vs {}",
                slm.config().modulation,
                slm.response(*t)
            );
        }
    }
    std::fs::remove_file(path).ok();
}

#[test]
fn full_panel_render_shape_and_time() {
    // Not a timed assertion (performance targets live in benchmarks); reported only.
    let px = random_pixels(1024, 1024, 1.0, 17);
    for crosstalk_px in [0.0, 0.3] {
        let slm = slm(SlmConfig {
            modulation: Modulation::Phase,
            bits: Some(8),
            fill_factor: 0.93,
            crosstalk_px,
            ..SlmConfig::default()
        });
        let t0 = std::time::Instant::now();
        let out = slm.render(px.view(), 2);
        println!(
            "1024×1024 pixels at s = 2, crosstalk {crosstalk_px} px: {:.1} ms on {} threads",
            t0.elapsed().as_secs_f64() * 1e3,
            rayon::current_num_threads()
        );
        assert_eq!(out.dim(), (2048, 2048));
    }
}
