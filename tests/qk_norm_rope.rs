//! QK-RMSNorm + RoPE: the device sincos and the float64 reference on the CPU, then the kernels
//! against the reference on fresh random inputs with poisoned outputs (on a GPU, or on the
//! simulator where there is none, with fewer tokens).

mod common;

#[path = "../kernels-gpu/src/prim/trig.rs"]
mod trig;

use half::{bf16, f16};
use lowp::cudarc::driver::CudaSlice;
use lowp::qk_norm_rope::{
    self as qnr, ErrorFlag, KvCacheFp8, Output, Positions, QkNormRopeArgs, QkNormRopeConfig, RopeFrequencies,
    RopeScaling, RopeStyle, Rotary,
};
use lowp::reference::convert as cv;
use lowp::reference::qk_norm_rope::{self as refq, RefConfig, RefRotary, RefValue};
use lowp::{F8E4M3, HalfFloat, Tensor};

use common::Rng;

#[test]
fn device_sincos_matches_libm_over_rope_angles() {
    let mut rng = Rng::fresh("device_sincos_matches_libm_over_rope_angles");
    let mut worst = 0.0f64;
    let mut check = |a: f64| {
        let (s, c) = trig::sincos_f64(a);
        let e = (s - a.sin()).abs().max((c - a.cos()).abs());
        assert!(e < 1e-13, "sincos({a}) off by {e}");
        worst = worst.max(e);
    };
    for a in [0.0, 1e-300, 0.5, std::f64::consts::FRAC_PI_4, std::f64::consts::PI, -3.0, 1e3, 12345.678, 1e6, 3e6, 1e7] {
        check(a);
    }
    // positions up to 4M tokens times frequencies base^(-2i/d)
    for _ in 0..200_000 {
        let pos = rng.below(4_000_000) as f64;
        let f = 1e6f64.powf(-rng.uniform());
        check(pos * f);
        check(-(pos * f));
    }
    // f32 outputs of the kernel are rounded from these: far below an f32 ulp
    eprintln!("worst |sincos - libm| = {worst:e}");
    assert!(worst < 1e-13, "{worst}");
}

fn ref_cfg(c: &QkNormRopeConfig, norm: bool, rope: bool) -> RefConfig {
    RefConfig {
        num_q_heads: c.num_q_heads,
        num_kv_heads: c.num_kv_heads,
        head_dim: c.head_dim,
        rotary_dim: c.rotary_dim,
        gptj: c.style == RopeStyle::GptJ,
        eps: c.eps,
        norm,
        rope,
    }
}

#[test]
fn reference_rope_at_position_zero_is_the_identity_and_rotation_keeps_pair_norms() {
    let mut rng = Rng::fresh("reference_rope_identity_and_norms");
    let (inv, _) = qnr::rope_inv_freq(64, 10000.0, RopeScaling::None).unwrap();
    for gptj in [false, true] {
        let cfg = RefConfig { num_q_heads: 2, num_kv_heads: 1, head_dim: 64, rotary_dim: 64, gptj, eps: 1e-6, norm: false, rope: true };
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
    let cfg = RefConfig { num_q_heads: 1, num_kv_heads: 1, head_dim: 64, rotary_dim: 32, gptj: false, eps: 1e-6, norm: true, rope: true };
    let qkv: Vec<f16> = (0..3 * 64).map(|_| f16::from_f64(rng.normal())).collect();
    let w: Vec<f16> = (0..64).map(|_| f16::from_f64(1.0 + 0.2 * rng.normal())).collect();
    let (q, k) = refq::qk_norm_rope(&cfg, &qkv, 1, 192, &w, &w, &[99], RefRotary::Freq { inv_freq: &inv, attention_factor: 1.0 });
    let xq: Vec<f64> = qkv[..64].iter().map(|v| v.to_f64()).collect();
    let n = refq::rms_norm(&xq, &w, 1e-6);
    for i in 32..64 {
        assert_eq!(q[i].value, n[i]);
    }
    assert_eq!(k.len(), 64);
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
}

/// The sweep; on the simulator the base case has 9 tokens (still more than the 5 that the
/// position-clamping and padding-slot checks need) and the many-token case 157.
fn cases(lowp: &lowp::Lowp) -> Vec<Case> {
    let tokens = |gpu: usize, sim: usize| common::sized(lowp, gpu, sim);
    let base = Case { tokens: tokens(37, 9), hq: 8, hk: 2, d: 128, rd: 128, style: RopeStyle::NeoX, pad: 0, computed: false, i64_pos: false, separate: false, kv: false };
    vec![
        base,
        Case { d: 64, rd: 64, hq: 4, hk: 4, ..base },                                  // MHA
        Case { d: 256, rd: 256, hq: 4, hk: 1, ..base },                                 // MQA
        Case { style: RopeStyle::GptJ, ..base },
        Case { rd: 64, ..base },                                                        // partial rotary
        Case { rd: 38, style: RopeStyle::GptJ, d: 64, hq: 2, hk: 1, ..base },           // odd partial width
        Case { pad: 3, ..base },                                                        // scalar path
        Case { pad: 8, tokens: 1, ..base },                                             // decode, strided
        Case { computed: true, i64_pos: true, ..base },
        Case { computed: true, style: RopeStyle::GptJ, d: 64, rd: 32, ..base },
        Case { separate: true, ..base },
        Case { kv: true, ..base },
        Case { kv: true, separate: true, computed: true, d: 256, rd: 256, hq: 2, hk: 1, ..base },
        Case { tokens: tokens(3001, 157), hq: 16, hk: 4, ..base },
    ]
}

fn poison<T: HalfFloat>() -> T {
    T::from_bits(if T::SUFFIX == "bf16" { common::POISON16 } else { common::POISON_F16 })
}

fn check<T: HalfFloat>(what: &str, case: &Case, got: &[T], want: &[RefValue]) {
    assert_eq!(got.len(), want.len(), "{what} {case:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.to_f64();
        // one rounding to T (2^-8 relative covers bf16's 2^-9; half an ulp where T is subnormal,
        // f16 below 2^-14) plus f32 arithmetic on terms of size `magnitude` (cancellation in
        // x·cos − x'·sin)
        let rounding = (w.value.abs() * 2f64.powi(-8)).max(lowp::reference::ulp::<T>(w.value) / 2.0);
        let tol = rounding + w.magnitude * 2f64.powi(-18);
        assert!(!g.is_nan() && (g - w.value).abs() <= tol, "{what} {case:?}: element {i}: got {g}, reference {} (tol {tol})", w.value);
    }
}

fn run_case<T: HalfFloat>(lowp: &lowp::Lowp, rng: &mut Rng, case: Case, op: &str) {
    let stream = lowp.new_stream().expect("stream");
    let (t, d) = (case.tokens, case.d);
    let cols = (case.hq + 2 * case.hk) * d;
    let stride = cols + case.pad;
    let cfg = QkNormRopeConfig { num_q_heads: case.hq, num_kv_heads: case.hk, head_dim: d, rotary_dim: case.rd, style: case.style, eps: 1e-6 };
    let qkv_host: Vec<T> = (0..t * stride).map(|_| T::from_f64(rng.normal() * 2.0)).collect();
    let qw: Vec<T> = (0..d).map(|_| T::from_f64(1.0 + 0.3 * rng.normal())).collect();
    let kw: Vec<T> = (0..d).map(|_| T::from_f64(1.0 + 0.3 * rng.normal())).collect();
    let max_pos = 4096usize;
    // random positions, a few past the cache end and one negative, to exercise clamping
    let mut pos: Vec<i64> = (0..t).map(|_| rng.below(max_pos as u64) as i64).collect();
    let clamp_case = !case.computed && op != "head_rmsnorm" && t > 5;
    if clamp_case {
        pos[1] = max_pos as i64 + 17;
        pos[3] = -5;
    }
    let (inv, attn) = qnr::rope_inv_freq(case.rd, 1e6, RopeScaling::None).expect("freqs");
    let cache = qnr::cos_sin_cache(&inv, attn, max_pos);

    let mut qkv = Tensor::from_host_strided(&stream, &qkv_host, t, cols, stride).expect("qkv");
    let qw_d = stream.clone_htod(&qw).expect("htod");
    let kw_d = stream.clone_htod(&kw).expect("htod");
    let pos32: Vec<i32> = pos.iter().map(|&p| p as i32).collect();
    let pos32_d = stream.clone_htod(&pos32).expect("htod");
    let pos64_d = stream.clone_htod(&pos).expect("htod");
    let cache_d = stream.clone_htod(&cache).expect("htod");
    let freqs = RopeFrequencies::new(&stream, case.rd, 1e6, RopeScaling::None).expect("freqs");
    let mut q_out = Tensor::from_host(&stream, &vec![poison::<T>(); t * case.hq * d], t, case.hq * d).expect("q_out");
    let mut k_out = Tensor::from_host(&stream, &vec![poison::<T>(); t * case.hk * d], t, case.hk * d).expect("k_out");
    let cache_rows = t + 3;
    let mut kc = Tensor::from_host(&stream, &vec![F8E4M3(0xa5); cache_rows * case.hk * d], cache_rows, case.hk * d).expect("k cache");
    let mut vc = Tensor::from_host(&stream, &vec![F8E4M3(0xa5); cache_rows * case.hk * d], cache_rows, case.hk * d).expect("v cache");
    // slots: reversed order, token 2 a padding token (-1)
    let slots: Vec<i64> = (0..t).map(|i| if i == 2 && t > 2 { -1 } else { (t - 1 - i) as i64 }).collect();
    let slots_d: CudaSlice<i64> = stream.clone_htod(&slots).expect("htod");
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    let (k_scale, v_scale) = (0.05f32, 0.03f32);

    let args = QkNormRopeArgs {
        qkv: qkv.view_mut(),
        weights: Some((qw_d.as_view(), kw_d.as_view())),
        positions: Some(if case.i64_pos { Positions::I64(pos64_d.as_view()) } else { Positions::I32(pos32_d.as_view()) }),
        rotary: Some(if case.computed { Rotary::Computed(&freqs) } else { Rotary::Cache { cos_sin: cache_d.as_view(), max_pos } }),
        output: if case.separate { Output::Separate { q: q_out.view_mut(), k: k_out.view_mut() } } else { Output::InPlace },
        kv_cache: if case.kv {
            Some(KvCacheFp8 { k_cache: kc.view_mut(), v_cache: Some(vc.view_mut()), slot_mapping: Some(slots_d.as_view()), k_scale, v_scale })
        } else {
            None
        },
        error_flag: Some(&mut flag),
    };
    match op {
        "qk_norm_rope" => qnr::qk_norm_rope(lowp, &stream, &cfg, args),
        "head_rmsnorm" => qnr::head_rmsnorm(lowp, &stream, &cfg, args),
        _ => qnr::rope(lowp, &stream, &cfg, args),
    }
    .unwrap_or_else(|e| panic!("{op} {case:?}: {e}"));

    let rc = ref_cfg(&cfg, op != "rope", op != "head_rmsnorm");
    let rot = if case.computed { RefRotary::Freq { inv_freq: &inv, attention_factor: attn } } else { RefRotary::Cache { cos_sin: &cache, max_pos } };
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
            assert_eq!(all[r * stride + c].to_bits(), qkv_host[r * stride + c].to_bits(), "{op} {case:?}: qkv[{r}, {c}] changed");
        }
    }
    let flags = flag.read(&stream).expect("flag");
    assert_eq!(flags & qnr::ERR_POSITION_OUT_OF_RANGE != 0, clamp_case, "{op} {case:?}: position flag {flags:#x}");
    if case.kv {
        let k_all = kc.to_host(&stream).expect("kc");
        let v_all = vc.to_host(&stream).expect("vc");
        let hkd = case.hk * d;
        let mut cached = vec![false; cache_rows];
        for (tok, &s) in slots.iter().enumerate() {
            if s < 0 {
                continue;
            }
            let s = s as usize;
            cached[s] = true;
            for j in 0..hkd {
                let k_final = got_k[tok * hkd + j].to_f64() as f32;
                assert_eq!(k_all[s * hkd + j].0, cv::f32_to_e4m3fn_sat(k_final / k_scale), "{op} {case:?}: k cache token {tok} elem {j}");
                let v = qkv_host[tok * stride + (case.hq + case.hk) * d + j].to_f64() as f32;
                assert_eq!(v_all[s * hkd + j].0, cv::f32_to_e4m3fn_sat(v / v_scale), "{op} {case:?}: v cache token {tok} elem {j}");
            }
        }
        for (s, c) in cached.iter().enumerate() {
            if !c {
                assert!(k_all[s * hkd..(s + 1) * hkd].iter().all(|b| b.0 == 0xa5), "{op} {case:?}: uncached k row {s} written");
                assert!(v_all[s * hkd..(s + 1) * hkd].iter().all(|b| b.0 == 0xa5), "{op} {case:?}: uncached v row {s} written");
            }
        }
    }
}

fn sweep<T: HalfFloat>(test: &str, op: &str) {
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
    let cfg = QkNormRopeConfig { num_q_heads: 2, num_kv_heads: 1, head_dim: 64, rotary_dim: 64, style: RopeStyle::NeoX, eps: 1e-6 };
    let mut rng = Rng::fresh("slot_past_the_cache_end_is_skipped_and_flagged");
    let host: Vec<bf16> = (0..2 * 256).map(|_| bf16::from_f64(rng.normal())).collect();
    let mut qkv = Tensor::from_host(&stream, &host, 2, 256).expect("qkv");
    let mut kc = Tensor::from_host(&stream, &vec![F8E4M3(0xa5); 64], 1, 64).expect("kc");
    let slots = stream.clone_htod(&[0i64, 1]).expect("htod"); // row 1 does not exist
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    let w = stream.clone_htod(&vec![bf16::ONE; 64]).expect("htod");
    let args = QkNormRopeArgs {
        qkv: qkv.view_mut(),
        weights: Some((w.as_view(), w.as_view())),
        positions: None,
        rotary: None,
        output: Output::InPlace,
        kv_cache: Some(KvCacheFp8 { k_cache: kc.view_mut(), v_cache: None, slot_mapping: Some(slots.as_view()), k_scale: 1.0, v_scale: 1.0 }),
        error_flag: Some(&mut flag),
    };
    qnr::head_rmsnorm(&lowp, &stream, &cfg, args).expect("launch");
    assert_eq!(flag.read(&stream).expect("flag"), qnr::ERR_SLOT_OUT_OF_RANGE);
    // Row 0 holds token 0's normalized k (columns 128..192 of its qkv row, as stored there) in
    // E4M3, code for code: the 0xa5 poison is itself a valid code, so it proves nothing alone.
    let after = qkv.to_host(&stream).expect("qkv back");
    let want: Vec<u8> = after[128..192].iter().map(|k| cv::f32_to_e4m3fn_sat(k.to_f32())).collect();
    let got: Vec<u8> = kc.to_host(&stream).expect("kc").iter().map(|b| b.0).collect();
    assert_eq!(got, want, "k cache row 0 is not token 0's normalized k");
}
