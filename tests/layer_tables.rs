//! The example layer tables of `experiments/layers/`: they load, and their traces
//! carry the published counts (FatNet's convolution count for ResNet-18, the
//! parameter counts, VGG-16's MACs) and match the trace of the real DeiT-Ti (and
//! FNet-Base's block that of fourf-nn's FNet).

use std::path::PathBuf;

use fourf_hw::{LayerTable, OpKind, Trace};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn config(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("experiments/layers")
        .join(name)
}

fn load(name: &str) -> (LayerTable, Trace) {
    let table = LayerTable::load(config(name)).unwrap_or_else(|e| panic!("{e}"));
    let trace = table.to_trace();
    println!("{}", table.summary());
    (table, trace)
}

/// The digital trace of fourf-nn's preset `name` on a blank image of `shape`.
fn model_trace(name: &str, shape: (usize, usize, usize)) -> Trace {
    let model = fourf_nn::models::preset(name)
        .unwrap()
        .init(&mut StdRng::seed_from_u64(0))
        .unwrap();
    model
        .infer(
            &fourf_nn::backend::Backend::Digital,
            ndarray::Array3::<f32>::zeros(shape).view(),
            0,
        )
        .unwrap()
        .trace
}

/// FLOPs of the conv2d and linear ops (2 × their multiply–adds).
fn matmul_flops(trace: &Trace) -> u64 {
    trace
        .ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Conv2d | OpKind::Linear))
        .map(|o| o.flops)
        .sum()
}

#[test]
fn resnet18_cifar_has_fatnets_convolution_count() {
    let (table, trace) = load("resnet18_cifar.toml");
    let convs: Vec<_> = trace.ops.iter().filter(|o| o.kind == OpKind::Conv2d).collect();
    assert_eq!(convs.len(), 20);
    let jobs = |k: usize| -> usize {
        convs
            .iter()
            .map(|o| o.conv.as_ref().expect("conv2d ops may run optically"))
            .filter(|c| c.kernel == [k, k])
            .map(|c| c.jobs)
            .sum()
    };
    // FatNet (Ibadulla et al., AI 2023, arXiv 2210.16914): 1,220,800 single-channel
    // convolutions over the 17 3×3 layers; the three 1×1 shortcuts add 172,032.
    assert_eq!(
        convs
            .iter()
            .filter(|o| o.conv.as_ref().unwrap().kernel == [3, 3])
            .count(),
        17
    );
    assert_eq!(jobs(3), 1_220_800);
    assert_eq!(jobs(3) + jobs(1), 1_392_832);
    let summary = table.summary();
    assert_eq!(summary.optical_jobs, 1_392_832);
    // ResNet-18 on CIFAR-100: 11,220,132 parameters (11.22 M).
    assert!(
        (summary.params as f64 / 11.22e6 - 1.0).abs() < 0.01,
        "{}",
        summary.params
    );
    assert_eq!(summary.params, 11_220_132);
    // 555,417,600 conv + 51,200 classifier multiply–adds (derived in the table).
    assert_eq!(matmul_flops(&trace), 2 * 555_468_800);
    // Strided layers keep every second output of the full-resolution convolution.
    let down = trace.ops.iter().find(|o| o.name == "layer2.0.downsample.0").unwrap();
    assert_eq!(down.output_shape, [128, 16, 16]);
    assert_eq!(down.conv.as_ref().unwrap().input, [32, 32]);
    assert_eq!(trace.ops.last().unwrap().name, "fc");
}

#[test]
fn vgg16_cifar_has_313m_macs() {
    let (table, trace) = load("vgg16_cifar.toml");
    let convs = trace.ops.iter().filter(|o| o.kind == OpKind::Conv2d).count();
    assert_eq!(convs, 13);
    // 313,196,544 conv + 51,200 classifier multiply–adds, derived by hand in the
    // table's header (the "≈313 M MACs" usually quoted for VGG-16 on CIFAR).
    assert_eq!(matmul_flops(&trace), 2 * 313_247_744);
    let summary = table.summary();
    // Batch norm, ReLU and pooling add 0.15 %.
    let rel = summary.flops as f64 / (2.0 * 313.2e6) - 1.0;
    assert!((0.0..0.005).contains(&rel), "{rel}");
    assert_eq!(summary.params, 14_774_436);
    assert_eq!(
        trace.ops.iter().find(|o| o.name == "pool5").unwrap().output_shape,
        [512, 1, 1]
    );
}

#[test]
fn vgg16_imagenet_has_15_5g_macs_and_channel_tiles_into_few_frames() {
    let (table, trace) = load("vgg16_imagenet.toml");
    assert_eq!(trace.ops.iter().filter(|o| o.kind == OpKind::Conv2d).count(), 13);
    // 15,346,630,656 conv + 123,633,664 classifier multiply–adds (the table's
    // header) and torchvision's 138,357,544 parameters.
    assert_eq!(matmul_flops(&trace), 2 * 15_470_264_320);
    assert_eq!(table.summary().params, 138_357_544);
    // On a 4096² frame: one frame per input channel (Σ C_in = 3715) without
    // channel tiling (kernel tiling); with it, the input channels of a layer share
    // frames and the light sums them.
    let frames: usize = trace
        .ops
        .iter()
        .filter_map(|o| o.conv.as_ref())
        .map(|c| fourf_hw::frames_for(c, true, 1, [4096, 4096]).frames)
        .sum();
    let inputs: usize = trace.ops.iter().filter_map(|o| o.conv.as_ref()).map(|c| c.inputs).sum();
    assert_eq!(inputs, 3715);
    assert_eq!(frames, 131);
    // The batch shares the filters and never costs more per image.
    let per = |b: usize| -> usize {
        trace
            .ops
            .iter()
            .filter_map(|o| o.conv.as_ref())
            .map(|c| fourf_hw::frames_for(c, true, b, [4096, 4096]).frames)
            .sum()
    };
    assert!(per(8) <= 8 * per(1));
}

#[test]
fn deit_ti_table_matches_the_model_trace() {
    let (table, trace) = load("deit_ti.toml");
    let real = model_trace("deit-ti", (3, 224, 224));
    // Op by op: names, kinds, shapes, FLOPs, gemms, bytes and parameters
    // (`pos_embed` carries the class token's 192 in both).
    assert_eq!(trace.ops.len(), real.ops.len());
    for (t, r) in trace.ops.iter().zip(&real.ops) {
        assert_eq!(
            (&t.name, t.kind, &t.input_shape, &t.output_shape, t.flops, t.gemm),
            (&r.name, r.kind, &r.input_shape, &r.output_shape, r.flops, r.gemm),
        );
        assert_eq!((t.params, t.bytes), (r.params, r.bytes), "{}", t.name);
    }
    let (tt, rt) = (trace.totals(), real.totals());
    assert_eq!(tt.flops, rt.flops);
    let gemms = |t: &Trace| t.ops.iter().filter(|o| o.gemm.is_some()).count();
    assert_eq!(gemms(&trace), gemms(&real));
    assert_eq!(gemms(&trace), 1 + 12 * 6 + 1);
    // timm's parameter count of deit_tiny_patch16_224, from the table and the model.
    assert_eq!(table.summary().params, 5_717_416);
    assert_eq!(real.ops.iter().map(|o| o.params).sum::<usize>(), 5_717_416);
    println!(
        "DeiT-Ti: {} ops, {:.4} GFLOPs (table) = {:.4} GFLOPs (model), {} gemm ops",
        tt.ops,
        tt.flops as f64 / 1e9,
        rt.flops as f64 / 1e9,
        gemms(&trace)
    );
}

#[test]
fn table_errors_name_file_layer_and_key() {
    let tmp = tempfile::Builder::new()
        .prefix("fourf-layer-tables-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let path = dir.join("bad.toml");
    let cases = [
        (
            "[[layer]]\nname = \"c\"\nkind = \"conv\"\n",
            "layer 1 `c`: key `kind`: unknown kind \"conv\"",
        ),
        (
            "[[layer]]\nname = \"c\"\nkind = \"conv2d\"\ninput = [3, 8, 8]\nout_channels = 4\nkernel = 3\nkernal = 3\n",
            "layer 1 `c`: key `kernal`: unknown key",
        ),
        (
            "[[layer]]\nname = \"c\"\nkind = \"conv2d\"\ninput = [3, 8, 8]\nkernel = 3\n",
            "layer 1 `c`: key `out_channels`: missing",
        ),
        (
            "[[layer]]\nname = \"c\"\nkind = \"conv2d\"\ninput = [8, 8]\nout_channels = 4\nkernel = 3\n",
            "layer 1 `c`: key `input`: must be the input [C, H, W]",
        ),
    ];
    for (body, expected) in cases {
        std::fs::write(&path, format!("name = \"bad\"\n{body}")).unwrap();
        let e = LayerTable::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(e.contains(expected), "{e}");
    }
}

#[test]
fn fnet_base_table_follows_fnets_block_and_mixes_on_the_lens() {
    let (table, trace) = load("fnet_base.toml");
    // 12 blocks of fc1 (768·3072 + 3072), fc2 (3072·768 + 768) and two norms (2·768 each).
    assert_eq!(
        table.summary().params,
        12 * (768 * 3072 + 3072 + 3072 * 768 + 768 + 4 * 768)
    );
    // The block is fourf-nn's FNet block, op for op (the small preset's trace).
    let real = model_trace("fnet-fmnist", (1, 28, 28));
    let block = |t: &Trace| -> Vec<(String, OpKind)> {
        t.ops
            .iter()
            .filter(|o| o.name.starts_with("blocks.0."))
            .map(|o| (o.name.clone(), o.kind))
            .collect()
    };
    assert_eq!(block(&trace), block(&real));
    // Every mixing is one 512 × 768 lens transform: one frame per image on the
    // DMD machine's 1600 × 2560 frame, electronic on a 512² one.
    let mixes: Vec<_> = trace.ops.iter().filter_map(|o| o.lens).collect();
    assert_eq!(mixes.len(), 12);
    for lens in mixes {
        assert_eq!(lens.map, [512, 768]);
        let used = fourf_hw::lens_frames(&lens, 64, [1600, 2560]).unwrap();
        assert_eq!((used.frames, used.filters), (64, 0));
        assert!(fourf_hw::lens_frames(&lens, 1, [512, 512]).is_none());
    }
    assert!(real
        .ops
        .iter()
        .filter(|o| o.lens.is_some())
        .all(|o| o.lens.unwrap().map == [49, 64]));
}
