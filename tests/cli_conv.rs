//! End-to-end tests of `fourf conv`: the binary against the direct convolution,
//! dtypes and stacks, plane pictures, and every user error leaving no output.

use std::path::Path;
use std::process::{Command, Output};

use fourf_experiments::{read_npy, write_npy, Dtype, MapStack};
use fourf_sim::{direct_conv, Mode, Op};
use ndarray::{Array2, Array3, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A fresh, empty directory for one test, removed when the handle drops.
fn test_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fourf-cli-{name}-"))
        .tempdir()
        .unwrap()
}

fn fourf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fourf"))
        .args(args)
        .output()
        .expect("run fourf")
}

/// Runs `fourf conv` with `args` and returns stdout; panics with stderr on failure.
fn conv_ok(args: &[&str]) -> String {
    let mut all = vec!["conv"];
    all.extend_from_slice(args);
    let out = fourf(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fourf {all:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn random(shape: (usize, usize, usize), seed: u64) -> Array3<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array3::from_shape_simple_fn(shape, || rng.random::<f64>() * 2.0 - 1.0)
}

fn save(dir: &Path, name: &str, data: Array3<f64>, stacked: bool, dtype: Dtype) -> String {
    let p = dir.join(name);
    write_npy(&p, &MapStack { data, stacked, dtype }).unwrap();
    p.to_str().unwrap().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `max|a − b| / max|b|`.
fn rel_err(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn parse_json(stdout: &str) -> serde_json::Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line of JSON: {stdout}");
    serde_json::from_str(lines[0]).expect("valid JSON")
}

#[test]
fn matches_direct_convolution_in_every_mode() {
    let tmp = test_dir("modes");
    let dir = tmp.path();
    let x = random((1, 23, 31), 1);
    let k = random((1, 5, 4), 2);
    let xp = save(dir, "x.npy", x.clone(), false, Dtype::F64);
    let kp = save(dir, "k.npy", k.clone(), false, Dtype::F64);
    for mode in [Mode::Valid, Mode::Same, Mode::Full] {
        for op in [Op::Convolution, Op::Correlation] {
            let out = dir.join(format!("y-{mode}-{op:?}.npy"));
            let m = mode.to_string();
            let mut args = vec!["--input", &xp, "--kernel", &kp, "--mode", &m, "--out", s(&out)];
            if op == Op::Correlation {
                args.push("--correlate");
            }
            let stdout = conv_ok(&args);
            assert!(stdout.contains("frame"), "human summary: {stdout}");
            let y = read_npy(&out).unwrap();
            assert!(!y.stacked);
            assert_eq!(y.dtype, Dtype::F64);
            let want = direct_conv(x.index_axis(Axis(0), 0), k.index_axis(Axis(0), 0), mode, op);
            let e = rel_err(&y.data.index_axis(Axis(0), 0).to_owned(), &want);
            assert!(e <= 1e-10, "{mode} {op:?}: relative error {e:e}");
        }
    }
}

#[test]
fn float32_in_float32_out() {
    let tmp = test_dir("f32");
    let dir = tmp.path();
    // Round the operands to f32 so that the reference sees what the file holds.
    let x = random((1, 40, 40), 3).mapv(|v| v as f32 as f64);
    let k = random((1, 7, 7), 4).mapv(|v| v as f32 as f64);
    let xp = save(dir, "x.npy", x.clone(), false, Dtype::F32);
    let kp = save(dir, "k.npy", k.clone(), false, Dtype::F32);
    let out = dir.join("y.npy");
    conv_ok(&["--input", &xp, "--kernel", &kp, "--mode", "same", "--out", s(&out)]);
    let y = read_npy(&out).unwrap();
    assert_eq!(y.dtype, Dtype::F32);
    let want = direct_conv(
        x.index_axis(Axis(0), 0),
        k.index_axis(Axis(0), 0),
        Mode::Same,
        Op::Convolution,
    );
    let e = rel_err(&y.data.index_axis(Axis(0), 0).to_owned(), &want);
    assert!(e <= 1e-5, "relative error {e:e}");
}

#[test]
fn stack_with_shared_kernel_is_tiled() {
    let tmp = test_dir("stack");
    let dir = tmp.path();
    let x = random((12, 16, 16), 5);
    let k = random((1, 3, 3), 6);
    let xp = save(dir, "x.npy", x.clone(), true, Dtype::F64);
    let kp = save(dir, "k.npy", k.clone(), false, Dtype::F64);
    let out = dir.join("y.npy");
    let r = parse_json(&conv_ok(&[
        "--input",
        &xp,
        "--kernel",
        &kp,
        "--mode",
        "valid",
        "--correlate",
        "--seed",
        "7",
        "--out",
        s(&out),
        "--json",
    ]));
    let frames = r["plan"]["frames"].as_u64().unwrap();
    assert!(
        (1..12).contains(&frames),
        "tiling packs 12 small maps into fewer frames: {r}"
    );
    assert_eq!(r["input_shape"], serde_json::json!([12, 16, 16]));
    assert_eq!(r["kernel_shape"], serde_json::json!([3, 3]));
    assert_eq!(r["output_shape"], serde_json::json!([12, 14, 14]));
    assert_eq!(r["mode"], "valid");
    assert_eq!(r["op"], "correlation");
    assert_eq!(r["machine"], "ideal");
    assert_eq!(r["frame_shape"], serde_json::json!([512, 512]));
    assert_eq!(r["seed"], 7);
    assert!(r["wall_s"].as_f64().unwrap() >= 0.0);
    let y = read_npy(&out).unwrap();
    assert!(y.stacked);
    for (i, yi) in y.data.outer_iter().enumerate() {
        let want = direct_conv(
            x.index_axis(Axis(0), i),
            k.index_axis(Axis(0), 0),
            Mode::Valid,
            Op::Correlation,
        );
        assert!(rel_err(&yi.to_owned(), &want) <= 1e-10, "map {i}");
    }
}

#[test]
fn kernel_stacks_pair_with_maps_or_share_one_input() {
    let tmp = test_dir("kernel-stack");
    let dir = tmp.path();
    let x3 = random((4, 20, 20), 7);
    let x2 = random((1, 20, 20), 8);
    let k3 = random((4, 5, 5), 9);
    let x3p = save(dir, "x3.npy", x3.clone(), true, Dtype::F64);
    let x2p = save(dir, "x2.npy", x2.clone(), false, Dtype::F64);
    let k3p = save(dir, "k3.npy", k3.clone(), true, Dtype::F64);
    for (xp, x, shared) in [(&x3p, &x3, false), (&x2p, &x2, true)] {
        let out = dir.join(format!("y-{shared}.npy"));
        conv_ok(&["--input", xp, "--kernel", &k3p, "--mode", "full", "--out", s(&out)]);
        let y = read_npy(&out).unwrap();
        assert!(y.stacked);
        assert_eq!(y.data.dim(), (4, 24, 24));
        for (i, yi) in y.data.outer_iter().enumerate() {
            let xi = x.index_axis(Axis(0), if shared { 0 } else { i });
            let want = direct_conv(xi, k3.index_axis(Axis(0), i), Mode::Full, Op::Convolution);
            assert!(
                rel_err(&yi.to_owned(), &want) <= 1e-10,
                "shared input {shared}, kernel {i}"
            );
        }
    }
}

#[test]
fn planes_are_written_as_pngs_and_fields_with_their_pitches() {
    let tmp = test_dir("planes");
    let dir = tmp.path();
    let xp = save(dir, "x.npy", random((1, 30, 30), 10), false, Dtype::F64);
    let kp = save(dir, "k.npy", random((1, 5, 5), 11), false, Dtype::F64);
    let planes = dir.join("planes");
    let out = dir.join("y.npy");
    let r = parse_json(&conv_ok(&[
        "--input",
        &xp,
        "--kernel",
        &kp,
        "--mode",
        "same",
        "--out",
        s(&out),
        "--planes",
        s(&planes),
        "--json",
    ]));
    assert_eq!(r["planes"], s(&planes));
    for name in [
        "input_plane.png",
        "fourier_plane.png",
        "filter.png",
        "output_field.png",
        "detected.png",
    ] {
        let file = std::fs::File::open(planes.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (512, 512), "{name}");
        assert!(buf.iter().any(|&b| b > 0), "{name} is not all black");
    }
    // The fields as .npy with their pitches, checked against the optics: the
    // Fourier pitch is λf1/(NΔx), the output pitch Δx·f2/f1, the first lens keeps
    // the power (Parseval), and the detected intensity is |output field|².
    let info = &r["plane_arrays"];
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(planes.join("planes.json")).unwrap()).unwrap();
    assert_eq!(&on_disk, info);
    let (lambda, f1, f2) = (
        info["wavelength_m"].as_f64().unwrap(),
        info["focal_lengths_m"][0].as_f64().unwrap(),
        info["focal_lengths_m"][1].as_f64().unwrap(),
    );
    let arrays = info["arrays"].as_array().unwrap();
    let pitch = |i: usize| arrays[i]["pitch_m"][1].as_f64().unwrap();
    assert_eq!(arrays.len(), 5);
    let dx = pitch(0);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    assert!(
        close(pitch(1), lambda * f1 / (512.0 * dx)),
        "Fourier pitch {}",
        pitch(1)
    );
    assert!(close(pitch(3), dx * f2 / f1), "output pitch {}", pitch(3));
    let load = |name: &str| -> (String, Vec<f64>) {
        let bytes = std::fs::read(planes.join(name)).unwrap();
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let header = String::from_utf8(bytes[10..10 + len].to_vec()).unwrap();
        let data = bytes[10 + len..]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (header, data)
    };
    let (h_in, input) = load("input_field.npy");
    let (_, fourier) = load("fourier_field.npy");
    let (_, output) = load("output_field.npy");
    let (h_det, detected) = load("detected.npy");
    assert!(h_in.contains("'<c16'") && h_in.contains("(512, 512)"), "{h_in}");
    assert!(h_det.contains("'<f8'") && h_det.contains("(512, 512)"), "{h_det}");
    assert_eq!((input.len(), detected.len()), (2 * 512 * 512, 512 * 512));
    let power = |v: &[f64], p: f64| v.iter().map(|x| x * x).sum::<f64>() * p * p;
    let (p_in, p_f) = (power(&input, dx), power(&fourier, pitch(1)));
    assert!(p_in > 0.0 && (p_in - p_f).abs() <= 1e-9 * p_in, "{p_in} vs {p_f}");
    for (i, d) in detected.iter().enumerate() {
        let want = output[2 * i].powi(2) + output[2 * i + 1].powi(2);
        assert!((d - want).abs() <= 1e-12 * want.max(1e-300), "detected[{i}]");
    }
}

/// Runs a failing `fourf conv` writing to `out`; checks the exit code, that
/// stderr is one `error:` line naming every string of `names`, and that `out`
/// was not created.
fn conv_fails(args: &[&str], out: &Path, names: &[&str]) {
    let mut all = vec!["conv"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", s(out)]);
    let o = fourf(&all);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "fourf {all:?}: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.lines().count() == 1,
        "one error line: {stderr}"
    );
    for n in names {
        assert!(stderr.contains(n), "stderr names `{n}`: {stderr}");
    }
    assert!(!out.exists(), "{} left behind", out.display());
    assert!(o.stdout.is_empty());
}

/// A `.npy` file with a hand-written header and raw data.
fn raw_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let pad = (10 + dict.len() + 1).next_multiple_of(64) - (10 + dict.len() + 1);
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn user_errors_name_the_culprit_and_write_nothing() {
    let tmp = test_dir("errors");
    let dir = tmp.path();
    let out = dir.join("y.npy");
    let xp = save(dir, "x.npy", random((1, 8, 8), 12), false, Dtype::F64);
    let kp = save(dir, "k.npy", random((1, 3, 3), 13), false, Dtype::F64);
    let ok = ["--kernel", kp.as_str(), "--mode", "same"];

    let missing = dir.join("missing.npy");
    conv_fails(
        &[&["--input", s(&missing)], &ok[..]].concat(),
        &out,
        &["missing.npy", "not found"],
    );

    let ints = dir.join("ints.npy");
    raw_npy(&ints, "<i4", "(2, 2)", &[0; 16]);
    conv_fails(
        &[&["--input", s(&ints)], &ok[..]].concat(),
        &out,
        &["ints.npy", "<i4", "float32 or float64"],
    );

    let rank1 = dir.join("rank1.npy");
    raw_npy(&rank1, "<f8", "(4,)", &[0; 32]);
    conv_fails(
        &[&["--input", s(&rank1)], &ok[..]].concat(),
        &out,
        &["rank1.npy", "1-D", "2-D map"],
    );

    let big = save(dir, "big.npy", Array3::zeros((1, 600, 600)), false, Dtype::F32);
    conv_fails(
        &["--input", &xp, "--kernel", &big, "--mode", "full"],
        &out,
        &["big.npy", "(600, 600)", "(512, 512)"],
    );

    let three = save(dir, "x3.npy", random((3, 8, 8), 14), true, Dtype::F64);
    let two = save(dir, "k2.npy", random((2, 3, 3), 15), true, Dtype::F64);
    conv_fails(
        &["--input", &three, "--kernel", &two, "--mode", "same"],
        &out,
        &["3 maps", "2 kernels"],
    );

    let empty = save(dir, "empty.npy", Array3::zeros((0, 8, 8)), true, Dtype::F64);
    conv_fails(
        &[&["--input", empty.as_str()], &ok[..]].concat(),
        &out,
        &["empty.npy", "empty"],
    );

    let tiny = save(dir, "tiny.npy", random((1, 2, 2), 16), false, Dtype::F64);
    conv_fails(
        &["--input", &tiny, "--kernel", &kp, "--mode", "valid"],
        &out,
        &["tiny.npy", "`valid` mode", "(2, 2)", "(3, 3)"],
    );

    let with_x = |extra: &[&'static str]| [&["--input", xp.as_str()], &ok[..], extra].concat();
    conv_fails(
        &with_x(&["--machine", "nosuch"]),
        &out,
        &["`nosuch`", "ideal-2k", ".toml"],
    );
    conv_fails(
        &with_x(&["--machine", "nosuch.toml"]),
        &out,
        &["nosuch.toml", "not found"],
    );
    conv_fails(
        &with_x(&["--set", "lens1.focal=0.1"]),
        &out,
        &["lens1.focal=0.1", "focal_length_m"],
    );
    conv_fails(
        &with_x(&["--set", "input_slm.pitch_m=-1"]),
        &out,
        &["input_slm.pitch_m", "> 0"],
    );
    conv_fails(&with_x(&["--set", "lens1"]), &out, &["--set lens1", "path=value"]);
    // Device settings: impossible values name the key and the valid range.
    for (set, words) in [
        ("input_slm.fill_factor=1.5", &["input_slm.fill_factor", "(0, 1]"][..]),
        ("input_slm.bits=0", &["input_slm.bits", "1..=16"][..]),
        ("camera.read_noise_e=nan", &["camera.read_noise_e"][..]),
        (
            "camera.quantum_efficiency=2",
            &["camera.quantum_efficiency", "(0, 1]"][..],
        ),
        ("laser.wavelength_m=-5e-7", &["laser.wavelength_m", "> 0"][..]),
        ("simulation.oversampling=0", &["simulation.oversampling", "1..=16"][..]),
        ("detection.scheme=\"telepathy\"", &["telepathy", "coherent"][..]),
        ("camera.read_noise_e=2.0", &["photon budget", "camera.full_scale_e"][..]),
        (
            "input_slm.modulation=\"phase\"",
            &["input_slm.modulation", "amplitude"][..],
        ),
    ] {
        conv_fails(&with_x(&["--set", set]), &out, words);
    }

    // A bad flag value is a usage error (exit 2, from clap).
    let o = fourf(&[
        "conv",
        "--input",
        &xp,
        "--kernel",
        &kp,
        "--mode",
        "circular",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("circular"));
    assert!(!out.exists());
}

#[test]
fn magnifying_machine_still_convolves() {
    let tmp = test_dir("magnify");
    let dir = tmp.path();
    let x = random((1, 30, 25), 16);
    let k = random((1, 6, 3), 17);
    let xp = save(dir, "x.npy", x.clone(), false, Dtype::F64);
    let kp = save(dir, "k.npy", k.clone(), false, Dtype::F64);
    let out = dir.join("y.npy");
    conv_ok(&[
        "--input",
        &xp,
        "--kernel",
        &kp,
        "--mode",
        "full",
        "--set",
        "lens2.focal_length_m=0.2",
        "--out",
        s(&out),
    ]);
    let y = read_npy(&out).unwrap();
    let want = direct_conv(
        x.index_axis(Axis(0), 0),
        k.index_axis(Axis(0), 0),
        Mode::Full,
        Op::Convolution,
    );
    let e = rel_err(&y.data.index_axis(Axis(0), 0).to_owned(), &want);
    assert!(e <= 1e-10, "relative error {e:e}");
}

#[test]
fn machine_toml_file() {
    let tmp = test_dir("toml");
    let dir = tmp.path();
    let machine = dir.join("bench.toml");
    std::fs::write(
        &machine,
        r#"
[laser]
wavelength_m = 633e-9

[input_slm]
pixels_x = 128
pixels_y = 128
pitch_m = 6.4e-6

[lens1]
focal_length_m = 0.15

[lens2]
focal_length_m = 0.3
"#,
    )
    .unwrap();
    let x = random((1, 40, 50), 18);
    let k = random((1, 4, 4), 19);
    let xp = save(dir, "x.npy", x.clone(), false, Dtype::F64);
    let kp = save(dir, "k.npy", k.clone(), false, Dtype::F64);
    let out = dir.join("y.npy");
    let r = parse_json(&conv_ok(&[
        "--input",
        &xp,
        "--kernel",
        &kp,
        "--mode",
        "same",
        "--machine",
        s(&machine),
        "--out",
        s(&out),
        "--json",
    ]));
    assert_eq!(r["machine"], "bench");
    assert_eq!(r["frame_shape"], serde_json::json!([128, 128]));
    let y = read_npy(&out).unwrap();
    let want = direct_conv(
        x.index_axis(Axis(0), 0),
        k.index_axis(Axis(0), 0),
        Mode::Same,
        Op::Convolution,
    );
    let e = rel_err(&y.data.index_axis(Axis(0), 0).to_owned(), &want);
    assert!(e <= 1e-10, "relative error {e:e}");
}

#[test]
fn presets_lists_every_machine() {
    let o = fourf(&["presets"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for (name, _) in fourf_sim::presets::MACHINES {
        assert!(text.lines().any(|l| l == *name), "{name} listed: {text}");
    }
    assert!(text.contains("frame 512×512 px") && text.contains("532 nm"), "{text}");
}

/// A 4-D kernel bank `[C_out, C_in, K, L]` over a `[C_in, H, W]` input is one CNN
/// layer: the C_out maps equal the direct channel sums, the light does the sums
/// when the channels share a frame, and `--json` says how the layer was tiled.
#[test]
fn kernel_banks_run_a_cnn_layer_channel_tiled() {
    let tmp = test_dir("bank");
    let dir = tmp.path();
    let (c_in, c_out, n, k) = (6, 5, 10, 3);
    let x = random((c_in, n, n), 21);
    let w = random((c_out * c_in, k, k), 22);
    let xp = save(dir, "x.npy", x.clone(), true, Dtype::F64);
    let wp = dir.join("w.npy");
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_npy(&wp, "<f8", &format!("({c_out}, {c_in}, {k}, {k})"), &bytes);
    for (mode, op) in [(Mode::Same, Op::Convolution), (Mode::Valid, Op::Correlation)] {
        let out = dir.join(format!("y-{mode}.npy"));
        let m = mode.to_string();
        let mut args = vec![
            "--input",
            &xp,
            "--kernel",
            s(&wp),
            "--mode",
            &m,
            "--machine",
            "ideal-128",
            "--out",
            s(&out),
            "--json",
        ];
        if op == Op::Correlation {
            args.push("--correlate");
        }
        let report = parse_json(&conv_ok(&args));
        let y = read_npy(&out).unwrap();
        assert!(y.stacked && y.data.len_of(Axis(0)) == c_out);
        for o in 0..c_out {
            let mut want: Option<Array2<f64>> = None;
            for i in 0..c_in {
                let part = direct_conv(x.index_axis(Axis(0), i), w.index_axis(Axis(0), o * c_in + i), mode, op);
                want = Some(match want {
                    Some(acc) => acc + part,
                    None => part,
                });
            }
            let got = y.data.index_axis(Axis(0), o).to_owned();
            let e = rel_err(&got, &want.unwrap());
            assert!(e < 1e-12, "{mode} {op:?} output channel {o}: {e}");
        }
        let t = &report["channel_tiling"];
        assert_eq!(t["input_channels"], c_in);
        assert_eq!(t["output_channels"], c_out);
        assert_eq!(report["kernel_shape"], serde_json::json!([c_out, c_in, k, k]));
        // Six 10×10 maps (pitch 11 or 12) share one 128² frame with all five
        // outputs: the whole channel sum is optical.
        assert_eq!(report["plan"]["frames"], 1, "{report}");
        assert_eq!(t["optical_fraction"], 1.0, "{report}");
    }
    // The input must hold C_in maps; a 5-D array is refused naming the 4-D bank.
    let bad = save(dir, "x4.npy", random((4, n, n), 23), true, Dtype::F64);
    let out = dir.join("never.npy");
    conv_fails(
        &["--input", &bad, "--kernel", s(&wp), "--mode", "same"],
        &out,
        &["4 maps", "5 × 6 × 3 × 3", "[6, H, W]"],
    );
    // A non-finite tap is named by its output and input channel.
    let mut bad_w = w.clone();
    bad_w[[3 * c_in + 2, 1, 1]] = f64::NAN;
    let nan = dir.join("nan_bank.npy");
    let bytes: Vec<u8> = bad_w.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_npy(&nan, "<f8", &format!("({c_out}, {c_in}, {k}, {k})"), &bytes);
    conv_fails(
        &["--input", &xp, "--kernel", s(&nan), "--mode", "same"],
        &out,
        &["nan_bank.npy", "kernel w[3][2]", "row 1, column 1"],
    );
    let rank5 = dir.join("rank5.npy");
    raw_npy(&rank5, "<f8", "(1, 1, 1, 2, 2)", &[0; 32]);
    conv_fails(
        &["--input", &xp, "--kernel", s(&rank5), "--mode", "same"],
        &out,
        &["rank5.npy", "5-D", "4-D bank"],
    );
}
