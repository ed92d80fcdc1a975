//! Every model on the ideal noiseless optical machine against the digital
//! backend, the traces both produce, and the GFNet circular/zero-padded difference.

use fourf_hw::{Engine, OpKind};
use fourf_nn::backend::{Backend, OpticalBackend, OpticalOptions};
use fourf_nn::models::{preset, ModelConfig};
use fourf_nn::spectral::SpectralEmulation;
use fourf_sim::{FourF, MachineConfig, PlannerConfig};
use ndarray::Array3;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SMALL: [&str; 5] = [
    "vit-fmnist",
    "gfnet-fmnist",
    "spectformer-fmnist",
    "fnet-fmnist",
    "convsharevit-fmnist",
];

fn image(config: &ModelConfig, seed: u64) -> Array3<f32> {
    let [c, h, w] = config.input_shape();
    let mut rng = StdRng::seed_from_u64(seed);
    Array3::from_shape_simple_fn((c, h, w), || rng.random::<f32>() * 2.0 - 1.0)
}

fn ideal(n: usize, spectral: SpectralEmulation) -> Backend {
    Backend::Optical(Box::new(OpticalBackend {
        machine: FourF::new(MachineConfig::ideal(n)).unwrap(),
        planner: PlannerConfig::default(),
        options: OpticalOptions { spectral },
    }))
}

fn rel(a: &ndarray::Array1<f32>, b: &ndarray::Array1<f32>) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn ideal_optics_match_digital_for_every_model() {
    let digital = Backend::Digital;
    let optical = ideal(64, SpectralEmulation::Circular);
    for name in SMALL {
        let config = preset(name).unwrap();
        let model = config.init(&mut StdRng::seed_from_u64(11)).unwrap();
        for s in 0..2 {
            let img = image(&config, s);
            let d = model.infer(&digital, img.view(), 0).unwrap();
            let o = model.infer(&optical, img.view(), 0).unwrap();
            let err = rel(&o.logits, &d.logits);
            println!("{name}: image {s}: relative logit error {err:.2e}");
            assert!(err < 1e-4, "{name}: optical vs digital {err}");
            // Same ops in the same order, the optical ones marked with their frames.
            let names = |t: &fourf_hw::Trace| t.ops.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
            assert_eq!(names(&d.trace), names(&o.trace), "{name}: traces differ");
            assert_eq!(d.trace.totals().flops, o.trace.totals().flops, "{name}: FLOPs differ");
            assert_eq!(d.trace.totals().bytes, o.trace.totals().bytes, "{name}: bytes differ");
            let specs = |t: &fourf_hw::Trace| t.ops.iter().map(|o| o.conv.clone()).collect::<Vec<_>>();
            assert_eq!(specs(&d.trace), specs(&o.trace), "{name}: convolution specs differ");
            assert!(d
                .trace
                .ops
                .iter()
                .all(|op| op.engine == Engine::Electronic && op.optical.is_none()));
            let optical_ops: Vec<_> = o.trace.ops.iter().filter(|op| op.engine == Engine::Optical).collect();
            assert!(optical_ops.iter().all(|op| op.optical.is_some_and(|u| u.frames >= 1)));
            let lenses = |t: &fourf_hw::Trace| t.ops.iter().map(|o| o.lens).collect::<Vec<_>>();
            assert_eq!(lenses(&d.trace), lenses(&o.trace), "{name}: lens specs differ");
            // Every model has optical ops (FNet: its mixing on the lens); the ViT none.
            let expect_optical = name != "vit-fmnist";
            assert_eq!(!optical_ops.is_empty(), expect_optical, "{name}");
        }
    }
}

#[test]
fn conv_share_vit_runs_every_convolution_optically() {
    let config = preset("convsharevit-fmnist").unwrap();
    let model = config.init(&mut StdRng::seed_from_u64(2)).unwrap();
    let out = model
        .infer(&ideal(64, SpectralEmulation::Circular), image(&config, 5).view(), 1)
        .unwrap();
    for op in &out.trace.ops {
        let conv = matches!(
            op.kind,
            OpKind::SharedConv | OpKind::AttentionScores | OpKind::Embedding
        ) || op.name == "head";
        assert_eq!(op.engine == Engine::Optical, conv, "{}: {:?}", op.name, op.engine);
    }
    // 17 tokens, 2 heads: 2·17² valid correlations per block, 17 distinct key maps per head.
    let scores = out.trace.ops.iter().find(|o| o.name == "blocks.0.attn.scores").unwrap();
    let spec = scores.conv.as_ref().unwrap();
    assert_eq!(
        (spec.jobs, spec.kernels, spec.input, spec.kernel),
        (578, 34, [6, 6], [6, 6])
    );
    let totals = out.trace.totals();
    println!(
        "convsharevit-fmnist: {} ops, {} optical, {:.1} % of FLOPs optical, {} frames",
        totals.ops,
        totals.optical_ops,
        100.0 * out.trace.optical_fraction(),
        totals.optical.frames
    );
    assert!(out.trace.optical_fraction() > 0.5);
}

#[test]
fn gfnet_circular_and_zero_padded_differ_by_a_measured_amount() {
    let config = preset("gfnet-fmnist").unwrap();
    let model = config.init(&mut StdRng::seed_from_u64(4)).unwrap();
    let digital = Backend::Digital;
    let circular = ideal(64, SpectralEmulation::Circular);
    let padded = ideal(64, SpectralEmulation::ZeroPadded);
    let mut worst: f64 = 0.0;
    let mut sum = 0.0;
    for s in 0..4 {
        let img = image(&config, 100 + s);
        let d = model.infer(&digital, img.view(), 0).unwrap().logits;
        let c = model.infer(&circular, img.view(), 0).unwrap().logits;
        let z = model.infer(&padded, img.view(), 0).unwrap().logits;
        assert!(rel(&c, &d) < 1e-4);
        let diff = rel(&z, &d);
        worst = worst.max(diff);
        sum += diff;
    }
    println!(
        "gfnet-fmnist (untrained, N(0, 0.02²) filters): zero-padded vs circular logits, mean relative difference {:.3e}, worst {worst:.3e}",
        sum / 4.0
    );
    assert!(
        worst > 1e-4 && worst.is_finite(),
        "zero-padded tiles should not equal circular filtering"
    );
}

/// A small noisy machine: 8-bit amplitude input (signed inputs split), 8-bit
/// two-SLM filter, 2000 e⁻ at full scale, read noise, balanced homodyne.
fn noisy(n: usize) -> Backend {
    let mut m = MachineConfig::ideal(n);
    m.input_slm.modulation = fourf_sim::devices::slm::Modulation::Amplitude;
    m.input_slm.bits = Some(8);
    m.filter_slm.modulation = fourf_sim::devices::slm::Modulation::TwoSlm;
    m.filter_slm.bits = Some(8);
    m.camera.full_scale_e = Some(2000.0);
    m.camera.read_noise_e = 2.0;
    m.detection.scheme = fourf_sim::devices::detection::Scheme::BalancedHomodyne;
    Backend::optical(FourF::new(m).unwrap())
}

#[test]
fn noisy_runs_repeat_bit_for_bit_at_any_thread_count_and_differ_across_seeds() {
    let config = preset("convsharevit-fmnist").unwrap();
    let model = config.init(&mut StdRng::seed_from_u64(3)).unwrap();
    let backend = noisy(64);
    let images: Vec<Array3<f32>> = (0..4).map(|s| image(&config, 200 + s)).collect();
    let run = |threads: usize, seed: u64| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| model.infer_batch(&backend, &images, seed, 0, &|| {}).unwrap())
    };
    let one = run(1, 7);
    let two = run(2, 7);
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a.logits, b.logits, "thread count changed a noisy result");
    }
    let other = run(2, 8);
    assert!(
        one.iter().zip(&other).any(|(a, b)| a.logits != b.logits),
        "the seed is not used"
    );
    // The noise is real but bounded: every optical op has an error between 1e-4 and 1.
    let digital = model.infer(&Backend::Digital, images[0].view(), 0).unwrap();
    let err = rel(&one[0].logits, &digital.logits);
    println!("convsharevit-fmnist on a noisy 64² machine: relative logit error {err:.3e}");
    for op in one[0].trace.ops.iter().filter(|o| o.optical.is_some()) {
        let e = op.relative_error.unwrap();
        assert!(e > 1e-4 && e < 1.0, "{}: {e}", op.name);
    }
}
