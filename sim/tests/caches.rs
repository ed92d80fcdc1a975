//! What a machine keeps between calls (filters, plans) and what a frame reads (the
//! camera pixels of its kept windows) change the time, never the result.

use fourf_sim::devices::camera::{Camera, CameraConfig, ReadRegion};
use fourf_sim::presets::machine;
use fourf_sim::{direct_conv, ConvJob, FourF, MachineConfig, Mode, Op, Planner, PlannerConfig};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn random(rng: &mut StdRng, shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_fn(shape, |_| rng.random::<f64>() * 2.0 - 1.0)
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Maps, kernels, (map, kernel) pairs and each pair's input key.
type Problem = (Vec<Array2<f64>>, Vec<Array2<f64>>, Vec<(usize, usize)>, Vec<usize>);

/// A batch-like problem: `images` images of `maps` maps each, every map with every
/// one of `kernels` shared weight kernels and with one kernel of its own image (a
/// data kernel, as attention keys are).
fn problem(seed: u64, images: usize) -> Problem {
    let mut rng = StdRng::seed_from_u64(seed);
    // The same weights in every batch.
    let mut w = StdRng::seed_from_u64(99);
    let weights: Vec<Array2<f64>> = (0..3).map(|_| random(&mut w, (3, 3))).collect();
    let (mut maps, mut kernels, mut pairs, mut keys) = (Vec::new(), weights, Vec::new(), Vec::new());
    for _ in 0..images {
        let own = kernels.len();
        kernels.push(random(&mut rng, (5, 4)));
        for _ in 0..2 {
            let m = maps.len();
            maps.push(random(&mut rng, (9, 11)));
            for k in [0, 1, 2, own] {
                pairs.push((m, k));
                keys.push(m);
            }
        }
    }
    (maps, kernels, pairs, keys)
}

fn jobs<'a>(maps: &'a [Array2<f64>], kernels: &'a [Array2<f64>], pairs: &[(usize, usize)]) -> Vec<ConvJob<'a>> {
    pairs
        .iter()
        .enumerate()
        .map(|(n, &(m, k))| {
            let op = if n % 2 == 0 { Op::Convolution } else { Op::Correlation };
            ConvJob::new(maps[m].view(), kernels[k].view(), Mode::Same, op)
        })
        .collect()
}

#[test]
fn a_cached_plan_is_the_fresh_plan_and_serves_new_data_exactly() {
    let m = FourF::new(MachineConfig::ideal(64)).unwrap();
    let planner = Planner::new(m.frame_shape(), PlannerConfig::default());
    let (maps, kernels, pairs, keys) = problem(1, 3);
    let first = jobs(&maps, &kernels, &pairs);
    let fresh = planner.plan_keyed(&first, Some(&keys)).unwrap();
    let cached = planner.plan_cached(&first, Some(&keys), &m).unwrap();
    assert_eq!(cached.frames, fresh.frames);
    assert_eq!(m.cache_counts().plans, 1);
    // Another batch of the same structure (new maps, new data kernels, keys shifted)
    // gets the same plan back and convolves its own data.
    let (maps2, kernels2, pairs2, keys2) = problem(2, 3);
    let keys2: Vec<usize> = keys2.iter().map(|k| k + 1000).collect();
    let second = jobs(&maps2, &kernels2, &pairs2);
    let again = planner.plan_cached(&second, Some(&keys2), &m).unwrap();
    assert!(std::sync::Arc::ptr_eq(&cached, &again), "the plan is reused");
    assert_eq!(m.cache_counts().plan_hits, 1);
    let out = again.execute(&m, &second, 0).unwrap();
    for (j, got) in second.iter().zip(&out.outputs) {
        let want = direct_conv(j.input, j.kernel, j.mode, j.op);
        assert!(max_abs_diff(got, &want) <= 1e-12, "{}", max_abs_diff(got, &want));
    }
    // A batch where two images' data kernels happen to be equal has another
    // structure: another plan.
    let mut kernels3 = kernels2.clone();
    kernels3[4] = kernels3[3].clone();
    let third = jobs(&maps2, &kernels3, &pairs2);
    let other = planner.plan_cached(&third, Some(&keys2), &m).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&cached, &other));
    assert_eq!(other.frames, planner.plan_keyed(&third, Some(&keys2)).unwrap().frames);
    // Another batch size: another plan.
    let (maps4, kernels4, pairs4, keys4) = problem(3, 2);
    let fourth = jobs(&maps4, &kernels4, &pairs4);
    let p4 = planner.plan_cached(&fourth, Some(&keys4), &m).unwrap();
    assert_eq!(p4.frames, planner.plan_keyed(&fourth, Some(&keys4)).unwrap().frames);
    assert_eq!(m.cache_counts().plans, 3);
}

#[test]
fn a_cached_filter_is_the_programmed_filter() {
    // A noisy device machine: the filter panel's levels are quantised.
    let m = FourF::new(machine("lcos-pluto2").unwrap()).unwrap();
    let (ny, nx) = m.frame_shape();
    let mut kernel = Array2::<f64>::zeros((ny, nx));
    kernel
        .slice_mut(ndarray::s![..5, ..5])
        .assign(&random(&mut StdRng::seed_from_u64(4), (5, 5)));
    let fresh = m.program(kernel.view());
    // Kept on the second sighting, found on the third.
    let a = m.program_cached(kernel.view(), None);
    assert_eq!(m.cache_counts().filters, 0);
    let b = m.program_cached(kernel.view(), None);
    assert_eq!(m.cache_counts().filters, 1);
    let c = m.program_cached(kernel.view(), None);
    assert!(std::sync::Arc::ptr_eq(&b, &c));
    assert_eq!(m.cache_counts().filter_hits, 1);
    for mask in [&a, &b, &c] {
        assert_eq!(mask.gain().to_bits(), fresh.gain().to_bits());
        assert_eq!(mask.readout(), fresh.readout());
    }
    // The same frame through the cached and the fresh filter: the same bits.
    let mut input = Array2::<f64>::zeros((ny, nx));
    input
        .slice_mut(ndarray::s![..20, ..20])
        .assign(&random(&mut StdRng::seed_from_u64(5), (20, 20)).mapv(f64::abs));
    let support = [[0, 0, 20, 20]];
    let run = |mask: &fourf_sim::Mask| {
        let mut scratch = m.make_scratch(true);
        let mut rng = StdRng::seed_from_u64(6);
        m.detect_frame(input.view(), &support, mask, &mut scratch, &mut rng)
            .unwrap()
            .values
    };
    assert_eq!(run(&c), run(&fresh));
    // One changed sample: another filter.
    kernel[[0, 0]] += 1e-9;
    let d = m.program_cached(kernel.view(), None);
    assert!(!std::sync::Arc::ptr_eq(&c, &d));
    // A clone starts with empty caches.
    assert_eq!(m.clone().cache_counts().filters, 0);
}

#[test]
fn read_regions_wrap_and_merge() {
    let r = ReadRegion::periodic((6, 8), &[[4, 6, 3, 4], [0, 1, 1, 2], [0, 2, 1, 2]]);
    // Rows 4, 5, 0 hold columns 6, 7, 0, 1; row 0 also 1..4.
    let read: Vec<(usize, usize)> = (0..6)
        .flat_map(|i| (0..8).map(move |j| (i, j)))
        .filter(|&(i, j)| r.contains(i, j))
        .collect();
    let want = vec![
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (0, 6),
        (0, 7),
        (4, 0),
        (4, 1),
        (4, 6),
        (4, 7),
        (5, 0),
        (5, 1),
        (5, 6),
        (5, 7),
    ];
    assert_eq!(read, want);
    assert_eq!(r.pixels(), want.len());
    // A rectangle larger than the sensor covers it once.
    assert_eq!(ReadRegion::periodic((6, 8), &[[3, 3, 10, 20]]).pixels(), 48);
}

#[test]
fn reading_a_region_reads_those_pixels_as_a_full_read_out_does() {
    let shape = (16, 12);
    let cfg = CameraConfig {
        quantum_efficiency: 0.7,
        gain_e_per_adu: 1.5,
        bias_adu: 10.0,
        read_noise_e: 2.0,
        dark_current_e_per_s: 50.0,
        prnu_rms: 0.02,
        dsnu_rms_e: 1.0,
        adc_bits: Some(12),
        ..CameraConfig::default()
    };
    let cam = Camera::new(cfg, shape, "camera").unwrap();
    let photons = Array2::from_shape_fn(shape, |(i, j)| 100.0 + 10.0 * i as f64 + j as f64);
    // Without a region: the calibrated full read-out, bit for bit.
    let full = cam.signal_electrons(cam.expose(photons.view(), true, &mut StdRng::seed_from_u64(8)).view());
    let all = cam.expose_electrons(photons.view(), true, &mut StdRng::seed_from_u64(8), None);
    assert_eq!(full, all);
    // Without shot noise and read noise, a region's pixels equal the full read-out's
    // and the rest are 0.
    let quiet = Camera::new(
        CameraConfig {
            read_noise_e: 0.0,
            ..cam.config().clone()
        },
        shape,
        "camera",
    )
    .unwrap();
    let region = ReadRegion::periodic(shape, &[[14, 10, 4, 5]]);
    let whole = quiet.expose_electrons(photons.view(), false, &mut StdRng::seed_from_u64(9), None);
    let part = quiet.expose_electrons(photons.view(), false, &mut StdRng::seed_from_u64(9), Some(&region));
    for ((i, j), &v) in part.indexed_iter() {
        if region.contains(i, j) {
            assert_eq!(v, whole[[i, j]]);
        } else {
            assert_eq!(v, 0.0);
        }
    }
    assert_eq!(region.pixels(), 20);
}
