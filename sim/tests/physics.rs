//! The simulator against analytic physics.

use fourf_sim::fft::Fft2;
use fourf_sim::lens::lens_transform;
use fourf_sim::propagation::AngularSpectrum;
use fourf_sim::pupil::circle_coverage;
use fourf_sim::{Field, FourF, MachineConfig};
use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const PI: f64 = std::f64::consts::PI;

/// First zero of J1 divided by π: the Airy first dark ring is at 1.21967 λf/D.
const AIRY_FIRST_ZERO: f64 = 3.831_705_970_207_512 / PI;

fn random_field(n: usize, seed: u64) -> Array2<C64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((n, n), |_| {
        C64::new(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5)
    })
}

/// A frame-sized kernel plane holding a unit impulse at the origin: the all-pass filter.
fn impulse_kernel(n: usize) -> Array2<f64> {
    let mut k = Array2::zeros((n, n));
    k[[0, 0]] = 1.0;
    k
}

/// Runs one frame and returns the physical output field.
fn run(machine: &FourF, input: &Array2<C64>, kernel: &Array2<f64>) -> Field {
    let mask = machine.program(kernel.view());
    let mut s = machine.make_scratch(true);
    machine.run_frame(input.as_slice().unwrap(), &mask, &mut s);
    machine.output_field(&s)
}

fn point_input(n: usize) -> Array2<C64> {
    let mut x = Array2::zeros((n, n));
    x[[n / 2, n / 2]] = C64::new(1.0, 0.0);
    x
}

#[test]
fn all_pass_4f_returns_the_point_reflected_input_with_power_conserved() {
    for f2 in [0.1, 0.2, 0.05] {
        let n = 64;
        let mut cfg = MachineConfig::ideal(n);
        cfg.lens2.focal_length_m = f2;
        let machine = FourF::new(cfg.clone()).unwrap();
        let x = random_field(n, 1);
        let input = Field::new(x.clone(), machine.input_pitch_m(), cfg.wavelength_m());
        let out = run(&machine, &x, &impulse_kernel(n));
        let m = -cfg.lens1.focal_length_m / f2;
        let mut err: f64 = 0.0;
        for ((i, j), v) in out.data.indexed_iter() {
            // Point reflection about the axis sample (n/2, n/2): i ↦ n − i.
            let want = x[[(n - i) % n, (n - j) % n]] * m;
            err = err.max((v - want).norm());
        }
        assert!(err < 1e-12, "f2 = {f2}: max deviation {err}");
        assert!((out.pitch_m[0] - 8e-6 * f2 / 0.1).abs() < 1e-18);
        let rel = (out.power() - input.power()).abs() / input.power();
        assert!(rel < 1e-6, "f2 = {f2}: power changed by {rel:e}");
    }
}

#[test]
fn parseval_through_lens_mask_and_propagation() {
    let n = 128;
    let cfg = MachineConfig::ideal(n);
    let plan = Fft2::new(n, n);
    let mut s = plan.make_scratch(true);
    let u = Field::new(random_field(n, 2), [8e-6, 8e-6], cfg.wavelength_m());
    let f = lens_transform(&u, 0.1, &plan, &mut s);
    assert!((f.pitch_m[0] - 532e-9 * 0.1 / (n as f64 * 8e-6)).abs() < 1e-18);
    assert!((f.power() - u.power()).abs() < 1e-12 * u.power(), "lens");
    // Every plane of a machine with a stop: power in = Fourier power; after the
    // mask = output power.
    let mut cfg = MachineConfig::ideal(n);
    cfg.pupil.radius_m = Some(20.0 * 532e-9 * 0.1 / (n as f64 * 8e-6));
    let machine = FourF::new(cfg).unwrap();
    let mask = machine.program(impulse_kernel(n).view());
    let [input, before, after, output] = machine.trace_planes(&u, &mask);
    assert!((before.power() - input.power()).abs() < 1e-12 * input.power());
    assert!(after.power() < 0.5 * before.power(), "the stop removes light");
    assert!((output.power() - after.power()).abs() < 1e-12 * after.power());
    // Angular spectrum on a periodic window (no padding) with a band-limited
    // field: unitary.
    let mut spec = u.data.clone();
    let mut sc = plan.make_scratch(true);
    plan.forward(spec.as_slice_mut().unwrap(), &mut sc);
    for ((i, j), v) in spec.indexed_iter_mut() {
        let (a, b) = ((i.min(n - i)) as f64, (j.min(n - j)) as f64);
        if a * a + b * b > 20.0 * 20.0 {
            *v = C64::new(0.0, 0.0);
        }
    }
    plan.inverse(spec.as_slice_mut().unwrap(), &mut sc);
    let band = Field::new(spec, [8e-6, 8e-6], 532e-9);
    let prop = AngularSpectrum::new((n, n), [8e-6, 8e-6], 532e-9, 3e-3, false);
    let moved = prop.apply(&band, &mut prop.make_scratch());
    assert!(
        (moved.power() - band.power()).abs() < 1e-10 * band.power(),
        "angular spectrum"
    );
    assert!(
        (&moved.data - &band.data).iter().map(|v| v.norm()).sum::<f64>() > 1e-3,
        "it did propagate"
    );
}

/// Radius of the first zero crossing of `line` (a real profile from the centre
/// outward), linearly interpolated, in samples.
fn first_zero(line: &[f64]) -> f64 {
    for i in 1..line.len() {
        if line[i].signum() != line[0].signum() {
            let (a, b) = (line[i - 1], line[i]);
            return (i - 1) as f64 + a / (a - b);
        }
    }
    panic!("no zero crossing");
}

#[test]
fn airy_first_dark_ring_at_1_22_lambda_f_over_d() {
    let n = 512;
    for (radius_samples, f2) in [(20.3, 0.1), (13.7, 0.1), (20.3, 0.15)] {
        let mut cfg = MachineConfig::ideal(n);
        cfg.lens2.focal_length_m = f2;
        let du = cfg.wavelength_m() * cfg.lens1.focal_length_m / (n as f64 * cfg.input_slm.pitch_m.unwrap());
        let a = radius_samples * du;
        cfg.pupil.radius_m = Some(a);
        let machine = FourF::new(cfg.clone()).unwrap();
        let out = run(&machine, &point_input(n), &impulse_kernel(n));
        let c = n / 2;
        let want = AIRY_FIRST_ZERO * cfg.wavelength_m() * f2 / (2.0 * a);
        for (dy, dx) in [(0, 1), (1, 0)] {
            let line: Vec<f64> = (0..n / 4).map(|r| out.data[[c + r * dy, c + r * dx]].re).collect();
            let r0 = first_zero(&line) * out.pitch_m[0];
            let rel = (r0 - want).abs() / want;
            eprintln!("Airy: a = {radius_samples} Δu, f2 = {f2}: first zero {r0:.4e} m, 1.2197λf/D = {want:.4e} m, rel. error {rel:.2e}");
            assert!(
                rel < 0.01,
                "a = {radius_samples} du, f2 = {f2}: zero at {r0:e} m, Airy {want:e} m ({rel:.4})"
            );
        }
    }
}

#[test]
fn coherent_cutoff_passes_a_grating_just_inside_and_removes_one_just_outside() {
    let n = 256;
    let mut cfg = MachineConfig::ideal(n);
    let (wl, f, dx) = (
        cfg.wavelength_m(),
        cfg.lens1.focal_length_m,
        cfg.input_slm.pitch_m.unwrap(),
    );
    let a = 30.5 * wl * f / (n as f64 * dx);
    cfg.pupil.radius_m = Some(a);
    let machine = FourF::new(cfg).unwrap();
    let cutoff = a / (wl * f); // cycles per metre
    for (k, passes) in [(29usize, true), (32, false), (10, true), (60, false)] {
        let nu = k as f64 / (n as f64 * dx);
        for along_y in [false, true] {
            let x = Array2::from_shape_fn((n, n), |(i, j)| {
                let p = if along_y { i } else { j } as f64 * dx;
                C64::new((2.0 * PI * nu * p).cos(), 0.0)
            });
            let pin: f64 = x.iter().map(|v| v.norm_sqr()).sum();
            let out = run(&machine, &x, &impulse_kernel(n));
            let pout: f64 = out.data.iter().map(|v| v.norm_sqr()).sum();
            let ratio = pout / pin;
            if passes {
                assert!(
                    nu < cutoff && (ratio - 1.0).abs() < 1e-9,
                    "ν = {:.3} cutoff: ratio {ratio}",
                    nu / cutoff
                );
            } else {
                assert!(
                    nu > cutoff && ratio < 1e-20,
                    "ν = {:.3} cutoff: ratio {ratio}",
                    nu / cutoff
                );
            }
        }
    }
}

/// Intensity centroid `[y, x]` in metres relative to the axis.
fn centroid(f: &Field) -> [f64; 2] {
    let (mut sy, mut sx, mut s) = (0.0, 0.0, 0.0);
    for ((i, j), v) in f.data.indexed_iter() {
        let w = v.norm_sqr();
        sy += w * f.coord_m(0, i);
        sx += w * f.coord_m(1, j);
        s += w;
    }
    [sy / s, sx / s]
}

#[test]
fn lateral_filter_shift_tilts_the_output_by_d_over_f() {
    // A Gaussian low-pass kernel; the filter SLM shifted by an integer number of
    // Fourier samples d. Prediction (Fourier shift theorem): for a point on the
    // axis the output is multiplied by exp(−i2π d x/(λ f2)), a tilt of −d/f2 rad,
    // so that after a further distance z the light has moved by −d·z/f2.
    let n = 256;
    let base = MachineConfig::ideal(n);
    let du = base.wavelength_m() * base.lens1.focal_length_m / (n as f64 * base.input_slm.pitch_m.unwrap());
    // σ = 3 samples: the transfer function falls to e⁻⁴⁴ at the filter's edge, so
    // no light is lost or gained off the edge of the shifted filter.
    let sigma = 3.0; // samples
    let kernel = Array2::from_shape_fn((n, n), |(i, j)| {
        let (a, b) = ((i.min(n - i)) as f64, (j.min(n - j)) as f64);
        (-(a * a + b * b) / (2.0 * sigma * sigma)).exp()
    });
    let reference = run(&FourF::new(base.clone()).unwrap(), &point_input(n), &kernel);
    for (sy, sx) in [(0.0, 6.0), (-4.0, 0.0), (3.0, -5.0)] {
        let mut cfg = base.clone();
        cfg.misalignment.filter_shift_x_m = sx * du;
        cfg.misalignment.filter_shift_y_m = sy * du;
        let machine = FourF::new(cfg.clone()).unwrap();
        assert!(!machine.filter_matched());
        let out = run(&machine, &point_input(n), &kernel);
        let f2 = cfg.lens2.focal_length_m;
        let mut err: f64 = 0.0;
        for ((i, j), v) in out.data.indexed_iter() {
            let ph =
                -2.0 * PI * (sx * du * out.coord_m(1, j) + sy * du * out.coord_m(0, i)) / (cfg.wavelength_m() * f2);
            err = err.max((v - reference.data[[i, j]] * C64::from_polar(1.0, ph)).norm());
        }
        let peak = reference.data.iter().map(|v| v.norm()).fold(0.0, f64::max);
        assert!(err < 1e-9 * peak, "shift ({sy}, {sx}): phase-ramp error {err:e}");
        // Propagate both beyond the output plane: by the machine's own output
        // defocus and by a separate angular-spectrum step.
        let z = 0.05;
        let mut cfg_z = cfg.clone();
        cfg_z.misalignment.output_defocus_m = z;
        let moved = run(&FourF::new(cfg_z).unwrap(), &point_input(n), &kernel);
        let prop = AngularSpectrum::new((n, n), out.pitch_m, cfg.wavelength_m(), z, true);
        let moved_as = prop.apply(&out, &mut prop.make_scratch());
        let c0 = centroid(&reference);
        for m in [&moved, &moved_as] {
            let c = centroid(m);
            for (ax, s) in [(0, sy), (1, sx)] {
                let want = -s * du * z / f2;
                let got = c[ax] - c0[ax];
                eprintln!("filter shift ({sy}, {sx}) Δu, axis {ax}: output moved {got:.4e} m, predicted {want:.4e} m");
                assert!(
                    (got - want).abs() < 0.02 * (s * du * z / f2).abs().max(1e-7),
                    "shift ({sy}, {sx}) axis {ax}: moved {got:e} m, predicted {want:e} m"
                );
            }
        }
    }
}

#[test]
fn defocus_on_axis_intensity_follows_the_fresnel_number() {
    // A plane wave through a circular hole of radius a: on axis at distance z the
    // Rayleigh–Sommerfeld intensity is |1 − z/√(z²+a²)·exp(ik(√(z²+a²) − z))|²,
    // ≈ 4 sin²(π N_F / 2) with N_F = a²/(λz): bright for odd, dark for even N_F.
    let (n, dx, wl, a) = (1024, 4e-6, 532e-9, 0.5e-3);
    let hole = Array2::from_shape_fn((n, n), |(i, j)| {
        let y = (i as f64 - (n / 2) as f64) * dx;
        let x = (j as f64 - (n / 2) as f64) * dx;
        C64::new(circle_coverage(y, x, dx, dx, a), 0.0)
    });
    let u0 = Field::new(hole, [dx, dx], wl);
    for nf in [1.0, 2.0, 3.0, 4.0, 1.5] {
        let z = a * a / (wl * nf);
        let prop = AngularSpectrum::new((n, n), [dx, dx], wl, z, true);
        let u = prop.apply(&u0, &mut prop.make_scratch());
        let got = u.data[[n / 2, n / 2]].norm_sqr();
        let r = (z * z + a * a).sqrt();
        let k = 2.0 * PI / wl;
        let exact = (C64::new(1.0, 0.0) - C64::from_polar(z / r, k * (r - z))).norm_sqr();
        let fresnel = 4.0 * (PI * nf / 2.0).sin().powi(2);
        assert!((exact - fresnel).abs() < 0.01, "oracle consistency at N_F {nf}");
        eprintln!("Fresnel: N_F = {nf}: on-axis intensity {got:.4}, Rayleigh–Sommerfeld {exact:.4}");
        assert!(
            (got - exact).abs() < 0.04,
            "N_F = {nf}: on-axis intensity {got:.4}, expected {exact:.4}"
        );
    }
}

#[test]
fn small_aberrations_follow_the_marechal_strehl_ratio() {
    let n = 256;
    let mut cfg = MachineConfig::ideal(n);
    let du = cfg.wavelength_m() * cfg.lens1.focal_length_m / (n as f64 * cfg.input_slm.pitch_m.unwrap());
    cfg.pupil.radius_m = Some(40.0 * du);
    let ideal = run(&FourF::new(cfg.clone()).unwrap(), &point_input(n), &impulse_kernel(n));
    let peak0 = ideal.data[[n / 2, n / 2]].norm_sqr();
    for (term, rms) in [(0, 0.03), (1, 0.05), (2, 0.04), (3, 0.05)] {
        let mut c = cfg.clone();
        let z = &mut c.pupil.zernike_waves;
        match term {
            0 => z.spherical = rms,
            1 => z.astigmatism_0 = rms,
            2 => z.defocus = rms,
            _ => z.coma_x = rms,
        }
        let out = run(&FourF::new(c).unwrap(), &point_input(n), &impulse_kernel(n));
        let peak = out.data.iter().map(|v| v.norm_sqr()).fold(0.0, f64::max);
        let strehl = peak / peak0;
        let marechal = (-(2.0 * PI * rms).powi(2)).exp();
        eprintln!("Strehl: term {term}, {rms} waves RMS: {strehl:.4} (Maréchal {marechal:.4})");
        assert!(
            (strehl - marechal).abs() < 0.01,
            "term {term}, {rms} waves RMS: Strehl {strehl:.4}, Maréchal {marechal:.4}"
        );
    }
}

#[test]
fn fast_frame_matches_the_plain_physical_path_with_every_effect_on() {
    let n = 128;
    let mut cfg = MachineConfig::ideal(n);
    let du = cfg.wavelength_m() * cfg.lens1.focal_length_m / (n as f64 * cfg.input_slm.pitch_m.unwrap());
    cfg.lens2.focal_length_m = 0.17;
    cfg.pupil.radius_m = Some(35.0 * du);
    cfg.pupil.zernike_waves.coma_y = 0.1;
    cfg.pupil.zernike_waves.astigmatism_45 = -0.2;
    cfg.misalignment.filter_shift_x_m = 0.37 * du;
    cfg.misalignment.input_defocus_m = 1e-3;
    cfg.misalignment.output_defocus_m = -2e-3;
    cfg.filter_slm.pitch_m = Some(1.1 * du);
    let machine = FourF::new(cfg.clone()).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let mut kernel = Array2::zeros((n, n));
    for i in 0..5 {
        for j in 0..4 {
            kernel[[i, j]] = rng.random::<f64>() - 0.3;
        }
    }
    let x = random_field(n, 10);
    let fast = run(&machine, &x, &kernel);
    let mask = machine.program(kernel.view());
    let [_, _, _, slow] = machine.trace_planes(&Field::new(x, machine.input_pitch_m(), cfg.wavelength_m()), &mask);
    let peak = slow.data.iter().map(|v| v.norm()).fold(0.0, f64::max);
    let err = (&fast.data - &slow.data).iter().map(|v| v.norm()).fold(0.0, f64::max);
    assert!(err < 1e-10 * peak, "fast vs physical path: {err:e}");
    assert_eq!(fast.pitch_m, slow.pitch_m);
}

#[test]
fn mismatched_filter_pitch_is_a_measurable_error_that_vanishes_when_matched() {
    use fourf_sim::planner::convolve;
    use fourf_sim::{direct_conv, ConvJob, Mode, Op};
    let n = 64;
    let mut rng = StdRng::seed_from_u64(11);
    let x = Array2::from_shape_fn((20, 20), |_| rng.random::<f64>());
    let k = Array2::from_shape_fn((5, 5), |_| rng.random::<f64>() - 0.5);
    let want = direct_conv(x.view(), k.view(), Mode::Full, Op::Convolution);
    let err_at = |ratio: f64| {
        let mut cfg = MachineConfig::ideal(n);
        let du = cfg.wavelength_m() * cfg.lens1.focal_length_m / (n as f64 * cfg.input_slm.pitch_m.unwrap());
        cfg.filter_slm.pitch_m = Some(ratio * du);
        let machine = FourF::new(cfg).unwrap();
        let (out, _) = convolve(
            &machine,
            &[ConvJob::new(x.view(), k.view(), Mode::Full, Op::Convolution)],
        )
        .unwrap();
        let num = (&out[0] - &want).iter().map(|v| v.abs()).fold(0.0, f64::max);
        num / want.iter().map(|v| v.abs()).fold(0.0, f64::max)
    };
    assert!(err_at(1.0) < 1e-10);
    let (e1, e5) = (err_at(1.01), err_at(1.05));
    assert!(e1 > 1e-3 && e5 > e1, "1 % mismatch: {e1:e}, 5 %: {e5:e}");
}
