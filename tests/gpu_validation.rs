//! Validation of the GPU roofline (`fourf_hw::gpu`) against published measurements:
//! DeiT-Ti/S/B on one 16 GB V100 at 224², largest possible batch (Touvron et al.
//! 2021, arXiv 2012.12877, Table 1): 2536, 940 and 292 images/s.
//!
//! Settings: the `v100` preset (SXM2 16 GB), batch 256 standing in for "largest
//! possible batch", FP32 (the paper states no precision; see the module docs of
//! `fourf_hw::gpu` for why FP32), the default `GpuModel`, and the trace of one real
//! forward pass of each network, eager attention (PyTorch 1.7, timm 0.3.2).
//!
//! And timm's published inference benchmarks (huggingface/pytorch-image-models,
//! `results/benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv` and `…-rtx3090.csv`:
//! PyTorch 2.4, AMP, NCHW, batch 1024, 224²): `deit_tiny/small/base_patch16_224`
//! and torchvision's `vgg16` (the `vgg16_imagenet.toml` layer table), with the
//! default (fused) attention.
//!
//! Bar: every point within ±15 % (the frames issue's), with one `GpuModel`.

use fourf_hw::gpu::{estimate, gpu_preset, Bound, GpuModel, Precision};
use fourf_nn::backend::Backend;
use ndarray::Array3;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[test]
fn deit_on_v100_matches_published_throughput() {
    let gpu = gpu_preset("v100").expect("v100 preset");
    // PyTorch 1.7 and timm 0.3.2 (the DeiT README's versions) run attention
    // eagerly: no fused scaled-dot-product attention.
    let model = GpuModel {
        fused_attention: false,
        ..GpuModel::default()
    };
    let batch = 256;
    let precision = Precision::Fp32;
    let image = Array3::<f32>::zeros((3, 224, 224));
    let mut failures = Vec::new();
    println!(
        "DeiT on {} ({precision}, batch {batch}), default GpuModel {model:?}",
        gpu.name
    );
    for (name, measured) in [("deit-ti", 2536.0), ("deit-s", 940.0), ("deit-b", 292.0)] {
        let net = fourf_nn::models::preset(name)
            .expect("preset")
            .init(&mut StdRng::seed_from_u64(0))
            .expect("init");
        let trace = net.infer(&Backend::Digital, image.view(), 0).unwrap().trace;
        let e = estimate(&trace, &gpu, &model, batch, precision);
        let err = e.images_per_s / measured - 1.0;
        let t = trace.totals();
        let gemm_s: f64 = e
            .ops
            .iter()
            .zip(&trace.ops)
            .filter(|(_, op)| op.gemm.is_some())
            .map(|(o, _)| o.time_s)
            .sum();
        let memory_bound_s: f64 = e
            .ops
            .iter()
            .filter(|o| o.bound == Bound::Memory)
            .map(|o| o.time_s)
            .sum();
        let launch_s = model.launch_overhead_s * e.ops.len() as f64;
        println!(
            "{name}: {:.2} GFLOP/image, {} ops; predicted {:.0} images/s, measured {measured}, error {:+.1} %; \
             GEMMs {:.0} %, memory-bound ops {:.0} %, launches {:.1} % of the time; {:.3} J/image (upper bound)",
            t.flops as f64 / 1e9,
            t.ops,
            e.images_per_s,
            100.0 * err,
            100.0 * gemm_s / e.time_s,
            100.0 * memory_bound_s / e.time_s,
            100.0 * launch_s / e.time_s,
            e.energy_per_image_j,
        );
        // For reference only: the same trace under AMP (FP16 tensor cores).
        let amp = estimate(&trace, &gpu, &model, batch, Precision::Fp16);
        println!(
            "{name}: (reference) fp16 tensor-core prediction {:.0} images/s ({:+.0} % vs the measurement)",
            amp.images_per_s,
            100.0 * (amp.images_per_s / measured - 1.0)
        );
        if err.abs() > 0.15 {
            failures.push(format!(
                "{name}: {:.0} vs {measured} ({:+.1} %)",
                e.images_per_s,
                100.0 * err
            ));
        }
    }
    assert!(failures.is_empty(), "outside ±15 %: {failures:?}");
}

#[test]
fn timm_benchmarks_on_geforce_cards_within_15_percent() {
    let model = GpuModel::default();
    let image = Array3::<f32>::zeros((3, 224, 224));
    let trace_of = |name: &str| {
        if name.ends_with(".toml") {
            fourf_hw::LayerTable::load(std::path::Path::new(name))
                .unwrap()
                .to_trace()
        } else {
            fourf_nn::models::preset(name)
                .unwrap()
                .init(&mut StdRng::seed_from_u64(0))
                .unwrap()
                .infer(&Backend::Digital, image.view(), 0)
                .unwrap()
                .trace
        }
    };
    let vgg = "experiments/layers/vgg16_imagenet.toml";
    let points = [
        ("deit-ti", "rtx4090", 17673.84),
        ("deit-s", "rtx4090", 7687.89),
        ("deit-b", "rtx4090", 2847.84),
        (vgg, "rtx4090", 2165.35),
        ("deit-ti", "rtx3090", 10236.41),
        ("deit-s", "rtx3090", 4586.09),
        ("deit-b", "rtx3090", 1564.98),
        (vgg, "rtx3090", 1021.7),
    ];
    let mut failures = Vec::new();
    for (name, gpu, measured) in points {
        let trace = trace_of(name);
        let e = estimate(&trace, &gpu_preset(gpu).unwrap(), &model, 1024, Precision::Fp16);
        let err = e.images_per_s / measured - 1.0;
        println!(
            "{name} on {gpu} (fp16, batch 1024): predicted {:.0}, measured {measured}, error {:+.1} %",
            e.images_per_s,
            100.0 * err
        );
        if err.abs() > 0.15 {
            failures.push(format!("{name} on {gpu}: {:+.1} %", 100.0 * err));
        }
        // Fused attention is faster than eager attention on every transformer.
        if !name.ends_with(".toml") {
            let eager = GpuModel {
                fused_attention: false,
                ..model
            };
            let slow = estimate(&trace, &gpu_preset(gpu).unwrap(), &eager, 1024, Precision::Fp16);
            assert!(slow.images_per_s < e.images_per_s, "{name}: eager {slow:?}");
        }
    }
    assert!(failures.is_empty(), "outside ±15 %: {failures:?}");
}
