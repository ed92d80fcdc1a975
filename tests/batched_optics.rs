//! The optical backend on batches of images: the jobs of one op for a whole batch
//! are planned together, so a weight kernel's maps of every image share frames.
//! Checked against the digital backend on the ideal machine, against the latency
//! model's closed-form frame count, across thread counts on a noisy machine, and
//! the planner's per-tile gain that keeps a dim map's signal-to-noise ratio.

use fourf_experiments::load_machine;
use fourf_hw::optical::kernels_are_weights;
use fourf_hw::{frames_for, lens_frames};
use fourf_nn::backend::Backend;
use fourf_nn::data::{default_test_dir, load_fashion_mnist, Split, FASHION_MNIST_MEAN, FASHION_MNIST_STD};
use fourf_nn::models::{shipped, Model, ModelConfig};
use fourf_nn::spectral::SpectralEmulation;
use fourf_nn::surrogate::{NoiseSource, OpUsage};
use fourf_nn::train::{predict, predict_with_usage, StepNoise};
use fourf_nn::weights::load_weights;
use fourf_sim::{direct_conv, ConvJob, FourF, MachineConfig, Mode, Op, Planner, PlannerConfig};
use ndarray::{Array2, Array4, ArrayView4, Axis};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

const DIM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/machines/lcos-pluto2-128-dim.toml");

/// A preset's seeded initialisation (frames do not depend on the weights).
fn untrained(name: &str) -> Model {
    ModelConfig::load(name)
        .unwrap()
        .init(&mut StdRng::seed_from_u64(0))
        .unwrap()
}

fn trained(name: &str) -> Model {
    let s = shipped(name).unwrap_or_else(|| panic!("shipped model {name}"));
    let mut model = ModelConfig::load(&s.model)
        .unwrap()
        .init(&mut StdRng::seed_from_u64(0))
        .unwrap();
    load_weights(&s.weights, &mut model).unwrap();
    model
}

fn test_images(n: usize) -> Array4<f32> {
    let data = load_fashion_mnist(&default_test_dir(), Split::Test, Some(n))
        .unwrap()
        .normalised(FASHION_MNIST_MEAN, FASHION_MNIST_STD);
    data.batch_view().to_owned()
}

fn try_on_machine(
    model: &Model,
    machine: &FourF,
    images: ArrayView4<f32>,
    batch: usize,
) -> Result<(Array2<f32>, Vec<OpUsage>), String> {
    let noise = StepNoise {
        source: NoiseSource::Machine(machine),
        strength: 1.0,
        seed: 7,
        spectral: SpectralEmulation::Circular,
    };
    predict_with_usage(model, images, batch, Some(&noise), 0)
}

fn on_machine(model: &Model, machine: &FourF, images: ArrayView4<f32>, batch: usize) -> (Array2<f32>, Vec<OpUsage>) {
    try_on_machine(model, machine, images, batch).unwrap()
}

#[test]
fn a_machine_that_cannot_run_an_op_is_an_error_naming_it() {
    // Intensity detection cannot subtract the passes of signed inputs on an
    // amplitude SLM; the batched path says so instead of panicking.
    let sets = ["detection.scheme=intensity".to_string()];
    let machine = FourF::new(load_machine(DIM, &sets).unwrap()).unwrap();
    let model = trained("gfnet-fmnist");
    let err = try_on_machine(&model, &machine, test_images(4).view(), 4).unwrap_err();
    assert!(
        err.contains("cannot run op `") && err.contains("intensity detection"),
        "{err}"
    );
}

#[test]
fn batches_equal_digital_and_the_latency_models_frames_on_the_ideal_machine() {
    let machine = FourF::new(MachineConfig::ideal(128)).unwrap();
    let images = test_images(64);
    for name in [
        "gfnet-fmnist",
        "spectformer-fmnist",
        "convsharevit-fmnist",
        "fnet-fmnist",
    ] {
        let model = if name == "convsharevit-fmnist" {
            untrained(name)
        } else {
            trained(name)
        };
        let digital = predict(&model, images.view(), 16);
        let scale = digital.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let trace = model
            .infer(&Backend::Digital, images.index_axis(Axis(0), 0), 0)
            .unwrap()
            .trace;
        let mut per_image = Vec::new();
        // Image by image on the first 8 (the slow case), then batches of 8 and 64.
        for (batch, n) in [(1, 8), (8, 64), (64, 64)] {
            let part = images.slice(ndarray::s![..n, .., .., ..]);
            let (logits, usage) = on_machine(&model, &machine, part, batch);
            let want = digital.slice(ndarray::s![..n, ..]);
            let err = (&logits - &want).iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(err <= 1e-5 * scale, "{name} batch {batch}: logits differ by {err}");
            assert!(!usage.is_empty(), "{name}: no optical op ran");
            let mut frames = 0;
            for u in &usage {
                let op = trace.ops.iter().find(|o| o.name == u.name).expect("op in the trace");
                let closed = match (&op.conv, &op.lens) {
                    (Some(spec), _) => frames_for(spec, kernels_are_weights(op.kind), batch, [128, 128]),
                    (None, Some(lens)) => lens_frames(lens, batch, [128, 128]).expect("the map fits"),
                    (None, None) => panic!("{name} `{}`: an optical op without a conv or lens spec", u.name),
                };
                // n images in batches of `batch`; each image's maps are its own
                // inputs, so attention keys stay per image as in the closed form.
                assert_eq!(
                    u.frames,
                    closed.frames * (n / batch),
                    "{name} `{}` batch {batch}: simulator vs latency model",
                    u.name
                );
                assert!(
                    u.mean_relative_error() < 1e-12,
                    "{name} `{}`: {}",
                    u.name,
                    u.mean_relative_error()
                );
                frames += u.frames;
            }
            per_image.push(frames as f64 / n as f64);
        }
        // FNet's lens transforms take one frame per map at any batch.
        let shared = name != "fnet-fmnist";
        assert!(
            per_image.windows(2).all(|w| w[1] <= w[0]) && (per_image[2] < per_image[0]) == shared,
            "{name}: frames per image at batch 1, 8, 64: {per_image:?}"
        );
    }
}

#[test]
fn noisy_batches_repeat_bit_for_bit_at_any_thread_count() {
    let machine = FourF::new(load_machine(DIM, &[]).unwrap()).unwrap();
    let model = trained("gfnet-fmnist");
    let images = test_images(16);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| on_machine(&model, &machine, images.view(), 8))
    };
    // The counts and errors repeat; the seconds each op took do not.
    let untimed = |u: Vec<fourf_nn::surrogate::OpUsage>| {
        u.into_iter()
            .map(|u| fourf_nn::surrogate::OpUsage {
                plan_s: 0.0,
                frames_s: 0.0,
                reference_s: 0.0,
                ..u
            })
            .collect::<Vec<_>>()
    };
    let (a, ua) = run(1);
    let (b, ub) = run(2);
    assert_eq!(untimed(ua), untimed(ub));
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "1 vs 2 threads"
    );
    let digital = predict(&model, images.view(), 16);
    assert!(
        (&a - &digital).iter().any(|v| v.abs() > 1e-3),
        "the noisy machine left every logit unchanged"
    );
}

/// Relative error of jobs `range` of an execution.
fn error(out: &[Array2<f64>], jobs: &[ConvJob], range: std::ops::Range<usize>) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for i in range {
        let want = direct_conv(jobs[i].input, jobs[i].kernel, jobs[i].mode, jobs[i].op);
        num += (&out[i] - &want).iter().map(|v| v * v).sum::<f64>();
        den += want.iter().map(|v| v * v).sum::<f64>();
    }
    (num / den).sqrt()
}

#[test]
fn a_gain_per_tile_keeps_a_dim_maps_signal_to_noise_ratio() {
    let machine = FourF::new(load_machine(DIM, &[]).unwrap()).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let d = Normal::new(0.0, 1.0).unwrap();
    // Eight maps that share a kernel (one frame): four bright, four 100× dimmer.
    let maps: Vec<Array2<f64>> = (0..8)
        .map(|i| {
            let s = if i < 4 { 1.0 } else { 0.01 };
            Array2::from_shape_simple_fn((13, 13), || s * d.sample(&mut rng))
        })
        .collect();
    let kernel = Array2::from_shape_simple_fn((7, 7), || 0.1 * d.sample(&mut rng));
    let jobs: Vec<ConvJob> = maps
        .iter()
        .map(|m| ConvJob::new(m.view(), kernel.view(), Mode::Valid, Op::Convolution))
        .collect();
    let run = |tile_gain: bool| {
        let config = PlannerConfig {
            tile_gain,
            ..Default::default()
        };
        let plan = Planner::new(machine.frame_shape(), config).plan(&jobs).unwrap();
        assert_eq!(plan.frame_count(), 1);
        let out = plan.execute(&machine, &jobs, 1).unwrap().outputs;
        (error(&out, &jobs, 0..4), error(&out, &jobs, 4..8))
    };
    let (bright, dim) = run(true);
    let (bright_shared, dim_shared) = run(false);
    eprintln!(
        "relative error, bright / dim maps: tile gain {bright:.3e} / {dim:.3e}, one gain per frame {bright_shared:.3e} / {dim_shared:.3e}"
    );
    assert!(dim < 2.0 * bright, "tile gain: bright {bright:.3e}, dim {dim:.3e}");
    assert!(
        dim_shared > 10.0 * bright_shared && dim_shared > 10.0 * dim,
        "one gain per frame: bright {bright_shared:.3e}, dim {dim_shared:.3e} (tile gain {dim:.3e})"
    );
}
