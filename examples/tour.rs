//! A tour of lowp: every public kernel once, at a small realistic shape, on a GPU if there is one
//! and on the lowp-sim simulator otherwise, each result checked against lowp's CPU reference
//! (`lowp::reference`). Each family's function below shows its API as a caller uses it.
//!
//! ```text
//! cargo run --release --example tour                            # every op, one table
//! cargo run --release --example tour -- fp8 nvfp4               # the families with an op naming a word
//! cargo run --release --example tour -- --quick                 # smaller shapes (tests/tour.rs)
//! cargo run --release --example tour -- --shapes bench          # memory-bound kernels, benchmark shapes
//! cargo run --release --example tour -- --shapes bench --rows 64   # ... with 64 rows (tokens) each
//! LOWP_DEVICE=sim cargo run --release --example tour            # the simulator even where a GPU is
//! ```
//!
//! One table row per op: name, shape, device, the check (`bit-exact`, or the largest error found
//! next to the bound it must stay under) and a cost. On a GPU the cost is the median time of 20
//! launches, each between a pair of CUDA events, after 3 warm-up launches (at these shapes mostly
//! launch latency: `cargo bench --bench kernels` measures bandwidth). On the simulator it is the
//! warp-instructions per global byte (read + written) of the op's launches, as lowp-sim counts them
//! (`LOWP_SIM_PROFILE`): a proxy for how instruction-heavy a kernel is, never a time.
//!
//! `--shapes bench` runs the memory-bound kernels at the shapes of `docs/benchmarks.md`. On the
//! simulator those are too large to run whole, so it keeps each row shape (hidden size, heads,
//! K), which is what instructions per byte depend on, and runs 128 rows (`--rows N` to choose);
//! the cost is then split by instruction class.
//!
//! Exit status: 0 when every check passes, 1 when one fails or an op returns an error, 2 when
//! there is no device to run on or the command line is wrong. `LOWP_TOUR_PERTURB=<op>` alters
//! that op's result on the host before its check (tests/tour.rs shows a failed check fails).

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use bytemuck::Pod;
use lowp::cudarc::driver::sys::CUevent_flags;
use lowp::cudarc::driver::{CudaSlice, CudaStream, DeviceRepr};
use lowp::fp8;
use lowp::gemm::{self, GroupLayout};
use lowp::half::bf16;
use lowp::microscaling::{self as mx, GlobalScale};
use lowp::qk_norm_rope::{
    self as qnr, KvCacheFp8, NormWeight, QkNormRopeSettings, Qkv, RopeFrequencies, RopeScaling, RopeStyle, Rotary,
};
use lowp::reference::qk_norm_rope::{RefConfig, RefRotary, RefValue};
use lowp::reference::{
    convert as ref_cvt, fp8 as ref_fp8, gemm as ref_gemm, microscaling as ref_mx, qk_norm_rope as ref_qk,
    rmsnorm as ref_norm,
};
use lowp::{Arch, ErrorFlag, F4E2M1x2, F8E4M3, Lowp, Matrix, ScaleRounding, Ue8m0, cast, rmsnorm};
use lowp_sim::Device;

type Res<T> = Result<T, Box<dyn Error>>;

const EPS: f32 = 1e-6;

const USAGE: &str = "usage: tour [--quick] [--shapes tour|bench] [--rows N] [WORD ...]";

fn main() -> ExitCode {
    let opts = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tour: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (lowp, sim, why) = match open_device() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tour: no device to run on: {e}");
            return ExitCode::from(2);
        }
    };
    let (major, minor) = lowp.compute_capability();
    println!(
        "lowp tour on {} (compute capability {major}.{minor}, module {}, {} SMs): {why}",
        lowp.device_name(),
        lowp.arch().name(),
        lowp.sm_count()
    );
    let mut tour = match Tour::new(lowp, sim, &opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tour: {e}");
            return ExitCode::from(2);
        }
    };
    let steps: Vec<Step> = steps(&opts, sim).into_iter().filter(|s| opts.selects(s.ops)).collect();
    if let Some(op) = &tour.perturb {
        if !steps.iter().any(|s| s.ops.contains(&op.as_str())) {
            eprintln!(
                "tour: LOWP_TOUR_PERTURB={op} names no op that runs; the ops are {}",
                all_ops(&opts, sim).join(", ")
            );
            return ExitCode::from(2);
        }
        println!("LOWP_TOUR_PERTURB={op}: that op's result is altered on the host before its check");
    }
    tour.print_header();
    let (mut failed, mut skipped, mut ran) = (Vec::new(), Vec::new(), 0);
    for step in &steps {
        let rows = (step.run)(&mut tour).unwrap_or_else(|e| vec![Row::error(step.ops[0], &e.to_string())]);
        for row in rows {
            tour.print_row(&row);
            ran += 1;
            if row.check.is_err() {
                failed.push(row.op);
            } else if row.skipped {
                skipped.push(row.op);
            }
        }
    }
    println!();
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!(" ({} not run: {})", skipped.len(), skipped.join(", "))
    };
    if failed.is_empty() {
        println!("{ran} ops: every check passed{skipped}");
        ExitCode::SUCCESS
    } else {
        println!("{ran} ops: {} FAILED: {}{skipped}", failed.len(), failed.join(", "));
        ExitCode::from(1)
    }
}

/// Chooses the driver (the NVIDIA one, else the simulator: `lowp_sim::select_device`, which must
/// run before the process's first cudarc call) and opens device 0. Returns lowp, whether it is
/// the simulator, and why that device.
fn open_device() -> Result<(Lowp, bool, String), String> {
    let asked = std::env::var("LOWP_DEVICE").ok().filter(|v| !v.trim().is_empty());
    let device = lowp_sim::select_device()?;
    let why = match (&device, &asked) {
        (Device::Sim(path), Some(v)) => format!("the simulator ({}), as LOWP_DEVICE={v} asks", path.display()),
        (Device::Sim(path), None) => {
            format!("the simulator ({}): no NVIDIA driver here", path.display())
        }
        (Device::Gpu, Some(v)) => format!("the NVIDIA driver, as LOWP_DEVICE={v} asks"),
        (Device::Gpu, None) => "the NVIDIA driver (LOWP_DEVICE=sim runs the simulator instead)".to_string(),
    };
    let sim = matches!(device, Device::Sim(_));
    if sim {
        // The simulator reads its settings when the driver API starts (the first cudarc call,
        // below): ask it for the per-launch counts of the cost column.
        // SAFETY: no other thread exists yet, so none reads the environment meanwhile.
        unsafe { std::env::set_var("LOWP_SIM_PROFILE", "1") };
    }
    let lowp = Lowp::new(0).map_err(|e| format!("{e} (through {why})"))?;
    Ok((lowp, sim, why))
}

// ---------------------------------------------------------------------------------------------
// What runs, at which shapes

/// Command-line options.
struct Options {
    quick: bool,
    bench: bool,
    /// `--rows N`: rows (tokens) of every bench shape.
    rows: Option<usize>,
    /// Bare words: a family runs if one of its ops contains one (all run when there is none).
    filters: Vec<String>,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut o = Options { quick: false, bench: false, rows: None, filters: Vec::new() };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => o.quick = true,
                "--shapes" => match args.next().as_deref() {
                    Some("tour") => o.bench = false,
                    Some("bench") => o.bench = true,
                    other => {
                        return Err(format!("--shapes takes `tour` or `bench`, not {other:?}"));
                    }
                },
                "--rows" => match args.next().and_then(|v| v.parse().ok()) {
                    Some(n) if n > 0 => o.rows = Some(n),
                    _ => return Err("--rows takes a number > 0".into()),
                },
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                s if s.starts_with('-') => return Err(format!("unknown option {s}")),
                s => o.filters.push(s.to_string()),
            }
        }
        if o.rows.is_some() && !o.bench {
            return Err("--rows applies to --shapes bench".into());
        }
        Ok(o)
    }

    fn selects(&self, ops: &[&str]) -> bool {
        self.filters.is_empty() || ops.iter().any(|op| self.filters.iter().any(|f| op.contains(f.as_str())))
    }
}

/// One family: the ops it reports (table rows, in order) and the function that runs them.
struct Step {
    ops: &'static [&'static str],
    run: Box<dyn Fn(&mut Tour) -> Res<Vec<Row>>>,
}

fn step(ops: &'static [&'static str], run: impl Fn(&mut Tour) -> Res<Vec<Row>> + 'static) -> Step {
    Step { ops, run: Box::new(run) }
}

const NORMS: &[&str] = &["rmsnorm", "add_rmsnorm"];
const CASTS: &[&str] = &["cast", "cast_ue8m0"];
const NEOX: &[&str] = &["qk_norm_rope_neox"];
const NEOX_COMPUTED: &[&str] = &["qk_norm_rope_computed"];
const GPTJ: &[&str] = &["qk_norm_rope_gptj"];
const FP8_ACT: &[&str] = &["fp8_quantize_group", "fp8_dequantize_group"];
const FP8_WEIGHT: &[&str] = &["fp8_quantize_block", "fp8_dequantize_block"];
const FP8: &[&str] =
    &["fp8_quantize_group", "fp8_dequantize_group", "fp8_quantize_block", "fp8_dequantize_block", "fp8_blockwise_gemm"];
const NVFP4: &[&str] = &["nvfp4_global_scale", "nvfp4_quantize", "nvfp4_dequantize", "nvfp4_quantize_grouped"];
const MXFP4: &[&str] = &["mxfp4_quantize", "mxfp4_dequantize", "mxfp4_quantize_grouped"];
const MXFP8: &[&str] = &["mxfp8_quantize", "mxfp8_dequantize", "mxfp8_quantize_grouped"];
const GROUPED_GEMMS: &[&str] = &["bf16_grouped_gemm", "fp8_grouped_gemm"];

/// The families and their shapes: the tour's small realistic ones (`--quick`: smaller still), or
/// the benchmark shapes of `docs/benchmarks.md` for the memory-bound kernels.
fn steps(opts: &Options, sim: bool) -> Vec<Step> {
    if opts.bench {
        // rows of each benchmark shape on a GPU; on the simulator, 128 of them
        let rows = |full: usize| opts.rows.unwrap_or(if sim { 128 } else { full });
        let (norm, qk, group, block, mx) = (rows(16384), rows(16384), rows(4096), rows(7168), rows(8192));
        return vec![
            step(NORMS, move |t| norms(t, norm, 8192)),
            step(NEOX, move |t| qk_norm_rope_neox(t, qk, 32, 8, 128, false)),
            step(NEOX_COMPUTED, move |t| qk_norm_rope_neox(t, qk, 32, 8, 128, true)),
            step(FP8_ACT, move |t| Ok(fp8_activations(t, group, 7168)?.0)),
            step(FP8_WEIGHT, move |t| Ok(fp8_weights(t, block, 2048)?.0)),
            step(NVFP4, move |t| nvfp4(t, mx, 8192, 8)),
            step(MXFP8, move |t| mxfp8(t, mx, 8192, 8)),
        ];
    }
    let q = opts.quick;
    let pick = move |tour: usize, quick: usize| if q { quick } else { tour };
    let (tokens, mx_rows, mx_k, experts) = (pick(32, 4), pick(128, 16), pick(4096, 256), pick(8, 4));
    vec![
        step(NORMS, move |t| norms(t, pick(64, 4), pick(4096, 1024))),
        step(CASTS, move |t| casts(t, pick(64 * 4096, 4 * 1024))),
        // Qwen3-8B's attention: 32 query heads, 8 KV heads of 128
        step(NEOX, move |t| qk_norm_rope_neox(t, tokens, pick(32, 4), pick(8, 1), 128, false)),
        // GPT-J (interleaved) rotation of half of each head, 2 KV heads
        step(GPTJ, move |t| qk_norm_rope_gptj(t, tokens, pick(32, 4), pick(2, 1), pick(128, 64))),
        step(FP8, move |t| fp8_family(t, pick(64, 8), pick(512, 128), pick(2048, 256))),
        step(NVFP4, move |t| nvfp4(t, mx_rows, mx_k, experts)),
        step(MXFP4, move |t| mxfp4(t, mx_rows, mx_k, experts)),
        step(MXFP8, move |t| mxfp8(t, mx_rows, mx_k, experts)),
        step(GROUPED_GEMMS, move |t| {
            grouped_gemms(t, experts, pick(256, 24), pick(256, 128), pick(512, 128), pick(48, 8))
        }),
    ]
}

fn all_ops(opts: &Options, sim: bool) -> Vec<&'static str> {
    steps(opts, sim).iter().flat_map(|s| s.ops.iter().copied()).collect()
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

/// RMSNorm and the fused residual add + RMSNorm of a transformer block, bf16 `[rows, hidden]`.
fn norms(t: &mut Tour, rows: usize, hidden: usize) -> Res<Vec<Row>> {
    let (lowp, stream) = t.handles();
    let shape = format!("[{rows}, {hidden}] bf16");
    let x_host = t.rng.bf16s(rows * hidden, 1.0);
    let residual_host = t.rng.bf16s(rows * hidden, 1.0);
    let w_host = t.rng.weights(hidden);
    let x = Matrix::from_host(&stream, &x_host, rows, hidden)?;
    let w = stream.clone_htod(&w_host)?;
    let mut y = Matrix::<bf16>::zeros(&stream, rows, hidden)?;
    let mut out = Vec::new();

    // y = x / sqrt(mean(x²) + eps) · w, per row
    let run = |y: &mut Matrix<bf16>| rmsnorm::rmsnorm(&lowp, &stream, &x, &w, EPS, y);
    let first = t.launch(|| run(&mut y))?;
    let mut got = y.to_host(&stream)?;
    t.perturb("rmsnorm", &mut got);
    let want = ref_norm::rmsnorm(&x_host, rows, hidden, hidden, &w_host, EPS);
    let check = verdict([within_ulps("y", &got, &want, 1.0)]);
    out.push(t.row("rmsnorm", &shape, check, first, || run(&mut y))?);

    // residual += x (in place, rounded to bf16), then y = rmsnorm(residual) · w
    let mut residual = Matrix::from_host(&stream, &residual_host, rows, hidden)?;
    let run = |r: &mut Matrix<bf16>, y: &mut Matrix<bf16>| rmsnorm::add_rmsnorm(&lowp, &stream, &x, &w, EPS, r, y);
    let first = t.launch(|| run(&mut residual, &mut y))?;
    let got_residual = residual.to_host(&stream)?;
    let mut got = y.to_host(&stream)?;
    t.perturb("add_rmsnorm", &mut got);
    let (want_residual, want) =
        ref_norm::add_rmsnorm(&x_host, hidden, &residual_host, hidden, rows, hidden, &w_host, EPS);
    let check = verdict([bit_exact("residual", &got_residual, &want_residual), within_ulps("y", &got, &want, 1.0)]);
    out.push(t.row("add_rmsnorm", &shape, check, first, || run(&mut residual, &mut y))?);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Casts

/// Element-wise casts of an f32 vector: to FP8 E4M3 (nearest even, saturating: a few of these
/// values are past ±448), and to UE8M0 powers of two rounded up (scales `|x| / 448`).
fn casts(t: &mut Tour, n: usize) -> Res<Vec<Row>> {
    let (lowp, stream) = t.handles();
    let shape = format!("[{n}] f32");
    let x_host: Vec<f32> = (0..n).map(|_| (200.0 * t.rng.normal()) as f32).collect();
    let x = stream.clone_htod(&x_host)?;
    let mut out = Vec::new();

    // out[i] = e4m3(x[i])
    let mut codes = stream.alloc_zeros::<F8E4M3>(n)?;
    let run = |codes: &mut CudaSlice<F8E4M3>| cast::cast(&lowp, &stream, &x, codes);
    let first = t.launch(|| run(&mut codes))?;
    let mut got = t.download(&codes)?;
    t.perturb("cast", &mut got);
    let want: Vec<u8> = x_host.iter().map(|&v| ref_cvt::f32_to_e4m3fn_sat(v)).collect();
    out.push(t.row("cast", &format!("{shape} → e4m3"), verdict([bit_exact("codes", &got, &want)]), first, || {
        run(&mut codes)
    })?);

    // scales[i] = 2^⌈log2(|x[i]| / 448)⌉
    let s_host: Vec<f32> = x_host.iter().map(|v| v.abs() / 448.0).collect();
    let s = stream.clone_htod(&s_host)?;
    let mut scales = stream.alloc_zeros::<Ue8m0>(n)?;
    let run = |scales: &mut CudaSlice<Ue8m0>| cast::cast_ue8m0(&lowp, &stream, &s, ScaleRounding::Ceil, scales);
    let first = t.launch(|| run(&mut scales))?;
    let mut got = t.download(&scales)?;
    t.perturb("cast_ue8m0", &mut got);
    let want: Vec<u8> = s_host.iter().map(|&v| ref_cvt::f32_to_ue8m0_ceil(v)).collect();
    let check = verdict([bit_exact("scales", &got, &want)]);
    out.push(t.row("cast_ue8m0", &format!("{shape} → ue8m0"), check, first, || run(&mut scales))?);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// QK-RMSNorm + RoPE

/// The attention prologue on the fused qkv projection `[tokens, (Hq + 2·Hk)·D]`, NeoX style (Qwen3,
/// Llama): RMSNorm of each q and k head, rotation of the pairs (i, i + D/2) by angles from a
/// cos/sin cache (or, `computed`, computed in the kernel from the frequencies), written back in
/// place (v untouched).
fn qk_norm_rope_neox(t: &mut Tour, tokens: usize, hq: usize, hk: usize, d: usize, computed: bool) -> Res<Vec<Row>> {
    let op = if computed { "qk_norm_rope_computed" } else { "qk_norm_rope_neox" };
    let (lowp, stream) = t.handles();
    let cols = (hq + 2 * hk) * d;
    let cfg = QkNormRopeSettings {
        num_q_heads: hq,
        num_kv_heads: hk,
        head_dim: d,
        rotary_dim: d,
        style: RopeStyle::NeoX,
        eps: EPS,
        weight: NormWeight::Plain,
        mrope_section: None,
    };
    let max_pos = 4096;
    let (inv_freq, attention) = qnr::rope_inv_freq(d, 1e6, RopeScaling::None)?;
    let cache = qnr::cos_sin_cache(&inv_freq, attention, max_pos);
    let qkv_host = t.rng.bf16s(tokens * cols, 2.0);
    let (q_weight, k_weight) = (t.rng.weights(d), t.rng.weights(d));
    let positions: Vec<i32> = (0..tokens).map(|_| t.rng.below(max_pos) as i32).collect();

    let mut qkv = Matrix::from_host(&stream, &qkv_host, tokens, cols)?;
    let (qw, kw) = (stream.clone_htod(&q_weight)?, stream.clone_htod(&k_weight)?);
    let pos = stream.clone_htod(&positions)?;
    let cos_sin = stream.clone_htod(&cache)?;
    let freqs = RopeFrequencies::new(&stream, d, 1e6, RopeScaling::None)?;
    let run = |qkv: &mut Matrix<bf16>| {
        let rotary = if computed { Rotary::Computed(&freqs) } else { Rotary::Cache { cos_sin: &cos_sin, max_pos } };
        qnr::qk_norm_rope(&lowp, &stream, &qw, &kw, &pos, rotary, &cfg, Qkv::InPlace(qkv), None, None)
    };
    let first = t.launch(|| run(&mut qkv))?;
    let after = qkv.to_host(&stream)?;
    let (mut got_q, got_k, got_v) = (
        heads(&after, cols, 0, hq * d),
        heads(&after, cols, hq * d, hk * d),
        heads(&after, cols, (hq + hk) * d, hk * d),
    );
    t.perturb(op, &mut got_q);

    let rc = RefConfig {
        num_q_heads: hq,
        num_kv_heads: hk,
        head_dim: d,
        rotary_dim: d,
        gptj: false,
        eps: EPS,
        norm: true,
        rope: true,
        one_plus_weight: false,
        mrope_section: None,
    };
    let positions: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
    let rotary = if computed {
        RefRotary::Freq { inv_freq: &inv_freq, attention_factor: attention }
    } else {
        RefRotary::Cache { cos_sin: &cache, max_pos }
    };
    let (want_q, want_k) = ref_qk::qk_norm_rope(&rc, &qkv_host, tokens, cols, &q_weight, &k_weight, &positions, rotary);
    let want_v = heads(&qkv_host, cols, (hq + hk) * d, hk * d);
    let check =
        verdict([within_tol("q", &got_q, &want_q), within_tol("k", &got_k, &want_k), bit_exact("v", &got_v, &want_v)]);
    let shape = format!("T {tokens}, Hq {hq}, Hk {hk}, D {d}");
    Ok(vec![t.row(op, &shape, check, first, || run(&mut qkv))?])
}

/// The same prologue GPT-J style (interleaved pairs (2i, 2i + 1)) on the first `D/2` dimensions
/// of each head, with angles computed in the kernel from frequencies (no cache), q and k written
/// to their own tensors, and each token's k and v stored into FP8 KV caches (`e4m3(value /
/// scale)`, row = token, as without a slot mapping).
fn qk_norm_rope_gptj(t: &mut Tour, tokens: usize, hq: usize, hk: usize, d: usize) -> Res<Vec<Row>> {
    let (lowp, stream) = t.handles();
    let (cols, rotary_dim) = ((hq + 2 * hk) * d, d / 2);
    let cfg = QkNormRopeSettings {
        num_q_heads: hq,
        num_kv_heads: hk,
        head_dim: d,
        rotary_dim,
        style: RopeStyle::GptJ,
        eps: EPS,
        weight: NormWeight::Plain,
        mrope_section: None,
    };
    let (k_scale, v_scale) = (0.05f32, 0.03f32);
    let qkv_host = t.rng.bf16s(tokens * cols, 2.0);
    let (q_weight, k_weight) = (t.rng.weights(d), t.rng.weights(d));
    let positions: Vec<i64> = (0..tokens).map(|_| t.rng.below(32768) as i64).collect();

    let freqs = RopeFrequencies::new(&stream, rotary_dim, 10000.0, RopeScaling::None)?;
    let mut qkv = Matrix::from_host(&stream, &qkv_host, tokens, cols)?;
    let (qw, kw) = (stream.clone_htod(&q_weight)?, stream.clone_htod(&k_weight)?);
    let pos = stream.clone_htod(&positions)?;
    let mut q = Matrix::<bf16>::zeros(&stream, tokens, hq * d)?;
    let mut k = Matrix::<bf16>::zeros(&stream, tokens, hk * d)?;
    let mut k_cache = Matrix::<F8E4M3>::zeros(&stream, tokens, hk * d)?;
    let mut v_cache = Matrix::<F8E4M3>::zeros(&stream, tokens, hk * d)?;
    let run = |qkv: &mut Matrix<bf16>,
               q: &mut Matrix<bf16>,
               k: &mut Matrix<bf16>,
               kc: &mut Matrix<F8E4M3>,
               vc: &mut Matrix<F8E4M3>| {
        let kv_cache = KvCacheFp8 { k_cache: kc, v_cache: Some(vc), slot_mapping: None, k_scale, v_scale };
        qnr::qk_norm_rope(
            &lowp,
            &stream,
            &qw,
            &kw,
            &pos,
            Rotary::Computed(&freqs),
            &cfg,
            Qkv::Separate { qkv, q_out: q, k_out: k },
            Some(kv_cache),
            None,
        )
    };
    let first = t.launch(|| run(&mut qkv, &mut q, &mut k, &mut k_cache, &mut v_cache))?;
    let mut got_q = q.to_host(&stream)?;
    let got_k = k.to_host(&stream)?;
    let (got_kc, got_vc) = (k_cache.to_host(&stream)?, v_cache.to_host(&stream)?);
    t.perturb("qk_norm_rope_gptj", &mut got_q);

    let rc = RefConfig {
        num_q_heads: hq,
        num_kv_heads: hk,
        head_dim: d,
        rotary_dim,
        gptj: true,
        eps: EPS,
        norm: true,
        rope: true,
        one_plus_weight: false,
        mrope_section: None,
    };
    let (inv_freq, attention_factor) = qnr::rope_inv_freq(rotary_dim, 10000.0, RopeScaling::None)?;
    let rotary = RefRotary::Freq { inv_freq: &inv_freq, attention_factor };
    let (want_q, want_k) = ref_qk::qk_norm_rope(&rc, &qkv_host, tokens, cols, &q_weight, &k_weight, &positions, rotary);
    // the caches hold the kernel's own k, and the untouched v, quantized
    let fp8_of = |v: bf16, scale: f32| ref_cvt::f32_to_e4m3fn_sat(v.to_f32() / scale);
    let want_kc: Vec<u8> = got_k.iter().map(|&v| fp8_of(v, k_scale)).collect();
    let want_vc: Vec<u8> = heads(&qkv_host, cols, (hq + hk) * d, hk * d).iter().map(|&v| fp8_of(v, v_scale)).collect();
    let check = verdict([
        within_tol("q", &got_q, &want_q),
        within_tol("k", &got_k, &want_k),
        bit_exact("k cache", &got_kc, &want_kc),
        bit_exact("v cache", &got_vc, &want_vc),
    ]);
    let shape = format!("T {tokens}, Hq {hq}, Hk {hk}, D {d}, rot {rotary_dim}");
    Ok(vec![t.row("qk_norm_rope_gptj", &shape, check, first, || {
        run(&mut qkv, &mut q, &mut k, &mut k_cache, &mut v_cache)
    })?])
}

/// Columns `[from, from + n)` of every row of a `[rows, cols]` host matrix.
fn heads<T: Copy>(m: &[T], cols: usize, from: usize, n: usize) -> Vec<T> {
    m.chunks(cols).flat_map(|row| row[from..from + n].iter().copied()).collect()
}

// ---------------------------------------------------------------------------------------------
// FP8 (DeepSeek-V3 recipe)

/// FP8 the DeepSeek-V3 way: activations quantized per token in 1×128 groups, weights per 128×128
/// block (E4M3 codes, f32 scales), and the blockwise-scaled GEMM that reads both.
fn fp8_family(t: &mut Tour, m: usize, n: usize, k: usize) -> Res<Vec<Row>> {
    let (mut out, x) = fp8_activations(t, m, k)?;
    let (rows, w) = fp8_weights(t, n, k)?;
    out.extend(rows);
    out.push(fp8_gemm(t, &x, &w)?);
    Ok(out)
}

/// Quantized activations on the device, and the reference's codes and row-major scales.
struct Fp8Activations {
    q: Matrix<F8E4M3>,
    scales: lowp::Scales<f32>,
    codes_host: Vec<u8>,
    scales_host: Vec<f32>,
}

/// `x [m, k]` bf16 → E4M3 codes and one f32 scale per 1×128 group (`amax / 448`), in the M-major
/// layout the GEMMs read fastest; then back to bf16.
fn fp8_activations(t: &mut Tour, m: usize, k: usize) -> Res<(Vec<Row>, Fp8Activations)> {
    let (lowp, stream) = t.handles();
    let shape = format!("[{m}, {k}] bf16");
    let groups = k / fp8::GROUP;
    let x_host = t.rng.bf16s(m * k, 1.0);
    let x = Matrix::from_host(&stream, &x_host, m, k)?;
    let mut q = Matrix::<F8E4M3>::zeros(&stream, m, k)?;
    let ld = lowp::m_major_ld(m);
    let mut scales = lowp::Scales::<f32>::zeros(&stream, m, groups, lowp::ScaleLayout::MMajor { ld })?;
    let mut out = Vec::new();

    let run = |q: &mut Matrix<F8E4M3>, s: &mut lowp::Scales<f32>| {
        fp8::quantize_per_token_group(&lowp, &stream, &x, lowp::ScaleRounding::Exact, q, s)
    };
    let first = t.launch(|| run(&mut q, &mut scales))?;
    let mut got_q = q.to_host(&stream)?;
    t.perturb("fp8_quantize_group", &mut got_q);
    let got_s = t.download(scales.buffer())?;
    let got_s: Vec<f32> = (0..m * groups).map(|i| got_s[(i % groups) * ld + i / groups]).collect(); // to row-major
    let (codes_host, scales_host) = ref_fp8::quantize_per_token_group(&to_f32(&x_host), m, k, ScaleRounding::Exact)?;
    let check = verdict([bit_exact("codes", &got_q, &codes_host), bit_exact("scales", &got_s, &scales_host)]);
    out.push(t.row("fp8_quantize_group", &shape, check, first, || run(&mut q, &mut scales))?);

    let mut y = Matrix::<bf16>::zeros(&stream, m, k)?;
    let run = |y: &mut Matrix<bf16>| fp8::dequantize_per_token_group(&lowp, &stream, &q, &scales, y);
    let first = t.launch(|| run(&mut y))?;
    let mut got = y.to_host(&stream)?;
    t.perturb("fp8_dequantize_group", &mut got);
    let want = to_bf16(&ref_fp8::dequantize(&codes_host, m, k, &scales_host, 1));
    let check = verdict([bit_exact("values", &got, &want)]);
    out.push(t.row("fp8_dequantize_group", &format!("[{m}, {k}] e4m3"), check, first, || run(&mut y))?);
    Ok((out, Fp8Activations { q, scales, codes_host, scales_host }))
}

/// Quantized weights on the device, and the reference's codes and scales.
struct Fp8Weights {
    q: Matrix<F8E4M3>,
    scales: lowp::Scales<f32>,
    codes_host: Vec<u8>,
    scales_host: Vec<f32>,
}

/// `w [n, k]` bf16 → E4M3 codes and one f32 scale per 128×128 block (`[⌈n/128⌉, k/128]`); then
/// back to bf16.
fn fp8_weights(t: &mut Tour, n: usize, k: usize) -> Res<(Vec<Row>, Fp8Weights)> {
    let (lowp, stream) = t.handles();
    let shape = format!("[{n}, {k}] bf16");
    let w_host = t.rng.bf16s(n * k, 0.05);
    let w = Matrix::from_host(&stream, &w_host, n, k)?;
    let mut q = Matrix::<F8E4M3>::zeros(&stream, n, k)?;
    let (rb, cb) = (n.div_ceil(fp8::GROUP), k / fp8::GROUP);
    let mut scales = lowp::Scales::<f32>::zeros(&stream, rb, cb, lowp::ScaleLayout::RowMajor { ld: cb })?;
    let mut out = Vec::new();

    let run = |q: &mut Matrix<F8E4M3>, s: &mut lowp::Scales<f32>| {
        fp8::quantize_per_block(&lowp, &stream, &w, lowp::ScaleRounding::Exact, q, s)
    };
    let first = t.launch(|| run(&mut q, &mut scales))?;
    let mut got_q = q.to_host(&stream)?;
    t.perturb("fp8_quantize_block", &mut got_q);
    let got_s = scales.to_host_raw(&stream)?;
    let (codes_host, scales_host) = ref_fp8::quantize_per_block(&to_f32(&w_host), n, k, ScaleRounding::Exact)?;
    let check = verdict([bit_exact("codes", &got_q, &codes_host), bit_exact("scales", &got_s, &scales_host)]);
    out.push(t.row("fp8_quantize_block", &shape, check, first, || run(&mut q, &mut scales))?);

    let mut y = Matrix::<bf16>::zeros(&stream, n, k)?;
    let run = |y: &mut Matrix<bf16>| fp8::dequantize_per_block(&lowp, &stream, &q, &scales, y);
    let first = t.launch(|| run(&mut y))?;
    let mut got = y.to_host(&stream)?;
    t.perturb("fp8_dequantize_block", &mut got);
    let want = to_bf16(&ref_fp8::dequantize(&codes_host, n, k, &scales_host, fp8::GROUP));
    let check = verdict([bit_exact("values", &got, &want)]);
    out.push(t.row("fp8_dequantize_block", &format!("[{n}, {k}] e4m3"), check, first, || run(&mut y))?);
    Ok((out, Fp8Weights { q, scales, codes_host, scales_host }))
}

/// `d [m, n] = x · wᵀ` in bf16 from the quantized operands above (Hopper: wgmma and TMA).
fn fp8_gemm(t: &mut Tour, x: &Fp8Activations, w: &Fp8Weights) -> Res<Row> {
    let (lowp, stream) = t.handles();
    let (m, k, n) = (x.q.rows(), x.q.cols(), w.q.rows());
    let shape = format!("M {m}, N {n}, K {k}");
    if let Some(why) = not_hopper(&lowp) {
        return Ok(Row::skipped("fp8_blockwise_gemm", &shape, &why));
    }
    let mut d = Matrix::<bf16>::zeros(&stream, m, n)?;
    let run = |d: &mut Matrix<bf16>| gemm::blockwise_fp8(&lowp, &stream, &x.q, &x.scales, &w.q, &w.scales, d);
    let first = t.launch(|| run(&mut d))?;
    let mut got = d.to_host(&stream)?;
    t.perturb("fp8_blockwise_gemm", &mut got);
    let groups = k / fp8::GROUP;
    let sx = |row: usize, g: usize| x.scales_host[row * groups + g];
    let want: Vec<(usize, Vec<f64>)> = (0..m)
        .map(|r| (r, ref_gemm::blockwise_fp8_row(&x.codes_host, r, sx, &w.codes_host, &w.scales_host, n, k)))
        .collect();
    t.row("fp8_blockwise_gemm", &shape, verdict([gemm_check(&got, n, &want)]), first, || run(&mut d))
}

/// Why the Hopper GEMMs cannot run on this device, if they cannot.
fn not_hopper(lowp: &Lowp) -> Option<String> {
    let (major, minor) = lowp.compute_capability();
    (lowp.arch() != Arch::Sm90a).then(|| format!("needs compute capability 9.0 (this device: {major}.{minor})"))
}

// ---------------------------------------------------------------------------------------------
// NVFP4, MXFP4, MXFP8

/// NVFP4 (blocks of 16 E2M1 values, E4M3 block scales, a per-tensor f32 global scale): the global
/// scale computed on the device, quantization with 128×4-swizzled scales (the layout Blackwell's
/// tensor cores read), dequantization, and the grouped (MoE) quantizer, whose scales go to one
/// swizzled region per expert.
fn nvfp4(t: &mut Tour, rows: usize, k: usize, experts: usize) -> Res<Vec<Row>> {
    use lowp::{ScaleLayout, Scales};
    let (lowp, stream) = t.handles();
    let shape = format!("[{rows}, {k}] bf16");
    let x_host = t.rng.bf16s(rows * k, 1.0);
    let x_f32 = to_f32(&x_host);
    let x = Matrix::from_host(&stream, &x_host, rows, k)?;
    let mut out = Vec::new();

    // g = 448 · 6 / amax(x), left on the device for the quantizer to read
    let mut g = stream.alloc_zeros::<f32>(1)?;
    let run = |g: &mut CudaSlice<f32>| mx::nvfp4_global_scale(&lowp, &stream, &x, g);
    let first = t.launch(|| run(&mut g))?;
    let mut got_g = t.download(&g)?;
    t.perturb("nvfp4_global_scale", &mut got_g);
    let want_g = ref_mx::nvfp4_global_scale(ref_mx::tensor_amax(&x_f32));
    out.push(t.row("nvfp4_global_scale", &shape, verdict([bit_exact("g", &got_g, &[want_g])]), first, || run(&mut g))?);
    let g = GlobalScale::Device(&g);

    let fmt = ref_mx::Format::Nvfp4 { g: want_g };
    let want = ref_mx::quantize(&x_f32, rows, k, fmt)?;
    let scale_cols = k / mx::NVFP4_BLOCK as usize;
    let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, rows, k / 2)?;
    let mut scales = Scales::<F8E4M3>::zeros(&stream, rows, scale_cols, ScaleLayout::Swizzled)?;
    let run = |c: &mut Matrix<F4E2M1x2>, s: &mut Scales<F8E4M3>| mx::nvfp4_quantize(&lowp, &stream, &x, &g, c, s);
    let first = t.launch(|| run(&mut codes, &mut scales))?;
    let mut got_codes = codes.to_host(&stream)?;
    t.perturb("nvfp4_quantize", &mut got_codes);
    let check = check_quantized(&got_codes, &scales.to_host_raw(&stream)?, &want, rows, scale_cols);
    out.push(t.row("nvfp4_quantize", &shape, check, first, || run(&mut codes, &mut scales))?);

    let mut y = Matrix::<bf16>::zeros(&stream, rows, k)?;
    let run = |y: &mut Matrix<bf16>| mx::nvfp4_dequantize(&lowp, &stream, &codes, &scales, &g, y);
    let first = t.launch(|| run(&mut y))?;
    let mut got = y.to_host(&stream)?;
    t.perturb("nvfp4_dequantize", &mut got);
    let check = check_dequantized(&got, &want, rows, k, fmt);
    out.push(t.row("nvfp4_dequantize", &format!("[{rows}, {k}] nvfp4"), check, first, || run(&mut y))?);

    // tokens sorted by expert; ends[e] = the row where expert e's tokens end
    let ends_host = group_ends(&zipf(experts, rows));
    let ends = stream.clone_htod(&ends_host)?;
    let layout = ScaleLayout::GroupedSwizzled { groups: experts };
    let mut scales = Scales::<F8E4M3>::zeros(&stream, rows, scale_cols, layout)?;
    let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, rows, k / 2)?;
    let mut offsets = stream.alloc_zeros::<i32>(experts + 1)?;
    let mut flag = ErrorFlag::new(&stream)?; // set on the device if the ends were out of range
    let run = |c: &mut Matrix<F4E2M1x2>, s: &mut Scales<F8E4M3>, o: &mut CudaSlice<i32>, f: &mut ErrorFlag| {
        mx::nvfp4_quantize_grouped(&lowp, &stream, &x, &ends, &g, c, s, o, Some(f))
    };
    let first = t.launch(|| run(&mut codes, &mut scales, &mut offsets, &mut flag))?;
    let mut got_codes = codes.to_host(&stream)?;
    t.perturb("nvfp4_quantize_grouped", &mut got_codes);
    let got = (scales.to_host_raw(&stream)?, t.download(&offsets)?, flag.read(&stream)?);
    let check = check_grouped(&got_codes, &got.0, &got.1, got.2, &want, rows, scale_cols, &ends_host);
    let shape = format!("[{rows}, {k}] bf16, E {experts}");
    let again = || run(&mut codes, &mut scales, &mut offsets, &mut flag);
    out.push(t.row("nvfp4_quantize_grouped", &shape, check, first, again)?);
    Ok(out)
}

/// MXFP4 (OCP Microscaling: blocks of 32 E2M1 values, power-of-two UE8M0 scales rounded down, the
/// OCP rule): quantization with swizzled scales, dequantization, the grouped quantizer.
fn mxfp4(t: &mut Tour, rows: usize, k: usize, experts: usize) -> Res<Vec<Row>> {
    use lowp::{ScaleLayout, ScaleRounding, Scales};
    let (lowp, stream) = t.handles();
    let shape = format!("[{rows}, {k}] bf16");
    let rule = ScaleRounding::Floor;
    let x_host = t.rng.bf16s(rows * k, 1.0);
    let x = Matrix::from_host(&stream, &x_host, rows, k)?;
    let fmt = ref_mx::Format::Mxfp4(rule);
    let want = ref_mx::quantize(&to_f32(&x_host), rows, k, fmt)?;
    let scale_cols = k / mx::MX_BLOCK as usize;
    let mut out = Vec::new();

    let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, rows, k / 2)?;
    let mut scales = Scales::<Ue8m0>::zeros(&stream, rows, scale_cols, ScaleLayout::Swizzled)?;
    let run = |c: &mut Matrix<F4E2M1x2>, s: &mut Scales<Ue8m0>| mx::mxfp4_quantize(&lowp, &stream, &x, rule, c, s);
    let first = t.launch(|| run(&mut codes, &mut scales))?;
    let mut got_codes = codes.to_host(&stream)?;
    t.perturb("mxfp4_quantize", &mut got_codes);
    let check = check_quantized(&got_codes, &scales.to_host_raw(&stream)?, &want, rows, scale_cols);
    out.push(t.row("mxfp4_quantize", &shape, check, first, || run(&mut codes, &mut scales))?);

    let mut y = Matrix::<bf16>::zeros(&stream, rows, k)?;
    let run = |y: &mut Matrix<bf16>| mx::mxfp4_dequantize(&lowp, &stream, &codes, &scales, y);
    let first = t.launch(|| run(&mut y))?;
    let mut got = y.to_host(&stream)?;
    t.perturb("mxfp4_dequantize", &mut got);
    let check = check_dequantized(&got, &want, rows, k, fmt);
    out.push(t.row("mxfp4_dequantize", &format!("[{rows}, {k}] mxfp4"), check, first, || run(&mut y))?);

    let ends_host = group_ends(&zipf(experts, rows));
    let ends = stream.clone_htod(&ends_host)?;
    let layout = ScaleLayout::GroupedSwizzled { groups: experts };
    let mut scales = Scales::<Ue8m0>::zeros(&stream, rows, scale_cols, layout)?;
    let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, rows, k / 2)?;
    let mut offsets = stream.alloc_zeros::<i32>(experts + 1)?;
    let mut flag = ErrorFlag::new(&stream)?; // set on the device if the ends were out of range
    let run = |c: &mut Matrix<F4E2M1x2>, s: &mut Scales<Ue8m0>, o: &mut CudaSlice<i32>, f: &mut ErrorFlag| {
        mx::mxfp4_quantize_grouped(&lowp, &stream, &x, &ends, rule, c, s, o, Some(f))
    };
    let first = t.launch(|| run(&mut codes, &mut scales, &mut offsets, &mut flag))?;
    let mut got_codes = codes.to_host(&stream)?;
    t.perturb("mxfp4_quantize_grouped", &mut got_codes);
    let got = (scales.to_host_raw(&stream)?, t.download(&offsets)?, flag.read(&stream)?);
    let check = check_grouped(&got_codes, &got.0, &got.1, got.2, &want, rows, scale_cols, &ends_host);
    let shape = format!("[{rows}, {k}] bf16, E {experts}");
    let again = || run(&mut codes, &mut scales, &mut offsets, &mut flag);
    out.push(t.row("mxfp4_quantize_grouped", &shape, check, first, again)?);
    Ok(out)
}

/// MXFP8 (blocks of 32 E4M3 values, UE8M0 scales, here rounded up so that no value saturates):
/// quantization with swizzled scales, dequantization, the grouped quantizer.
fn mxfp8(t: &mut Tour, rows: usize, k: usize, experts: usize) -> Res<Vec<Row>> {
    use lowp::{ScaleLayout, ScaleRounding, Scales};
    let (lowp, stream) = t.handles();
    let shape = format!("[{rows}, {k}] bf16");
    let rule = ScaleRounding::Ceil;
    let x_host = t.rng.bf16s(rows * k, 1.0);
    let x = Matrix::from_host(&stream, &x_host, rows, k)?;
    let fmt = ref_mx::Format::Mxfp8(rule);
    let want = ref_mx::quantize(&to_f32(&x_host), rows, k, fmt)?;
    let scale_cols = k / mx::MX_BLOCK as usize;
    let mut out = Vec::new();

    let mut codes = Matrix::<F8E4M3>::zeros(&stream, rows, k)?;
    let mut scales = Scales::<Ue8m0>::zeros(&stream, rows, scale_cols, ScaleLayout::Swizzled)?;
    let run = |c: &mut Matrix<F8E4M3>, s: &mut Scales<Ue8m0>| mx::mxfp8_quantize(&lowp, &stream, &x, rule, c, s);
    let first = t.launch(|| run(&mut codes, &mut scales))?;
    let mut got_codes = codes.to_host(&stream)?;
    t.perturb("mxfp8_quantize", &mut got_codes);
    let check = check_quantized(&got_codes, &scales.to_host_raw(&stream)?, &want, rows, scale_cols);
    out.push(t.row("mxfp8_quantize", &shape, check, first, || run(&mut codes, &mut scales))?);

    let mut y = Matrix::<bf16>::zeros(&stream, rows, k)?;
    let run = |y: &mut Matrix<bf16>| mx::mxfp8_dequantize(&lowp, &stream, &codes, &scales, y);
    let first = t.launch(|| run(&mut y))?;
    let mut got = y.to_host(&stream)?;
    t.perturb("mxfp8_dequantize", &mut got);
    let check = check_dequantized(&got, &want, rows, k, fmt);
    out.push(t.row("mxfp8_dequantize", &format!("[{rows}, {k}] mxfp8"), check, first, || run(&mut y))?);

    let ends_host = group_ends(&zipf(experts, rows));
    let ends = stream.clone_htod(&ends_host)?;
    let layout = ScaleLayout::GroupedSwizzled { groups: experts };
    let mut scales = Scales::<Ue8m0>::zeros(&stream, rows, scale_cols, layout)?;
    let mut codes = Matrix::<F8E4M3>::zeros(&stream, rows, k)?;
    let mut offsets = stream.alloc_zeros::<i32>(experts + 1)?;
    let mut flag = ErrorFlag::new(&stream)?; // set on the device if the ends were out of range
    let run = |c: &mut Matrix<F8E4M3>, s: &mut Scales<Ue8m0>, o: &mut CudaSlice<i32>, f: &mut ErrorFlag| {
        mx::mxfp8_quantize_grouped(&lowp, &stream, &x, &ends, rule, c, s, o, Some(f))
    };
    let first = t.launch(|| run(&mut codes, &mut scales, &mut offsets, &mut flag))?;
    let mut got_codes = codes.to_host(&stream)?;
    t.perturb("mxfp8_quantize_grouped", &mut got_codes);
    let got = (scales.to_host_raw(&stream)?, t.download(&offsets)?, flag.read(&stream)?);
    let check = check_grouped(&got_codes, &got.0, &got.1, got.2, &want, rows, scale_cols, &ends_host);
    let shape = format!("[{rows}, {k}] bf16, E {experts}");
    let again = || run(&mut codes, &mut scales, &mut offsets, &mut flag);
    out.push(t.row("mxfp8_quantize_grouped", &shape, check, first, again)?);
    Ok(out)
}

/// Codes and swizzled scales against the reference (whose scales are linear).
fn check_quantized<C: Pod>(
    codes: &[C],
    scales: &[impl Pod],
    want: &ref_mx::Quantized,
    rows: usize,
    scale_cols: usize,
) -> Check {
    let want_scales = ref_mx::swizzle(&want.scales, rows, scale_cols);
    verdict([bit_exact("codes", codes, &want.codes), bit_exact("scales", scales, &want_scales)])
}

/// A dequantizer's bf16 output against the reference's dequantization of the reference's codes.
fn check_dequantized(got: &[bf16], want: &ref_mx::Quantized, rows: usize, k: usize, fmt: ref_mx::Format) -> Check {
    let values: Vec<u16> =
        ref_mx::dequantize(&want.codes, &want.scales, rows, k, fmt).into_iter().map(ref_mx::bf16_bits).collect();
    verdict([bit_exact("values", got, &values)])
}

/// A grouped quantizer: codes as the plain quantizer's, each group's scales swizzled into its own
/// region, and the regions' offsets (in scale rows).
#[allow(clippy::too_many_arguments)]
fn check_grouped<C: Pod>(
    codes: &[C],
    scales: &[impl Pod],
    offsets: &[i32],
    flag: u32,
    want: &ref_mx::Quantized,
    rows: usize,
    scale_cols: usize,
    ends: &[i32],
) -> Check {
    let (want_scales, want_offsets) = ref_mx::grouped_swizzle(&want.scales, rows, scale_cols, ends);
    let scales = &scales[..want_scales.len().min(scales.len())]; // the buffer is sized for the worst case
    verdict([
        bit_exact("codes", codes, &want.codes),
        bit_exact("scales", scales, &want_scales),
        bit_exact("offsets", offsets, &want_offsets),
        flag_clear(flag),
    ])
}

// ---------------------------------------------------------------------------------------------
// Grouped (MoE) GEMMs

/// The expert GEMMs of a mixture-of-experts layer, all experts in one launch (Hopper): bf16 with
/// tokens sorted by expert (contiguous layout, the group ends read on the device, like
/// `torch._grouped_mm`'s `offs`), and blockwise FP8 with one slab of `max_m` rows per expert
/// (masked layout, as in expert-parallel decode: each slab's valid-row count on the device).
fn grouped_gemms(t: &mut Tour, experts: usize, tokens: usize, n: usize, k: usize, max_m: usize) -> Res<Vec<Row>> {
    let (lowp, stream) = t.handles();
    let bf16_shape = format!("E {experts}, T {tokens}, N {n}, K {k}");
    let fp8_shape = format!("E {experts}, max_m {max_m}, N {n}, K {k}");
    if let Some(why) = not_hopper(&lowp) {
        return Ok(vec![
            Row::skipped("bf16_grouped_gemm", &bf16_shape, &why),
            Row::skipped("fp8_grouped_gemm", &fp8_shape, &why),
        ]);
    }
    let sizes = zipf(experts, tokens);
    let mut out = Vec::new();

    // y[t] = x[t] · W[e]ᵀ for the tokens t of expert e; W holds the experts' [n, k] weights stacked
    let x_host = t.rng.bf16s(tokens * k, 1.0);
    let w_host = t.rng.bf16s(experts * n * k, 0.05);
    let x = Matrix::from_host(&stream, &x_host, tokens, k)?;
    let w = lowp::MatrixBatch::from_host(&stream, &w_host, experts, n, k)?;
    let ends_host = group_ends(&sizes);
    let ends = stream.clone_htod(&ends_host)?;
    let layout = GroupLayout::Contiguous { ends: &ends };
    let mut y = Matrix::<bf16>::zeros(&stream, tokens, n)?;
    let mut flag = ErrorFlag::new(&stream)?; // set on the device if the ends were out of order
    let run = |y: &mut Matrix<bf16>, f: &mut ErrorFlag| gemm::grouped_bf16(&lowp, &stream, &x, &w, &layout, y, Some(f));
    let first = t.launch(|| run(&mut y, &mut flag))?;
    let mut got = y.to_host(&stream)?;
    t.perturb("bf16_grouped_gemm", &mut got);
    let spans: Vec<(usize, usize)> =
        ends_host.iter().scan(0, |start, &end| Some((std::mem::replace(start, end as usize), end as usize))).collect();
    let want: Vec<(usize, Vec<f64>)> = sample_rows(&spans)
        .into_iter()
        .map(|(r, e)| {
            let dot =
                |j: usize| (0..k).map(|c| x_host[r * k + c].to_f64() * w_host[(e * n + j) * k + c].to_f64()).sum();
            (r, (0..n).map(dot).collect())
        })
        .collect();
    let check = verdict([gemm_check(&got, n, &want), flag_clear(flag.read(&stream)?)]);
    out.push(t.row("bf16_grouped_gemm", &bf16_shape, check, first, || run(&mut y, &mut flag))?);

    // FP8: activations per token group, weights per block (quantized here on the host with the
    // reference quantizers, which the device ones match bit for bit: see the fp8 rows)
    let rows = experts * max_m;
    let (kb, nb) = (k / fp8::GROUP, n.div_ceil(fp8::GROUP));
    let counts: Vec<i32> = sizes.iter().map(|&s| s.min(max_m) as i32).collect();
    let exact = ScaleRounding::Exact;
    let (x_codes, x_scales) = ref_fp8::quantize_per_token_group(&to_f32(&t.rng.bf16s(rows * k, 1.0)), rows, k, exact)?;
    let (w_codes, w_scales) =
        ref_fp8::quantize_per_block(&to_f32(&t.rng.bf16s(experts * n * k, 0.05)), experts * n, k, exact)?;
    let x = Matrix::from_host(&stream, &e4m3(&x_codes), rows, k)?;
    let sx = lowp::Scales::row_major(stream.clone_htod(&x_scales)?, rows, kb)?;
    let w = lowp::MatrixBatch::from_host(&stream, &e4m3(&w_codes), experts, n, k)?;
    let sw = lowp::Scales::row_major(stream.clone_htod(&w_scales)?, experts * nb, kb)?;
    let counts_d = stream.clone_htod(&counts)?;
    let layout = GroupLayout::Masked { counts: &counts_d, max_m };
    let mut y = Matrix::<bf16>::zeros(&stream, rows, n)?;
    let mut flag = ErrorFlag::new(&stream)?;
    let run = |y: &mut Matrix<bf16>, f: &mut ErrorFlag| {
        gemm::grouped_fp8(&lowp, &stream, &x, &sx, &w, &sw, &layout, y, Some(f))
    };
    let first = t.launch(|| run(&mut y, &mut flag))?;
    let mut got = y.to_host(&stream)?;
    t.perturb("fp8_grouped_gemm", &mut got);
    let spans: Vec<(usize, usize)> =
        counts.iter().enumerate().map(|(e, &c)| (e * max_m, e * max_m + c as usize)).collect();
    let want: Vec<(usize, Vec<f64>)> = sample_rows(&spans)
        .into_iter()
        .map(|(r, e)| {
            let (codes, scales) = (&w_codes[e * n * k..(e + 1) * n * k], &w_scales[e * nb * kb..(e + 1) * nb * kb]);
            (r, ref_gemm::blockwise_fp8_row(&x_codes, r, |mm, g| x_scales[mm * kb + g], codes, scales, n, k))
        })
        .collect();
    let check = verdict([gemm_check(&got, n, &want), flag_clear(flag.read(&stream)?)]);
    out.push(t.row("fp8_grouped_gemm", &fp8_shape, check, first, || run(&mut y, &mut flag))?);
    Ok(out)
}

/// (row, expert) pairs to check: the first, middle and last row of every non-empty group.
fn sample_rows(spans: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut rows: Vec<(usize, usize)> = Vec::new();
    for (e, &(start, end)) in spans.iter().enumerate().filter(|(_, (s, e))| e > s) {
        for r in [start, (start + end) / 2, end - 1] {
            if !rows.iter().any(|&(q, _)| q == r) {
                rows.push((r, e));
            }
        }
    }
    rows
}

fn flag_clear(flag: u32) -> Result<Part, String> {
    if flag == 0 {
        Ok(Part::Close("error flag clear".into()))
    } else {
        Err(format!("error flag {flag:#x} raised by valid group ends"))
    }
}

/// Token counts of `experts` experts over `tokens` tokens, Zipf-like (expert e gets about
/// 1/(e+1)^1.1 of them), with the second expert empty as happens in real routing.
fn zipf(experts: usize, tokens: usize) -> Vec<usize> {
    let weights: Vec<f64> = (0..experts).map(|e| 1.0 / (1.0 + e as f64).powf(1.1)).collect();
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<usize> = weights.iter().map(|w| (w / sum * tokens as f64) as usize).collect();
    if experts > 2 {
        sizes[1] = 0;
    }
    sizes[0] += tokens - sizes.iter().sum::<usize>();
    sizes
}

/// Cumulative ends of consecutive groups of `sizes` rows.
fn group_ends(sizes: &[usize]) -> Vec<i32> {
    sizes
        .iter()
        .scan(0, |end, &s| {
            *end += s as i32;
            Some(*end)
        })
        .collect()
}

/// GEMM outputs against float64 reference rows, with the bounds of tests/gemm.rs: every
/// element within 1% of its row's largest magnitude, and a relative Frobenius error ≤ 1e-3
/// against the reference rounded to bf16 (what an exact kernel would store).
fn gemm_check(got: &[bf16], n: usize, want: &[(usize, Vec<f64>)]) -> Result<Part, String> {
    let (mut worst, mut err2, mut ref2) = (0.0f64, 0.0f64, 0.0f64);
    for (r, row) in want {
        let row_max = row.iter().fold(f64::MIN_POSITIVE, |m, v| m.max(v.abs()));
        for (j, &w) in row.iter().enumerate() {
            let v = got[r * n + j].to_f64();
            let rel = (v - w).abs() / row_max;
            if rel.is_nan() || rel > 0.01 {
                return Err(format!(
                    "y[{r}, {j}] = {v:.4e}, reference {w:.4e}: off by {:.1}% of its row's largest",
                    100.0 * rel
                ));
            }
            worst = worst.max(rel);
            let stored = bf16::from_f64(w).to_f64();
            (err2, ref2) = (err2 + (v - stored) * (v - stored), ref2 + stored * stored);
        }
    }
    let frob = (err2 / ref2.max(f64::MIN_POSITIVE)).sqrt();
    if frob > 1e-3 {
        return Err(format!("relative Frobenius error {frob:.2e} > 1e-3"));
    }
    Ok(Part::Close(format!("rel err {frob:.1e} ≤ 1e-3, max {:.2}% ≤ 1% of row", 100.0 * worst)))
}

// ---------------------------------------------------------------------------------------------
// Checks

/// The verdict on one op: what was checked and how close it came, or the first difference.
type Check = Result<String, String>;

/// One comparison of a verdict.
enum Part {
    /// Equal bit for bit (what was compared).
    Exact(&'static str),
    /// Within its bound (the error found and the bound).
    Close(String),
}

/// All parts passed: `bit-exact (a, b); <close parts>`; else the first failure.
fn verdict<const N: usize>(parts: [Result<Part, String>; N]) -> Check {
    let (mut exact, mut close) = (Vec::new(), Vec::new());
    for p in parts {
        match p? {
            Part::Exact(what) => exact.push(what),
            Part::Close(text) => close.push(text),
        }
    }
    let mut text = if exact.is_empty() { Vec::new() } else { vec![format!("bit-exact ({})", exact.join(", "))] };
    text.extend(close);
    Ok(text.join("; "))
}

/// `got` and `want` hold the same bit patterns (element types of the same size, e.g. `F8E4M3` and
/// the reference's `u8` codes).
fn bit_exact<A: Pod, B: Pod>(what: &'static str, got: &[A], want: &[B]) -> Result<Part, String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} values, the reference has {}", got.len(), want.len()));
    }
    let bits = |v: &[u8]| v.iter().rev().fold(0u64, |acc, &b| acc << 8 | b as u64);
    let differ: Vec<usize> =
        (0..got.len()).filter(|&i| bytemuck::bytes_of(&got[i]) != bytemuck::bytes_of(&want[i])).collect();
    match differ.first() {
        None => Ok(Part::Exact(what)),
        Some(&i) => Err(format!(
            "{what}[{i}] = {:#x}, reference {:#x} ({} of {} differ)",
            bits(bytemuck::bytes_of(&got[i])),
            bits(bytemuck::bytes_of(&want[i])),
            differ.len(),
            got.len()
        )),
    }
}

/// Every element within `bound` units in the last place (of bf16, at the reference value) of the
/// float64 reference.
fn within_ulps(what: &str, got: &[bf16], want: &[f64], bound: f64) -> Result<Part, String> {
    let mut worst = 0.0f64;
    for (i, (g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g.to_f64() - w).abs() / lowp::reference::ulp::<bf16>(w);
        if err.is_nan() || err > bound {
            return Err(format!("{what}[{i}] = {}, reference {w:.6e}: {err:.1} ulp > {bound} ulp", g.to_f64()));
        }
        worst = worst.max(err);
    }
    Ok(Part::Close(format!("{what} max err {worst:.2} ulp ≤ {bound} ulp")))
}

/// Every element within the tolerance of tests/qk_norm_rope.rs, `tol`: one rounding to bf16 (2^-8
/// relative, between half an ulp and one) plus f32 arithmetic on terms of the reference's
/// magnitude (2^-18 of it).
fn within_tol(what: &str, got: &[bf16], want: &[RefValue]) -> Result<Part, String> {
    let mut worst = 0.0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = w.value.abs() * 2f64.powi(-8) + w.magnitude * 2f64.powi(-18);
        let err = (g.to_f64() - w.value).abs();
        if err.is_nan() || err > tol {
            return Err(format!(
                "{what}[{i}] = {}, reference {:.6e}: {:.1}× the tolerance",
                g.to_f64(),
                w.value,
                err / tol
            ));
        }
        worst = worst.max(err / tol.max(f64::MIN_POSITIVE));
    }
    Ok(Part::Close(format!("{what} max err {worst:.2} tol")))
}

/// Alters a result the way the named op's check must catch (`LOWP_TOUR_PERTURB`).
trait Perturb: Sized {
    fn perturb(v: &mut [Self]);
}

impl Perturb for bf16 {
    /// The middle element becomes four times the largest magnitude, negated: past every bound.
    fn perturb(v: &mut [Self]) {
        let big = v.iter().fold(1.0f32, |m, x| m.max(x.to_f32().abs()));
        let i = v.len() / 2;
        v[i] = bf16::from_f32(-4.0 * big);
    }
}

impl Perturb for f32 {
    fn perturb(v: &mut [Self]) {
        let i = v.len() / 2;
        v[i] = v[i] * 2.0 + 1.0;
    }
}

macro_rules! perturb_code {
    ($($t:ty),*) => {$(
        impl Perturb for $t {
            /// One bit of the middle code flipped.
            fn perturb(v: &mut [Self]) {
                let i = v.len() / 2;
                v[i].0 ^= 1;
            }
        }
    )*};
}
perturb_code!(F4E2M1x2, Ue8m0);

impl Perturb for F8E4M3 {
    /// One bit of the middle code flipped.
    fn perturb(v: &mut [Self]) {
        let i = v.len() / 2;
        v[i] = F8E4M3::from_bits(v[i].to_bits() ^ 1);
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: device handles, launches, costs, the table

/// The state the families share.
struct Tour {
    lowp: Lowp,
    stream: Arc<CudaStream>,
    rng: Rng,
    /// Where the simulator's profile lines are caught (`None` on a GPU).
    capture: Option<capture::Stderr>,
    /// `LOWP_TOUR_PERTURB`.
    perturb: Option<String>,
    /// Print the cost by instruction class (`--shapes bench` on the simulator).
    by_class: bool,
}

/// What one op reports.
struct Row {
    op: &'static str,
    shape: String,
    check: Check,
    cost: Cost,
    /// Not run on this device (`check` says why).
    skipped: bool,
}

enum Cost {
    /// Median time of the timed launches (GPU).
    Time {
        median_us: f64,
    },
    /// The simulator's counts for the op's launches.
    Profile(Profile),
    None,
}

impl Row {
    fn skipped(op: &'static str, shape: &str, why: &str) -> Row {
        Row { op, shape: shape.to_string(), check: Ok(why.to_string()), cost: Cost::None, skipped: true }
    }
    fn error(op: &'static str, why: &str) -> Row {
        Row { op, shape: String::new(), check: Err(format!("error: {why}")), cost: Cost::None, skipped: false }
    }
}

const WARMUP: usize = 3;
const TIMED: usize = 20;

impl Tour {
    fn new(lowp: Lowp, sim: bool, opts: &Options) -> Res<Tour> {
        // The default stream and no other: cudarc then records no events of its own around the
        // timed launches.
        let stream = lowp.default_stream();
        let capture = if sim { Some(capture::Stderr::new()?) } else { None };
        let perturb = std::env::var("LOWP_TOUR_PERTURB").ok().filter(|v| !v.is_empty());
        Ok(Tour { lowp, stream, rng: Rng(0x5eed_1e55), capture, perturb, by_class: sim && opts.bench })
    }

    /// The handle and the stream, for a family's closures to borrow while `self` lends `rng`.
    fn handles(&self) -> (Lowp, Arc<CudaStream>) {
        (self.lowp.clone(), self.stream.clone())
    }

    /// A device buffer back on the host (waits for the stream).
    fn download<T: DeviceRepr + Default + Clone>(&self, buf: &CudaSlice<T>) -> Res<Vec<T>> {
        let v = self.stream.clone_dtoh(buf)?;
        self.stream.synchronize()?;
        Ok(v)
    }

    /// Runs an op's first launch, the one whose result is checked, to completion. On the
    /// simulator, returns the counts of the launches it made (its profile lines are taken out of
    /// stderr; anything else written there is passed on).
    fn launch(&mut self, launch: impl FnOnce() -> lowp::Result<()>) -> Res<Option<Profile>> {
        let stream = self.stream.clone();
        let Some(capture) = &mut self.capture else {
            launch()?;
            stream.synchronize()?;
            return Ok(None);
        };
        let (result, text) = capture.run(|| -> Res<()> {
            launch()?;
            stream.synchronize()?;
            Ok(())
        })?;
        let mut profile = Profile::default();
        for line in text.lines() {
            match Profile::parse(line) {
                Some(p) => profile.add(&p),
                None => eprintln!("{line}"),
            }
        }
        result?;
        Ok(Some(profile))
    }

    /// `LOWP_TOUR_PERTURB=<op>`: alters `got`, op's result read back, before it is checked.
    fn perturb<T: Perturb>(&self, op: &str, got: &mut [T]) {
        if self.perturb.as_deref() == Some(op) && !got.is_empty() {
            T::perturb(got);
        }
    }

    /// The table row of an op: its check, and its cost: on a GPU the median time of `TIMED` more
    /// launches (after `WARMUP`), on the simulator the first launch's profile.
    fn row(
        &self,
        op: &'static str,
        shape: &str,
        check: Check,
        first: Option<Profile>,
        launch: impl FnMut() -> lowp::Result<()>,
    ) -> Res<Row> {
        let cost = match first {
            Some(p) if p.launches > 0 => Cost::Profile(p),
            Some(_) => Cost::None,
            None => Cost::Time { median_us: self.time(launch)? },
        };
        Ok(Row { op, shape: shape.to_string(), check, cost, skipped: false })
    }

    /// Median time in µs of `TIMED` launches, each between its own pair of CUDA events.
    fn time(&self, mut launch: impl FnMut() -> lowp::Result<()>) -> Res<f64> {
        for _ in 0..WARMUP {
            launch()?;
        }
        let event = || self.lowp.context().new_event(Some(CUevent_flags::CU_EVENT_DEFAULT));
        let mut pairs = Vec::with_capacity(TIMED);
        for _ in 0..TIMED {
            pairs.push((event()?, event()?));
        }
        for (start, end) in &pairs {
            start.record(&self.stream)?;
            launch()?;
            end.record(&self.stream)?;
        }
        self.stream.synchronize()?;
        let mut us = Vec::with_capacity(TIMED);
        for (start, end) in &pairs {
            us.push(start.elapsed_ms(end)? as f64 * 1e3);
        }
        us.sort_by(f64::total_cmp);
        Ok((us[(TIMED - 1) / 2] + us[TIMED / 2]) / 2.0)
    }

    fn print_header(&self) {
        let w = self.lowp.device_name().len().max(6);
        let cost = if self.capture.is_some() { "warp-insts/B" } else { "median µs" };
        let classes: String =
            if self.by_class { CLASSES.iter().map(|c| format!(" {c:>6}")).collect() } else { String::new() };
        println!("\n{:<24} {:<34} {:<w$} {cost:>12}{classes}  check", "op", "shape", "device");
    }

    fn print_row(&self, row: &Row) {
        let w = self.lowp.device_name().len().max(6);
        let (status, check) = match &row.check {
            Ok(text) if row.skipped => ("skip", text.as_str()),
            Ok(text) => ("ok", text.as_str()),
            Err(text) => ("FAIL", text.as_str()),
        };
        let mut cost = match &row.cost {
            Cost::Time { median_us } => format!("{median_us:>12.1}"),
            Cost::Profile(p) => format!("{:>12.4}", p.per_byte()),
            Cost::None => format!("{:>12}", "-"),
        };
        if self.by_class {
            for i in 0..CLASSES.len() {
                match &row.cost {
                    Cost::Profile(p) => cost += &format!(" {:>6.4}", p.warp_insts[i] as f64 / p.bytes() as f64),
                    _ => cost += &format!(" {:>6}", "-"),
                }
            }
        }
        println!("{:<24} {:<34} {:<w$} {cost}  {status:<4} {check}", row.op, row.shape, self.lowp.device_name());
    }
}

/// The instruction classes of the simulator's profile, in its order.
const CLASSES: [&str; 6] = ["mem", "int", "f32", "f64", "cvt", "ctl"];

/// lowp-sim's counts of one or more launches (`LOWP_SIM_PROFILE` lines).
#[derive(Clone, Copy, Debug, Default)]
struct Profile {
    launches: u32,
    /// Warp-instructions by class (`CLASSES`).
    warp_insts: [u64; 6],
    bytes_read: u64,
    bytes_written: u64,
}

impl Profile {
    /// Parses `lowp-sim profile <kernel> ...: warp-insts T (mem a, int b, f32 c, f64 d, cvt e,
    /// ctl f), global read R B, written W B, ...`; `None` for any other line.
    fn parse(line: &str) -> Option<Profile> {
        let rest = line.strip_prefix("lowp-sim profile ")?;
        let rest = &rest[rest.find(": warp-insts ")?..];
        let classes = rest.split_once('(')?.1.split_once(')')?.0;
        let mut warp_insts = [0u64; 6];
        for (i, part) in classes.split(", ").enumerate() {
            let (name, count) = part.split_once(' ')?;
            (name == *CLASSES.get(i)?).then_some(())?;
            warp_insts[i] = count.parse().ok()?;
        }
        let number_after =
            |key: &str| -> Option<u64> { rest[rest.find(key)? + key.len()..].split(' ').next()?.parse().ok() };
        Some(Profile {
            launches: 1,
            warp_insts,
            bytes_read: number_after("global read ")?,
            bytes_written: number_after("written ")?,
        })
    }

    fn add(&mut self, o: &Profile) {
        self.launches += o.launches;
        for i in 0..6 {
            self.warp_insts[i] += o.warp_insts[i];
        }
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
    }

    fn bytes(&self) -> u64 {
        (self.bytes_read + self.bytes_written).max(1)
    }

    /// Warp-instructions per global byte moved (read + written).
    fn per_byte(&self) -> f64 {
        self.warp_insts.iter().sum::<u64>() as f64 / self.bytes() as f64
    }
}

/// Catching what the simulator prints to stderr during a launch.
mod capture {
    use std::ffi::c_int;
    use std::fs::File;
    use std::io::{self, Read, Seek, SeekFrom};
    use std::os::fd::AsRawFd;

    unsafe extern "C" {
        fn dup(fd: c_int) -> c_int;
        fn dup2(from: c_int, to: c_int) -> c_int;
        fn close(fd: c_int) -> c_int;
    }

    const STDERR: c_int = 2;

    /// An unlinked temporary file that file descriptor 2 points to while [`Stderr::run`] runs.
    pub struct Stderr {
        file: File,
    }

    /// Puts the saved stderr back on descriptor 2 when dropped (also if the closure panics).
    struct Restore(c_int);

    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: `self.0` is the descriptor `dup` returned for the original stderr, open
            // until here; dup2 and close take any descriptor numbers.
            unsafe {
                dup2(self.0, STDERR);
                close(self.0);
            }
        }
    }

    impl Stderr {
        pub fn new() -> io::Result<Stderr> {
            let path = std::env::temp_dir().join(format!("lowp-tour-{}.stderr", std::process::id()));
            let file = File::options().read(true).write(true).create(true).truncate(true).open(&path)?;
            std::fs::remove_file(&path)?; // the open file lives on, nameless
            Ok(Stderr { file })
        }

        /// Runs `f` with stderr (descriptor 2, where the simulator and `eprintln!` write)
        /// redirected into the file; returns `f`'s value and what was written.
        pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> io::Result<(R, String)> {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            // SAFETY: dup of an open descriptor (2); a failure returns -1 and changes nothing.
            let saved = unsafe { dup(STDERR) };
            if saved < 0 {
                return Err(io::Error::last_os_error());
            }
            let restore = Restore(saved);
            // SAFETY: both descriptors are open; 2 now shares the file's offset, which is 0.
            if unsafe { dup2(self.file.as_raw_fd(), STDERR) } < 0 {
                return Err(io::Error::last_os_error());
            }
            let value = f();
            drop(restore);
            let mut text = String::new();
            self.file.seek(SeekFrom::Start(0))?;
            self.file.read_to_string(&mut text)?;
            Ok((value, text))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// SplitMix64 with a fixed seed: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `n` normal values times `scale`, rounded to bf16.
    fn bf16s(&mut self, n: usize, scale: f64) -> Vec<bf16> {
        (0..n).map(|_| bf16::from_f64(scale * self.normal())).collect()
    }

    /// Norm weights around 1.
    fn weights(&mut self, n: usize) -> Vec<bf16> {
        (0..n).map(|_| bf16::from_f64(1.0 + 0.1 * self.normal())).collect()
    }
}

fn to_f32(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

fn to_bf16(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}

fn e4m3(codes: &[u8]) -> Vec<F8E4M3> {
    codes.iter().map(|&c| F8E4M3::from_bits(c)).collect()
}
