//! Every machine preset is valid, named after its key, and built by the rules the
//! presets module states (lens choice, photon budget, detection).

use std::collections::HashSet;
use std::time::Instant;

use fourf_sim::devices::detection::{Scheme, SignedInputs};
use fourf_sim::presets::{machine, FULL_SCALE_OF_FULL_WELL, MACHINES};
use fourf_sim::FourF;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}

#[test]
fn names_are_unique_and_unknown_names_are_none() {
    let mut seen = HashSet::new();
    for (name, description) in MACHINES {
        assert!(seen.insert(*name), "preset {name} is listed twice");
        assert!(!description.is_empty(), "preset {name} has no description");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "preset name {name} is not lowercase-hyphenated"
        );
    }
    assert!(machine("nope").is_none());
    assert!(machine("").is_none());
}

#[test]
fn every_preset_builds_and_carries_its_name() {
    for (name, _) in MACHINES {
        let config = machine(name).unwrap_or_else(|| panic!("{name} is listed but not built"));
        assert_eq!(config.name, *name);
        let t = Instant::now();
        let fourf = FourF::new(config).unwrap_or_else(|e| panic!("preset {name}: {e}"));
        // Planning cost, reported rather than asserted (timing is not a test).
        eprintln!(
            "{name}: frame {:?}, planned in {:.2} s",
            fourf.frame_shape(),
            t.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn ideal_presets_are_unchanged() {
    for (name, n) in [("ideal", 512), ("ideal-128", 128), ("ideal-2k", 2048)] {
        let mut expected = fourf_sim::MachineConfig::ideal(n);
        expected.name = name.to_string();
        assert_eq!(machine(name).unwrap(), expected);
    }
}

#[test]
fn real_presets_follow_the_stated_rules() {
    for (name, _) in MACHINES.iter().filter(|(n, _)| !n.starts_with("ideal")) {
        let c = machine(name).unwrap();
        let dx = c.input_slm.pitch_m.unwrap();
        let (f1, f2) = (c.lens1.focal_length_m, c.lens2.focal_length_m);
        // One input pixel images onto one camera pixel.
        assert!(
            close(dx * f2 / f1, c.camera.pitch_m.unwrap(), 1e-12),
            "{name}: camera pitch"
        );
        // The photon budget follows from the laser power.
        assert!(c.camera.full_scale_e.is_none(), "{name}: full_scale_e should be unset");
        assert!(
            c.laser.power_w.is_some() && c.laser.rin_db_per_hz.is_some(),
            "{name}: laser"
        );
        assert_eq!(c.detection.scheme, Scheme::BalancedHomodyne, "{name}");
        assert_eq!(c.detection.signed_inputs, SignedInputs::Split, "{name}");
        // The filter is matched to the Fourier grid.
        assert!(
            c.filter_slm.pixels_x.is_none() && c.filter_slm.pitch_m.is_none(),
            "{name}"
        );

        let full_well = c.camera.full_well_e.unwrap();
        let qe = c.camera.quantum_efficiency;
        let fourf = FourF::new(c).unwrap();
        assert!(fourf.filter_matched(), "{name}: filter not matched");
        // A flat full-scale input fills FULL_SCALE_OF_FULL_WELL of the well.
        let e = fourf.photons_full_scale().unwrap() * qe;
        assert!(close(e, FULL_SCALE_OF_FULL_WELL * full_well, 1e-9), "{name}: {e} e⁻");
    }
}

#[test]
fn lens_one_makes_the_fourier_window_as_wide_as_the_filter_panel() {
    // (preset, filter panel width = columns × pitch, real filter pitch)
    for (name, width, pitch) in [
        ("lcos-pluto2", 1920.0 * 8.0e-6, Some(8.0e-6)),
        ("lcos-meadowlark", 1920.0 * 9.2e-6, Some(9.2e-6)),
        ("lcos-santec", 1920.0 * 8.0e-6, Some(8.0e-6)),
        ("dmd-dlp9000", 1920.0 * 8.0e-6, None),
    ] {
        let fourf = FourF::new(machine(name).unwrap()).unwrap();
        let (_, nx) = fourf.frame_shape();
        let [_, dux] = fourf.fourier_pitch_m();
        assert!(
            close(dux * nx as f64, width, 1e-12),
            "{name}: window {} m",
            dux * nx as f64
        );
        // Same panel at input and filter: the matched x pitch is the real pitch.
        if let Some(p) = pitch {
            assert!(close(dux, p, 1e-12), "{name}: matched pitch {dux} m");
        }
    }
}

/// Max error, relative to the peak, of `name`'s convolution of signed 32×32 maps
/// with a signed 5×5 kernel; with `ideal_filter` the filter is swapped for an
/// ideal complex one.
fn chain_error(name: &str, ideal_filter: bool) -> f64 {
    use fourf_sim::devices::slm::SlmConfig;
    use fourf_sim::{direct_conv, ConvJob, Mode, Op, Planner, PlannerConfig};
    use ndarray::Array2;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    let mut rng = StdRng::seed_from_u64(7);
    let maps: Vec<Array2<f64>> = (0..16)
        .map(|_| Array2::from_shape_fn((32, 32), |_| 2.0 * rng.random::<f64>() - 1.0))
        .collect();
    let kernel = Array2::from_shape_fn((5, 5), |_| 2.0 * rng.random::<f64>() - 1.0);
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), kernel.view(), Mode::Same, Op::Convolution))
        .collect();
    let mut config = machine(name).unwrap();
    if ideal_filter {
        config.filter_slm = SlmConfig::default();
    }
    let fourf = FourF::new(config).unwrap();
    let plan = Planner::new(fourf.frame_shape(), PlannerConfig::default())
        .plan(&jobs)
        .unwrap();
    let t = Instant::now();
    let e = plan.execute(&fourf, &jobs, 1).unwrap();
    let mut worst: f64 = 0.0;
    for (got, job) in e.outputs.iter().zip(&jobs) {
        let want = direct_conv(job.input, job.kernel, job.mode, job.op);
        let scale = want.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let err = (got - &want).iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        worst = worst.max(err / scale);
    }
    eprintln!(
        "{name}: max relative error {worst:.2e}, {} passes, {} exposures, {:.2} s",
        e.passes,
        e.exposures,
        t.elapsed().as_secs_f64()
    );
    worst
}

// Each real machine — quantised input SLM, quantised two-panel filter, laser
// noise, photon budget, camera and balanced homodyne — computes the convolution
// to within its noise and quantisation: with an ideal filter 3–5 % of the peak at
// the worst of 16 384 outputs (shot noise at a full scale of 20 % of the full
// well dominates), with the presets' own filter pair under 15 %. One test per
// preset so that they run in parallel.

#[test]
fn lcos_pluto2_chain_is_within_its_noise() {
    assert!(chain_error("lcos-pluto2", true) < 0.1);
    assert!(chain_error("lcos-pluto2", false) < 0.15);
}

#[test]
fn lcos_meadowlark_chain_is_within_its_noise() {
    assert!(chain_error("lcos-meadowlark", false) < 0.15);
}

#[test]
fn lcos_santec_chain_is_within_its_noise() {
    assert!(chain_error("lcos-santec", false) < 0.15);
}

#[test]
fn dmd_dlp9000_chain_is_within_its_noise() {
    // 8 bit planes × 2 signed passes × 2 homodyne exposures of 2560×1600.
    assert!(chain_error("dmd-dlp9000", false) < 0.15);
}

#[test]
fn presets_do_not_saturate_but_a_shrunken_frame_does() {
    for (name, _) in MACHINES {
        let m = FourF::new(machine(name).unwrap()).unwrap();
        if let Some(r) = m.saturation_ratio() {
            assert!(r <= 1.0, "{name}: full scale at {r} of the full well");
        }
        assert!(m.saturation_warning().is_none(), "{name}");
    }
    // The same laser power on 128² instead of 1920×1080 pixels: 127× the photons
    // per pixel.
    let mut small = machine("lcos-pluto2").unwrap();
    small.input_slm.pixels_x = Some(128);
    small.input_slm.pixels_y = Some(128);
    let m = FourF::new(small).unwrap();
    let w = m.saturation_warning().expect("clips");
    assert!(w.contains("laser.power_w") && w.contains("camera.full_scale_e"), "{w}");
}

/// Reproducers from the hardening issue: a photon budget so large that a photon
/// count becomes infinite panicked in the camera; it is now a setting error.
#[test]
fn a_photon_budget_beyond_any_sensor_is_an_error_naming_its_setting() {
    let mut m = small_pluto();
    m.camera.full_scale_e = Some(1e308);
    let Err(e) = FourF::new(m) else { panic!("accepted") };
    let e = e.to_string();
    assert!(e.contains("camera.full_scale_e") && e.contains("at most"), "{e}");
    let mut m = small_pluto();
    m.camera.full_scale_e = None;
    m.laser.power_w = Some(1e300);
    let Err(e) = FourF::new(m) else { panic!("accepted") };
    let e = e.to_string();
    assert!(e.contains("laser.power_w") && e.contains("photons per pixel"), "{e}");
    // A large but finite budget still builds.
    let mut m = small_pluto();
    m.camera.full_scale_e = Some(1e15);
    m.camera.full_well_e = None;
    FourF::new(m).unwrap();
}

/// lcos-pluto2 on a 128² frame (fast to build).
fn small_pluto() -> fourf_sim::MachineConfig {
    let mut m = machine("lcos-pluto2").unwrap();
    m.input_slm.pixels_x = Some(128);
    m.input_slm.pixels_y = Some(128);
    m
}

/// Reproducers from the hardening issue: 32768² panels, large oversampling and
/// `crosstalk_px = 1e12` aborted with "memory allocation failed"; they are now
/// setting errors with the estimate, before anything is allocated.
#[test]
fn machines_too_big_for_memory_are_refused_before_allocation() {
    let mut m = small_pluto();
    m.input_slm.pixels_x = Some(32768);
    m.input_slm.pixels_y = Some(32768);
    m.simulation.oversampling = 4;
    let e = m.check_memory(Some(64 << 30)).unwrap_err().to_string();
    assert!(
        e.contains("input_slm.pixels_x") && e.contains("GiB") && e.contains("simulation.oversampling = 4"),
        "{e}"
    );
    // The same frame fits a (hypothetical) 4 TiB machine, and 128² fits anywhere.
    assert!(m.check_memory(Some(4 << 40)).is_ok());
    assert!(small_pluto().check_memory(Some(1 << 30)).is_ok());
    let mut m = small_pluto();
    m.input_slm.crosstalk_px = 1e12;
    let Err(e) = FourF::new(m) else { panic!("accepted") };
    let e = e.to_string();
    assert!(e.contains("crosstalk_px") && e.contains("[0, 64]"), "{e}");
}
