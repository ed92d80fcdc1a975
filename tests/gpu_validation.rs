//! Validation of the GPU roofline (`fourf_hw::gpu`) against published measurements:
//! DeiT-Ti/S/B on one 16 GB V100 at 224², largest possible batch (Touvron et al.
//! 2021, arXiv 2012.12877, Table 1): 2536, 940 and 292 images/s.
//!
//! Settings: the `v100` preset (SXM2 16 GB), batch 256 standing in for "largest
//! possible batch", FP32 (the paper states no precision; see the module docs of
//! `fourf_hw::gpu` for why FP32), the default `GpuModel`, and the trace of one real
//! forward pass of each network. Bar: within ±35 %.

use fourf_hw::gpu::{estimate, gpu_preset, Bound, GpuModel, Precision};
use fourf_nn::backend::Backend;
use ndarray::Array3;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[test]
fn deit_on_v100_matches_published_throughput() {
    let gpu = gpu_preset("v100").expect("v100 preset");
    let model = GpuModel::default();
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
        if err.abs() > 0.35 {
            failures.push(format!(
                "{name}: {:.0} vs {measured} ({:+.1} %)",
                e.images_per_s,
                100.0 * err
            ));
        }
    }
    assert!(failures.is_empty(), "outside ±35 %: {failures:?}");
}
