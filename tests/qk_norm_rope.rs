//! QK-RMSNorm + RoPE: the device sincos, the FP8 scale division and the float64 reference on the
//! CPU, then the kernels against the reference on fresh random inputs with poisoned outputs (on a
//! GPU, or on the simulator where there is none, with fewer tokens).

mod common;

#[path = "../kernels-gpu/src/prim/trig.rs"]
mod trig;

#[path = "../kernels-gpu/src/prim/kv_fp8.rs"]
mod kv_fp8;

use half::{bf16, f16};
use lowp::cudarc::driver::CudaSlice;
use lowp::qk_norm_rope::{
    self as qnr, KvCacheFp8, NormWeight, Position, QkNormRopeSettings, Qkv, RopeFrequencies, RopeScaling, RopeStyle,
    Rotary,
};
use lowp::reference::convert as cv;
use lowp::reference::qk_norm_rope::{self as refq, RefConfig, RefRotary, RefValue};
use lowp::{ErrorFlag, F8E4M3, Half, Matrix};

use common::Rng;

#[test]
fn device_sincos_matches_libm_over_rope_angles() {
    let mut rng = Rng::fresh("device_sincos_matches_libm_over_rope_angles");
    let mut worst = 0.0f64;
    let mut check = |a: f64| {
        let (s, c) = trig::sincos_rope(a);
        for (got, exact) in [(s as f64, a.sin()), (c as f64, a.cos())] {
            let e = (got - exact).abs();
            assert!(e <= trig::SINCOS_MAX_ERROR, "sincos({a}) off by {e}");
            assert!(
                e <= trig::SINCOS_MAX_REL_ERROR * exact.abs() + 1e-15,
                "sincos({a}) = {got} off by {e}, relative to {exact}"
            );
            worst = worst.max(e);
        }
    };
    for a in [0.0, 1e-300, 0.5, std::f64::consts::FRAC_PI_4, std::f64::consts::PI, -3.0, 1e3, 12345.678, 1e6, 3e6, 1e7]
    {
        check(a);
    }
    // positions up to 4M tokens times frequencies base^(-2i/d)
    for _ in 0..200_000 {
        let pos = rng.below(4_000_000) as f64;
        let f = 1e6f64.powf(-rng.uniform());
        check(pos * f);
        check(-(pos * f));
        // near the zeros of sin and cos
        let k = rng.below(2_000_000) as f64;
        check(k * std::f64::consts::FRAC_PI_2 + (rng.uniform() - 0.5) * 1e-3);
    }
    // two f32 ulps at most (of values in [0.5, 1]): far below the bf16/f16 output rounding
    eprintln!("worst |sincos - libm| = {worst:e} = {:.3}·2^-24", worst * 2f64.powi(24));
    assert!(worst <= trig::SINCOS_MAX_ERROR, "{worst}");
}

/// Every bf16 and f16 value (as the kernel converts them) and random f32, divided by scales of
/// every kind: through the reciprocal, the f32 quotient is IEEE division's inside the corrected
/// range, and the E4M3 byte is the same everywhere (NaN, infinities, saturation, zero included).
#[test]
fn fp8_division_through_the_reciprocal_is_bit_exact() {
    let mut rng = Rng::fresh("fp8_division_through_the_reciprocal_is_bit_exact");
    let (lo, hi) = kv_fp8::RECIP_RANGE;
    let mut scales = vec![
        1.0f32,
        0.5,
        3.0,
        0.1,
        0.05,
        0.03,
        7.0,
        1e-3,
        448.0,
        1.0 / 448.0,
        0.999_999_94,
        1.000_000_1,
        1.999_999_9,
        lo,
        hi,
    ];
    while scales.len() < 80 {
        // random exponents in ±30, mantissas random or near 1.0 / 2.0 (reciprocals near powers of 2)
        let e = rng.below(61) as i32 - 30;
        let m = rng.below(1 << 23) as u32;
        let m = match rng.below(4) {
            0 => m | 0x7f_fff0,
            1 => m & 0xf,
            _ => m,
        };
        scales.push(f32::from_bits((((127 + e) as u32) << 23) | m));
    }
    let in_range = |q: f32| (1.0 / 2048.0..=1_048_576.0).contains(&q.abs());
    for &s in &scales {
        let r = 1.0 / s;
        let check = |x: f32| {
            let (got, want) = (kv_fp8::div_by_scale(x, s, r), x / s);
            if in_range(want) {
                assert_eq!(got.to_bits(), want.to_bits(), "{x:e} / {s:e}: {got:e}, IEEE {want:e}");
            }
            assert_eq!(cv::f32_to_e4m3fn_sat(got), cv::f32_to_e4m3fn_sat(want), "e4m3({x:e} / {s:e})");
        };
        for b in 0..=u16::MAX {
            check(bf16::from_bits(b).to_f32());
            check(f16::from_bits(b).to_f32());
        }
        for _ in 0..2000 {
            check(f32::from_bits(rng.next_u64() as u32));
        }
    }
}

fn ref_cfg(c: &QkNormRopeSettings, norm: bool, rope: bool) -> RefConfig {
    RefConfig {
        num_q_heads: c.num_q_heads,
        num_kv_heads: c.num_kv_heads,
        head_dim: c.head_dim,
        rotary_dim: c.rotary_dim,
        gptj: c.style == RopeStyle::GptJ,
        eps: c.eps,
        norm,
        rope,
        one_plus_weight: c.weight == NormWeight::OnePlus,
        mrope_section: c.mrope_section,
    }
}

#[test]
fn reference_rope_at_position_zero_is_the_identity_and_rotation_keeps_pair_norms() {
    let mut rng = Rng::fresh("reference_rope_identity_and_norms");
    let (inv, _) = qnr::rope_inv_freq(64, 10000.0, RopeScaling::None).unwrap();
    for gptj in [false, true] {
        let cfg = RefConfig {
            num_q_heads: 2,
            num_kv_heads: 1,
            head_dim: 64,
            rotary_dim: 64,
            gptj,
            eps: 1e-6,
            norm: false,
            rope: true,
            one_plus_weight: false,
            mrope_section: None,
        };
        let qkv: Vec<bf16> = (0..2 * 4 * 64).map(|_| bf16::from_f64(rng.normal())).collect();
        let rot = RefRotary::Freq { inv_freq: &inv, attention_factor: 1.0 };
        let (q0, _) = refq::qk_norm_rope(&cfg, &qkv, 2, 4 * 64, &[], &[], &[0, 0], rot);
        for (i, v) in q0.iter().enumerate() {
            let (t, c) = (i / 128, i % 128);
            assert_eq!(v.value, qkv[t * 256 + c].to_f64(), "pos 0 must not rotate");
        }
        let (q1, _) = refq::qk_norm_rope(&cfg, &qkv, 2, 4 * 64, &[], &[], &[12345, 7], rot);
        // each rotated pair keeps its Euclidean norm
        for t in 0..2 {
            for h in 0..2 {
                for i in 0..32 {
                    let (a, b) = if gptj { (2 * i, 2 * i + 1) } else { (i, i + 32) };
                    let base = t * 128 + h * 64;
                    let x = |j: usize| qkv[t * 256 + h * 64 + j].to_f64();
                    let before = x(a).hypot(x(b));
                    let after = q1[base + a].value.hypot(q1[base + b].value);
                    approx::assert_relative_eq!(before, after, max_relative = 1e-12);
                }
            }
        }
    }
}

#[test]
fn reference_norm_then_partial_rope_passes_the_tail_through() {
    let mut rng = Rng::fresh("reference_partial_rope");
    let (inv, _) = qnr::rope_inv_freq(32, 10000.0, RopeScaling::None).unwrap();
    let cfg = RefConfig {
        num_q_heads: 1,
        num_kv_heads: 1,
        head_dim: 64,
        rotary_dim: 32,
        gptj: false,
        eps: 1e-6,
        norm: true,
        rope: true,
        one_plus_weight: false,
        mrope_section: None,
    };
    let qkv: Vec<f16> = (0..3 * 64).map(|_| f16::from_f64(rng.normal())).collect();
    let w: Vec<f16> = (0..64).map(|_| f16::from_f64(1.0 + 0.2 * rng.normal())).collect();
    let (q, k) = refq::qk_norm_rope(
        &cfg,
        &qkv,
        1,
        192,
        &w,
        &w,
        &[99],
        RefRotary::Freq { inv_freq: &inv, attention_factor: 1.0 },
    );
    let xq: Vec<f64> = qkv[..64].iter().map(|v| v.to_f64()).collect();
    let n = refq::rms_norm(&xq, &w, 1e-6);
    for i in 32..64 {
        assert_eq!(q[i].value, n[i]);
    }
    assert_eq!(k.len(), 64);
}

#[test]
fn reference_mrope_rotates_each_section_by_its_row_and_gemma_adds_one() {
    let mut rng = Rng::fresh("reference_mrope_sections");
    let (inv, _) = qnr::rope_inv_freq(64, 10000.0, RopeScaling::None).unwrap();
    let rot = RefRotary::Freq { inv_freq: &inv, attention_factor: 1.0 };
    let section = [8, 12, 12];
    let cfg = RefConfig {
        num_q_heads: 1,
        num_kv_heads: 1,
        head_dim: 64,
        rotary_dim: 64,
        gptj: false,
        eps: 1e-6,
        norm: false,
        rope: true,
        one_plus_weight: false,
        mrope_section: Some(section),
    };
    let qkv: Vec<bf16> = (0..2 * 3 * 64).map(|_| bf16::from_f64(rng.normal())).collect();
    // two tokens; rows (t, h, w) = (5, 9) (7, 11) (13, 17)
    let (m, _) = refq::qk_norm_rope(&cfg, &qkv, 2, 192, &[], &[], &[5, 9, 7, 11, 13, 17], rot);
    let plain = RefConfig { mrope_section: None, ..cfg };
    for (row, p) in [(0usize, [5i64, 9]), (1, [7, 11]), (2, [13, 17])] {
        let (q, _) = refq::qk_norm_rope(&plain, &qkv, 2, 192, &[], &[], &p, rot);
        for t in 0..2 {
            for f in (0..32).filter(|&f| refq::mrope_row(section, f) == row) {
                for i in [f, f + 32] {
                    assert_eq!(m[t * 64 + i].value, q[t * 64 + i].value, "token {t} element {i} rotates by row {row}");
                }
            }
        }
    }
    // all three rows equal: plain RoPE
    let (m, _) = refq::qk_norm_rope(&cfg, &qkv, 2, 192, &[], &[], &[5, 9, 5, 9, 5, 9], rot);
    let (q, _) = refq::qk_norm_rope(&plain, &qkv, 2, 192, &[], &[], &[5, 9], rot);
    assert_eq!(m, q);
    // Gemma: n · (1 + w)
    let w: Vec<bf16> = (0..64).map(|_| bf16::from_f64(0.1 * rng.normal())).collect();
    let x: Vec<f64> = qkv[..64].iter().map(|v| v.to_f64()).collect();
    let w1: Vec<f64> = w.iter().map(|v| 1.0 + v.to_f64()).collect();
    let plain_w = refq::rms_norm_weighted(&x, &w, 1e-6, false);
    let gemma = refq::rms_norm_weighted(&x, &w, 1e-6, true);
    let ones = refq::rms_norm(&x, &[bf16::ONE; 64], 1e-6);
    for i in 0..64 {
        approx::assert_relative_eq!(gemma[i], ones[i] * w1[i], max_relative = 1e-15);
        approx::assert_relative_eq!(plain_w[i], ones[i] * w[i].to_f64(), max_relative = 1e-15);
    }
}

// ---------------------------------------------------------------------------------------------
// GPU

#[derive(Clone, Copy, Debug)]
struct Case {
    tokens: usize,
    hq: usize,
    hk: usize,
    d: usize,
    rd: usize,
    style: RopeStyle,
    /// extra elements per qkv row (0: dense); odd values break vector alignment
    pad: usize,
    computed: bool,
    i64_pos: bool,
    separate: bool,
    kv: bool,
    /// Gemma-style `1 + w` weights.
    gemma: bool,
    /// mRoPE with 3 position rows.
    mrope: bool,
    /// Extra bytes per FP8 cache row (odd: byte stores) and the K/V scales.
    cache_pad: usize,
    scales: (f32, f32),
}

/// Qwen2-VL's split of the frequencies (16, 24, 24 for rotary_dim 128), for any rotary width.
fn mrope_section(rd: usize) -> [usize; 3] {
    let h = rd / 2;
    let a = h / 4;
    let b = (h - a) / 2;
    [a, b, h - a - b]
}

/// The sweep; on the simulator the base case has 9 tokens (still more than the 5 that the
/// position-clamping and padding-slot checks need) and the many-token case 157.
fn cases(lowp: &lowp::Lowp) -> Vec<Case> {
    let tokens = |gpu: usize, sim: usize| common::sized(lowp, gpu, sim);
    let base = Case {
        tokens: tokens(37, 9),
        hq: 8,
        hk: 2,
        d: 128,
        rd: 128,
        style: RopeStyle::NeoX,
        pad: 0,
        computed: false,
        i64_pos: false,
        separate: false,
        kv: false,
        gemma: false,
        mrope: false,
        cache_pad: 0,
        scales: (0.05, 0.03),
    };
    vec![
        base,
        Case { d: 64, rd: 64, hq: 4, hk: 4, ..base },   // MHA
        Case { d: 256, rd: 256, hq: 4, hk: 1, ..base }, // MQA
        Case { style: RopeStyle::GptJ, ..base },
        Case { rd: 64, ..base },                                              // partial rotary
        Case { rd: 38, style: RopeStyle::GptJ, d: 64, hq: 2, hk: 1, ..base }, // odd partial width
        Case { pad: 3, ..base },                                              // scalar path
        Case { pad: 8, tokens: 1, ..base },                                   // decode, strided
        Case { computed: true, i64_pos: true, ..base },
        Case { computed: true, style: RopeStyle::GptJ, d: 64, rd: 32, ..base },
        Case { separate: true, ..base },
        Case { kv: true, ..base },
        Case { kv: true, separate: true, computed: true, d: 256, rd: 256, hq: 2, hk: 1, ..base },
        Case { tokens: tokens(3001, 157), hq: 16, hk: 4, ..base },
        // NeoX partners through shared memory (R/2 not a power-of-two multiple of 8), by shuffle
        // at R/2 = 16, 32
        Case { rd: 38, d: 64, hq: 2, hk: 1, ..base },
        Case { rd: 96, ..base },
        Case { rd: 96, hq: 16, hk: 4, ..base }, // 10 groups on 5 warps: each warp's row used twice a token
        Case { rd: 32, separate: true, ..base },
        Case { rd: 64, d: 256, hq: 2, hk: 1, computed: true, ..base },
        // groups mixing q, k and v heads (D 128: 2 heads a warp, D 64: 4), K/V caches with
        // unaligned rows (byte stores) and scales outside the reciprocal's range (division)
        Case { hq: 3, hk: 1, kv: true, cache_pad: 3, ..base },
        Case { d: 64, rd: 64, hq: 5, hk: 1, kv: true, scales: (1e-25, 3e22), ..base },
        Case { d: 64, rd: 64, hq: 5, hk: 1, kv: true, style: RopeStyle::GptJ, scales: (0.5, 2.0), ..base },
        // Gemma weights; mRoPE from the cache (clamped per row) and computed, both styles
        Case { gemma: true, ..base },
        Case { gemma: true, mrope: true, kv: true, i64_pos: true, ..base },
        Case { mrope: true, computed: true, style: RopeStyle::GptJ, d: 64, rd: 64, ..base },
        Case { mrope: true, d: 256, rd: 128, hq: 2, hk: 1, separate: true, ..base },
    ]
}

fn poison<T: Half>() -> T {
    T::from_bits(if T::DTYPE == lowp::DType::Bf16 { common::POISON16 } else { common::POISON_F16 })
}

fn check<T: Half>(what: &str, case: &Case, got: &[T], want: &[RefValue]) {
    assert_eq!(got.len(), want.len(), "{what} {case:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.to_f64();
        // one rounding to T (2^-8 relative covers bf16's 2^-9; half an ulp where T is subnormal,
        // f16 below 2^-14) plus f32 arithmetic on terms of size `magnitude` (cancellation in
        // x·cos − x'·sin)
        let rounding = (w.value.abs() * 2f64.powi(-8)).max(lowp::reference::ulp::<T>(w.value) / 2.0);
        let tol = rounding + w.magnitude * 2f64.powi(-18);
        assert!(
            !g.is_nan() && (g - w.value).abs() <= tol,
            "{what} {case:?}: element {i}: got {g}, reference {} (tol {tol})",
            w.value
        );
    }
}

fn run_case<T: Half>(lowp: &lowp::Lowp, rng: &mut Rng, case: Case, op: &str) {
    let stream = lowp.new_stream().expect("stream");
    let (t, d) = (case.tokens, case.d);
    let cols = (case.hq + 2 * case.hk) * d;
    let stride = cols + case.pad;
    let cfg = QkNormRopeSettings {
        num_q_heads: case.hq,
        num_kv_heads: case.hk,
        head_dim: d,
        rotary_dim: case.rd,
        style: case.style,
        eps: 1e-6,
        weight: if case.gemma { NormWeight::OnePlus } else { NormWeight::Plain },
        mrope_section: case.mrope.then(|| mrope_section(case.rd)),
    };
    let qkv_host: Vec<T> = (0..t * stride).map(|_| T::from_f64(rng.normal() * 2.0)).collect();
    // Gemma weights are offsets from 1
    let w0 = if case.gemma { 0.0 } else { 1.0 };
    let qw: Vec<T> = (0..d).map(|_| T::from_f64(w0 + 0.3 * rng.normal())).collect();
    let kw: Vec<T> = (0..d).map(|_| T::from_f64(w0 + 0.3 * rng.normal())).collect();
    let max_pos = 4096usize;
    // random positions ([3, t] with mRoPE), one past the cache end and one negative (in the last
    // row), to exercise clamping
    let rows = if case.mrope { 3 } else { 1 };
    let mut pos: Vec<i64> = (0..rows * t).map(|_| rng.below(max_pos as u64) as i64).collect();
    let clamp_case = !case.computed && op != "head_rmsnorm" && t > 5;
    if clamp_case {
        pos[1] = max_pos as i64 + 17;
        pos[(rows - 1) * t + 3] = -5;
    }
    let (inv, attn) = qnr::rope_inv_freq(case.rd, 1e6, RopeScaling::None).expect("freqs");
    let cache = qnr::cos_sin_cache(&inv, attn, max_pos);

    let mut qkv = Matrix::from_host_strided(&stream, &qkv_host, t, cols, stride).expect("qkv");
    let qw_d = stream.clone_htod(&qw).expect("htod");
    let kw_d = stream.clone_htod(&kw).expect("htod");
    let pos32: Vec<i32> = pos.iter().map(|&p| p as i32).collect();
    let pos32_d = stream.clone_htod(&pos32).expect("htod");
    let pos64_d = stream.clone_htod(&pos).expect("htod");
    let cache_d = stream.clone_htod(&cache).expect("htod");
    let freqs = RopeFrequencies::new(&stream, case.rd, 1e6, RopeScaling::None).expect("freqs");
    let mut q_out = Matrix::from_host(&stream, &vec![poison::<T>(); t * case.hq * d], t, case.hq * d).expect("q_out");
    let mut k_out = Matrix::from_host(&stream, &vec![poison::<T>(); t * case.hk * d], t, case.hk * d).expect("k_out");
    let cache_rows = t + 3;
    let cache_stride = case.hk * d + case.cache_pad;
    let cache_init = vec![F8E4M3::from_bits(0xa5); cache_rows * cache_stride];
    let mut kc =
        Matrix::from_host_strided(&stream, &cache_init, cache_rows, case.hk * d, cache_stride).expect("k cache");
    let mut vc =
        Matrix::from_host_strided(&stream, &cache_init, cache_rows, case.hk * d, cache_stride).expect("v cache");
    // slots: reversed order, token 2 a padding token (-1)
    let slots: Vec<i64> = (0..t).map(|i| if i == 2 && t > 2 { -1 } else { (t - 1 - i) as i64 }).collect();
    let slots_d: CudaSlice<i64> = stream.clone_htod(&slots).expect("htod");
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    let (k_scale, v_scale) = case.scales;

    let rotary = if case.computed { Rotary::Computed(&freqs) } else { Rotary::Cache { cos_sin: &cache_d, max_pos } };
    // separate outputs read qkv through a read-only view (any buffer type works)
    let qkv_view = qkv.view();
    let qkv_arg = if case.separate {
        Qkv::Separate { qkv: &qkv_view, q_out: &mut q_out, k_out: &mut k_out }
    } else {
        Qkv::InPlace(&mut qkv)
    };
    let kv_cache = if case.kv {
        Some(KvCacheFp8 { k_cache: &mut kc, v_cache: Some(&mut vc), slot_mapping: Some(&slots_d), k_scale, v_scale })
    } else {
        None
    };
    let weights = (&qw_d, &kw_d);
    if case.i64_pos {
        launch(lowp, &stream, op, &cfg, weights, &pos64_d, rotary, qkv_arg, kv_cache, &mut flag)
    } else {
        launch(lowp, &stream, op, &cfg, weights, &pos32_d, rotary, qkv_arg, kv_cache, &mut flag)
    }
    .unwrap_or_else(|e| panic!("{op} {case:?}: {e}"));

    let rc = ref_cfg(&cfg, op != "rope", op != "head_rmsnorm");
    let rot = if case.computed {
        RefRotary::Freq { inv_freq: &inv, attention_factor: attn }
    } else {
        RefRotary::Cache { cos_sin: &cache, max_pos }
    };
    let (want_q, want_k) = refq::qk_norm_rope(&rc, &qkv_host, t, stride, &qw, &kw, &pos, rot);
    let after = qkv.to_host(&stream).expect("qkv back");
    let (got_q, got_k): (Vec<T>, Vec<T>) = if case.separate {
        (q_out.to_host(&stream).expect("q"), k_out.to_host(&stream).expect("k"))
    } else {
        let mut q = Vec::new();
        let mut k = Vec::new();
        for r in 0..t {
            q.extend_from_slice(&after[r * cols..r * cols + case.hq * d]);
            k.extend_from_slice(&after[r * cols + case.hq * d..r * cols + (case.hq + case.hk) * d]);
        }
        (q, k)
    };
    check(&format!("{op} q"), &case, &got_q, &want_q);
    check(&format!("{op} k"), &case, &got_k, &want_k);
    // v heads untouched (and q/k too when writing separately); padding untouched
    let all = stream.clone_dtoh(qkv.buffer()).expect("dtoh");
    for r in 0..t {
        let from = if case.separate { 0 } else { (case.hq + case.hk) * d };
        for c in (from..cols).chain(cols..stride) {
            assert_eq!(
                all[r * stride + c].to_bits(),
                qkv_host[r * stride + c].to_bits(),
                "{op} {case:?}: qkv[{r}, {c}] changed"
            );
        }
    }
    let flags = flag.read(&stream).expect("flag");
    assert_eq!(flags & qnr::ERR_POSITION_OUT_OF_RANGE != 0, clamp_case, "{op} {case:?}: position flag {flags:#x}");
    if case.kv {
        let k_all = stream.clone_dtoh(kc.buffer()).expect("kc");
        let v_all = stream.clone_dtoh(vc.buffer()).expect("vc");
        let hkd = case.hk * d;
        let cs = cache_stride;
        let mut cached = vec![false; cache_rows];
        for (tok, &s) in slots.iter().enumerate() {
            if s < 0 {
                continue;
            }
            let s = s as usize;
            cached[s] = true;
            for j in 0..hkd {
                let k_final = got_k[tok * hkd + j].to_f64() as f32;
                assert_eq!(
                    k_all[s * cs + j].to_bits(),
                    cv::f32_to_e4m3fn_sat(k_final / k_scale),
                    "{op} {case:?}: k cache token {tok} elem {j}"
                );
                let v = qkv_host[tok * stride + (case.hq + case.hk) * d + j].to_f64() as f32;
                assert_eq!(
                    v_all[s * cs + j].to_bits(),
                    cv::f32_to_e4m3fn_sat(v / v_scale),
                    "{op} {case:?}: v cache token {tok} elem {j}"
                );
            }
        }
        for s in 0..cache_rows {
            // uncached rows whole, and every row's padding, untouched
            let from = if cached[s] { hkd } else { 0 };
            for c in (from..cs).filter(|c| s * cs + c < k_all.len()) {
                assert_eq!(k_all[s * cs + c].to_bits(), 0xa5, "{op} {case:?}: k cache [{s}, {c}] written");
                assert_eq!(v_all[s * cs + c].to_bits(), 0xa5, "{op} {case:?}: v cache [{s}, {c}] written");
            }
        }
    }
}

/// Runs `op` with the arguments it takes (the norm takes no positions or rotary, the rotation no
/// weights).
#[allow(clippy::too_many_arguments)]
fn launch<T: Half, I: Position>(
    lowp: &lowp::Lowp,
    stream: &std::sync::Arc<lowp::cudarc::driver::CudaStream>,
    op: &str,
    settings: &QkNormRopeSettings,
    (q_weight, k_weight): (&CudaSlice<T>, &CudaSlice<T>),
    positions: &CudaSlice<I>,
    rotary: Rotary<'_>,
    qkv: Qkv<'_, T>,
    kv_cache: Option<KvCacheFp8<'_>>,
    flag: &mut ErrorFlag,
) -> lowp::Result<()> {
    match op {
        "qk_norm_rope" => {
            qnr::qk_norm_rope(lowp, stream, q_weight, k_weight, positions, rotary, settings, qkv, kv_cache, Some(flag))
        }
        "head_rmsnorm" => qnr::head_rmsnorm(lowp, stream, q_weight, k_weight, settings, qkv, kv_cache, Some(flag)),
        _ => qnr::rope(lowp, stream, positions, rotary, settings, qkv, kv_cache, Some(flag)),
    }
}

fn sweep<T: Half>(test: &str, op: &str) {
    let lowp = common::gpu(test);
    let mut rng = Rng::fresh(test);
    for case in cases(&lowp) {
        run_case::<T>(&lowp, &mut rng, case, op);
    }
}

#[test]
fn qk_norm_rope_bf16_matches_reference() {
    sweep::<bf16>("qk_norm_rope_bf16_matches_reference", "qk_norm_rope");
}

#[test]
fn qk_norm_rope_f16_matches_reference() {
    sweep::<f16>("qk_norm_rope_f16_matches_reference", "qk_norm_rope");
}

#[test]
fn head_rmsnorm_bf16_matches_reference() {
    sweep::<bf16>("head_rmsnorm_bf16_matches_reference", "head_rmsnorm");
}

#[test]
fn rope_bf16_matches_reference() {
    sweep::<bf16>("rope_bf16_matches_reference", "rope");
}

#[test]
fn slot_past_the_cache_end_is_skipped_and_flagged() {
    let lowp = common::gpu("slot_past_the_cache_end_is_skipped_and_flagged");
    let stream = lowp.new_stream().expect("stream");
    let cfg = QkNormRopeSettings {
        num_q_heads: 2,
        num_kv_heads: 1,
        head_dim: 64,
        rotary_dim: 64,
        style: RopeStyle::NeoX,
        eps: 1e-6,
        weight: NormWeight::Plain,
        mrope_section: None,
    };
    let mut rng = Rng::fresh("slot_past_the_cache_end_is_skipped_and_flagged");
    let host: Vec<bf16> = (0..2 * 256).map(|_| bf16::from_f64(rng.normal())).collect();
    let mut qkv = Matrix::from_host(&stream, &host, 2, 256).expect("qkv");
    let mut kc = Matrix::from_host(&stream, &[F8E4M3::from_bits(0xa5); 64], 1, 64).expect("kc");
    let slots = stream.clone_htod(&[0i64, 1]).expect("htod"); // row 1 does not exist
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    let w = stream.clone_htod(&vec![bf16::ONE; 64]).expect("htod");
    qnr::head_rmsnorm(
        &lowp,
        &stream,
        &w,
        &w,
        &cfg,
        Qkv::InPlace(&mut qkv),
        Some(KvCacheFp8 { k_cache: &mut kc, v_cache: None, slot_mapping: Some(&slots), k_scale: 1.0, v_scale: 1.0 }),
        Some(&mut flag),
    )
    .expect("launch");
    assert_eq!(flag.read(&stream).expect("flag"), qnr::ERR_SLOT_OUT_OF_RANGE);
    // Row 0 holds token 0's normalized k (columns 128..192 of its qkv row, as stored there) in
    // E4M3, code for code: the 0xa5 poison is itself a valid code, so it proves nothing alone.
    let after = qkv.to_host(&stream).expect("qkv back");
    let want: Vec<u8> = after[128..192].iter().map(|k| cv::f32_to_e4m3fn_sat(k.to_f32())).collect();
    let got: Vec<u8> = kc.to_host(&stream).expect("kc").iter().map(|b| b.to_bits()).collect();
    assert_eq!(got, want, "k cache row 0 is not token 0's normalized k");
}
