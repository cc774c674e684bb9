//! Unit tests of `qk_norm_rope::plan` and of the frequency helpers: no GPU needed.
use super::*;
use crate::qk_norm_rope::{RopeScaling, cos_sin_cache, rope_inv_freq};

const QKV: u64 = 0x7000_0000_0000;
const OUT_Q: u64 = 0x7100_0000_0000;
const OUT_K: u64 = 0x7200_0000_0000;
const W: u64 = 0x7300_0000_0000;
const POS: u64 = 0x7400_0000_0000;
const CS: u64 = 0x7500_0000_0000;
const KC: u64 = 0x7600_0000_0000;
const VC: u64 = 0x7700_0000_0000;

fn cfg() -> QkNormRopeSettings {
    QkNormRopeSettings {
        num_q_heads: 4,
        num_kv_heads: 2,
        head_dim: 128,
        rotary_dim: 128,
        style: RopeStyle::NeoX,
        eps: 1e-6,
        weight: NormWeight::Plain,
        mrope_section: None,
    }
}

fn input(op: Op, tokens: usize) -> PlanInput {
    let c = cfg();
    let cols = (c.num_q_heads + 2 * c.num_kv_heads) * c.head_dim;
    PlanInput {
        op,
        cfg: c,
        qkv: Mat { name: "qkv", rows: tokens, cols, stride: cols, addr: QKV, elem: 2 },
        weights: Some((W, 128, W + 256, 128)),
        positions: Some((POS, tokens, false)),
        rotary: Some(RotaryIn::Cache { addr: CS, len: 4096 * 128, max_pos: 4096 }),
        outputs: None,
        kv: None,
        error_flag: 0,
    }
}

#[test]
fn in_place_plan_points_outputs_into_qkv() {
    let p = plan(&input(Op::QkNormRope, 7)).unwrap();
    assert_eq!(p.q_out, QKV);
    assert_eq!(p.k_out, QKV + 4 * 128 * 2);
    assert_eq!((p.q_out_stride, p.k_out_stride, p.qkv_stride), (1024, 1024, 1024));
    assert_eq!(p.tokens, 7);
    assert_eq!(p.max_pos, 4096);
    assert_ne!(p.flags & FLAG_VECTORIZED, 0);
    assert_eq!(p.flags & (FLAG_GPTJ | FLAG_POS_I64), 0);
}

#[test]
fn flags_follow_style_position_width_and_alignment() {
    let mut i = input(Op::QkNormRope, 3);
    i.cfg.style = RopeStyle::GptJ;
    i.positions = Some((POS, 3, true));
    i.qkv.addr += 2; // one element off: no vector access
    let p = plan(&i).unwrap();
    assert_ne!(p.flags & FLAG_GPTJ, 0);
    assert_ne!(p.flags & FLAG_POS_I64, 0);
    assert_eq!(p.flags & FLAG_VECTORIZED, 0);
    // 16-byte lane accesses at every D: a stride of 520 elements (1040 bytes) keeps them, 516
    // (1032 bytes, 8-byte aligned) does not
    let mut i = input(Op::HeadRmsNorm, 3);
    i.cfg.head_dim = 64;
    i.cfg.rotary_dim = 64;
    i.qkv.cols = 8 * 64;
    i.qkv.stride = 520;
    i.weights = Some((W, 64, W + 128, 64));
    assert_ne!(plan(&i).unwrap().flags & FLAG_VECTORIZED, 0);
    i.qkv.stride = 516;
    assert_eq!(plan(&i).unwrap().flags & FLAG_VECTORIZED, 0);
    i.qkv.stride = 520;
    i.weights = Some((W + 8, 64, W + 128, 64));
    assert_eq!(plan(&i).unwrap().flags & FLAG_VECTORIZED, 0, "weights 8-byte aligned only");
}

#[test]
fn rejects_bad_shapes_and_values_naming_the_argument() {
    let mut i = input(Op::QkNormRope, 3);
    i.cfg.head_dim = 96;
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "settings.head_dim", .. })));
    let mut i = input(Op::QkNormRope, 3);
    i.cfg.num_kv_heads = 0;
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "settings.num_kv_heads", .. })));
    let mut i = input(Op::QkNormRope, 3);
    i.cfg.num_q_heads = (1 << 16) + 1;
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "settings.num_q_heads", .. })));
    let mut i = input(Op::QkNormRope, 3);
    i.qkv.cols -= 128;
    let e = plan(&i).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "qkv", .. }), "{e}");
    assert!(e.to_string().contains("1024") && e.to_string().contains("896"), "{e}");
    let mut i = input(Op::QkNormRope, 3);
    i.weights = Some((W, 127, W + 256, 128));
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "q_weight", .. })));
    let mut i = input(Op::QkNormRope, 3);
    i.positions = Some((POS, 2, false));
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "positions", .. })));
    for r in [0, 3, 130] {
        let mut i = input(Op::Rope, 3);
        i.cfg.rotary_dim = r;
        assert!(matches!(plan(&i), Err(Error::InvalidValue { arg: "settings.rotary_dim", .. })), "rotary_dim {r}");
    }
    let mut i = input(Op::QkNormRope, 3);
    i.rotary = Some(RotaryIn::Cache { addr: CS, len: 4096 * 64, max_pos: 4096 });
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "rotary.cos_sin", .. })));
    let mut i = input(Op::QkNormRope, 3);
    i.rotary = Some(RotaryIn::Computed { addr: CS, rotary_dim: 64, attention_factor: 1.0 });
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "rotary", .. })));
    let mut i = input(Op::QkNormRope, 3);
    i.cfg.eps = f32::NAN;
    assert!(matches!(plan(&i), Err(Error::InvalidValue { arg: "settings.eps", .. })));
    let mut i = input(Op::QkNormRope, 3);
    i.positions = None;
    assert!(matches!(plan(&i), Err(Error::InvalidValue { arg: "positions", .. })));
    let mut i = input(Op::Rope, 3);
    i.weights = None; // not needed by rope
    assert!(plan(&i).is_ok());
    let mut i = input(Op::HeadRmsNorm, 3);
    (i.positions, i.rotary) = (None, None); // not needed by the norm
    assert!(plan(&i).is_ok());
    let mut i = input(Op::HeadRmsNorm, 3);
    i.weights = None;
    assert!(matches!(plan(&i), Err(Error::InvalidValue { arg: "q_weight", .. })));
}

#[test]
fn separate_outputs_are_checked() {
    let mut i = input(Op::QkNormRope, 5);
    i.outputs = Some((
        Mat { name: "q_out", rows: 5, cols: 512, stride: 512, addr: OUT_Q, elem: 2 },
        Mat { name: "k_out", rows: 5, cols: 256, stride: 264, addr: OUT_K, elem: 2 },
    ));
    let p = plan(&i).unwrap();
    assert_eq!((p.q_out, p.k_out, p.k_out_stride), (OUT_Q, OUT_K, 264));
    i.outputs = Some((
        Mat { name: "q_out", rows: 5, cols: 512, stride: 512, addr: OUT_Q, elem: 2 },
        Mat { name: "k_out", rows: 5, cols: 512, stride: 512, addr: OUT_K, elem: 2 },
    ));
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "k_out", .. })));
    i.outputs = Some((
        Mat { name: "q_out", rows: 5, cols: 512, stride: 512, addr: QKV + 64, elem: 2 },
        Mat { name: "k_out", rows: 5, cols: 256, stride: 256, addr: OUT_K, elem: 2 },
    ));
    assert!(matches!(plan(&i), Err(Error::Aliasing { arg: "q_out", other: "qkv" })));
}

#[test]
fn kv_cache_is_checked() {
    let kv = |rows, cols, slots: Option<(u64, usize)>, k_scale| KvIn {
        k: Mat { name: "kv_cache.k_cache", rows, cols, stride: cols, addr: KC, elem: 1 },
        v: Some(Mat { name: "kv_cache.v_cache", rows, cols, stride: cols, addr: VC, elem: 1 }),
        slots,
        k_scale,
        v_scale: 0.5,
    };
    let mut i = input(Op::QkNormRope, 5);
    i.kv = Some(kv(5, 256, None, 2.0));
    let p = plan(&i).unwrap();
    assert_eq!((p.k_cache, p.v_cache, p.cache_rows, p.cache_stride, p.k_scale, p.v_scale), (KC, VC, 5, 256, 2.0, 0.5));
    i.kv = Some(kv(4, 256, None, 2.0));
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "kv_cache.k_cache", .. })));
    i.kv = Some(kv(4, 256, Some((POS + 4096, 5)), 2.0));
    assert!(plan(&i).is_ok(), "a slot mapping allows a cache smaller than the batch");
    i.kv = Some(kv(100, 256, Some((POS + 4096, 4)), 2.0));
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "kv_cache.slot_mapping", .. })));
    i.kv = Some(kv(100, 128, None, 2.0));
    assert!(matches!(plan(&i), Err(Error::Shape { arg: "kv_cache.k_cache", .. })));
    i.kv = Some(kv(100, 256, None, 0.0));
    assert!(matches!(plan(&i), Err(Error::InvalidValue { arg: "kv_cache.k_scale", .. })));
}

#[test]
fn kv_cache_stores_and_reciprocals() {
    let kv = |stride, k_scale, v_scale| KvIn {
        k: Mat { name: "kv_cache.k_cache", rows: 5, cols: 256, stride, addr: KC, elem: 1 },
        v: Some(Mat { name: "kv_cache.v_cache", rows: 5, cols: 256, stride, addr: VC, elem: 1 }),
        slots: None,
        k_scale,
        v_scale,
    };
    let mut i = input(Op::QkNormRope, 5);
    i.kv = Some(kv(264, 0.05, 3.0));
    let p = plan(&i).unwrap();
    assert_ne!(p.flags & FLAG_CACHE_VEC8, 0);
    assert_eq!((p.k_recip, p.v_recip), (1.0 / 0.05f32, 1.0 / 3.0f32));
    // odd row stride: byte stores; scales past 2^±64: the kernel divides
    i.kv = Some(kv(257, 1e-25, 3e22));
    let p = plan(&i).unwrap();
    assert_eq!(p.flags & FLAG_CACHE_VEC8, 0);
    assert_eq!((p.k_recip, p.v_recip), (0.0, 0.0));
}

#[test]
fn gemma_weights_and_mrope_are_planned_and_checked() {
    let mut i = input(Op::QkNormRope, 5);
    i.cfg.weight = NormWeight::OnePlus;
    i.cfg.mrope_section = Some([16, 24, 24]);
    i.positions = Some((POS, 15, false));
    let p = plan(&i).unwrap();
    assert_ne!(p.flags & FLAG_WEIGHT_ONE_PLUS, 0);
    assert_ne!(p.flags & FLAG_MROPE, 0);
    assert_eq!((p.mrope_end0, p.mrope_end1), (16, 40));
    // one row of positions where mRoPE needs three
    i.positions = Some((POS, 5, false));
    let e = plan(&i).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "positions", .. }), "{e}");
    assert!(e.to_string().contains("15"), "{e}");
    // sections must cover rotary_dim / 2 = 64 frequencies
    i.positions = Some((POS, 15, false));
    for bad in [[16, 24, 23], [16, 24, 25], [0, 0, 0], [usize::MAX, 1, 64]] {
        i.cfg.mrope_section = Some(bad);
        let e = plan(&i).unwrap_err();
        assert!(matches!(e, Error::InvalidValue { arg: "settings.mrope_section", .. }), "{bad:?}: {e}");
    }
    i.cfg.mrope_section = Some([0, 64, 0]);
    assert!(plan(&i).is_ok(), "empty sections are allowed");
    // the norm alone ignores mRoPE and positions
    let mut i = input(Op::HeadRmsNorm, 5);
    i.cfg.mrope_section = Some([1, 1, 1]);
    (i.positions, i.rotary) = (None, None);
    assert_eq!(plan(&i).unwrap().flags & FLAG_MROPE, 0);
}

#[test]
fn blocks_spread_a_tokens_head_groups_over_at_most_8_warps() {
    // (Hq, Hk, V cache, D) → warps: groups of 256/D heads, as evenly as 8 warps allow
    for (hq, hk, v, d, warps) in [
        (32, 8, false, 128, 7),
        (32, 8, true, 128, 8),
        (2, 1, false, 128, 2),
        (1, 1, false, 256, 2),
        (64, 8, false, 64, 6),
        (4, 1, true, 256, 6),
    ] {
        let mut i = input(Op::QkNormRope, 3);
        i.cfg.num_q_heads = hq;
        i.cfg.num_kv_heads = hk;
        i.cfg.head_dim = d;
        i.cfg.rotary_dim = d;
        i.qkv.cols = (hq + 2 * hk) * d;
        i.qkv.stride = i.qkv.cols;
        i.weights = Some((W, d, W + 2 * d as u64, d));
        i.rotary = Some(RotaryIn::Cache { addr: CS, len: 4096 * d, max_pos: 4096 });
        if v {
            let m = |name, addr| Mat { name, rows: 3, cols: hk * d, stride: hk * d, addr, elem: 1 };
            i.kv = Some(KvIn {
                k: m("kv_cache.k_cache", KC),
                v: Some(m("kv_cache.v_cache", VC)),
                slots: None,
                k_scale: 1.0,
                v_scale: 1.0,
            });
        }
        let p = plan(&i).unwrap();
        let (w, smem) = block_shape(&p, d, Op::QkNormRope);
        assert_eq!(w, warps, "Hq {hq} Hk {hk} v {v} D {d}");
        assert_eq!(smem, 7 * d as u32 * 4, "tables and mask, no NeoX rows");
    }
    // NeoX at R/2 = 48: partners through shared memory, one 1 KiB row per warp
    let mut i = input(Op::QkNormRope, 3);
    i.cfg.rotary_dim = 96;
    i.rotary = Some(RotaryIn::Cache { addr: CS, len: 4096 * 96, max_pos: 4096 });
    let p = plan(&i).unwrap();
    let (w, smem) = block_shape(&p, 128, Op::QkNormRope);
    assert_eq!(smem, 7 * 128 * 4 + w * 1024);
    assert_eq!(block_shape(&p, 128, Op::HeadRmsNorm).1, 2 * 128 * 4, "the norm needs the weights only");
}

#[test]
fn default_frequencies_are_base_powers() {
    let (f, a) = rope_inv_freq(8, 10000.0, RopeScaling::None).unwrap();
    assert_eq!(a, 1.0);
    for (i, v) in f.iter().enumerate() {
        approx::assert_relative_eq!(*v, 10000f64.powf(-(2.0 * i as f64) / 8.0), max_relative = 1e-14);
    }
    let (g, _) = rope_inv_freq(8, 10000.0, RopeScaling::Linear { factor: 4.0 }).unwrap();
    for (a, b) in f.iter().zip(&g) {
        approx::assert_relative_eq!(*a / 4.0, *b, max_relative = 1e-14);
    }
    assert!(matches!(rope_inv_freq(7, 10000.0, RopeScaling::None), Err(Error::InvalidValue { arg: "rotary_dim", .. })));
    assert!(matches!(rope_inv_freq(8, 1.0, RopeScaling::None), Err(Error::InvalidValue { arg: "base", .. })));
}

#[test]
fn yarn_interpolates_low_frequencies_and_keeps_high_ones() {
    // Qwen-style: D 128, base 1e6, factor 4 over a 32k original context.
    let y = RopeScaling::Yarn {
        factor: 4.0,
        original_max_position: 32768,
        beta_fast: 32.0,
        beta_slow: 1.0,
        attention_factor: None,
    };
    let (f, a) = rope_inv_freq(128, 1e6, y).unwrap();
    let (plain, _) = rope_inv_freq(128, 1e6, RopeScaling::None).unwrap();
    approx::assert_relative_eq!(a, 0.1 * 4f64.ln() + 1.0, max_relative = 1e-15);
    // the fastest-rotating frequency is extrapolated (unchanged), the slowest interpolated (÷ 4)
    approx::assert_relative_eq!(f[0], plain[0], max_relative = 1e-15);
    approx::assert_relative_eq!(f[63], plain[63] / 4.0, max_relative = 1e-12);
    // monotone in between
    assert!(f.windows(2).all(|w| w[0] > w[1]));
    for (g, p) in f.iter().zip(&plain) {
        assert!(*g <= *p * (1.0 + 1e-15) && *g >= *p / 4.0 * (1.0 - 1e-15));
    }
}

#[test]
fn cos_sin_cache_layout_is_cos_then_sin() {
    let (f, _) = rope_inv_freq(4, 10000.0, RopeScaling::None).unwrap();
    let c = cos_sin_cache(&f, 1.0, 3);
    assert_eq!(c.len(), 12);
    for p in 0..3 {
        for i in 0..2 {
            let a = p as f64 * f[i];
            assert_eq!(c[p * 4 + i], a.cos() as f32);
            assert_eq!(c[p * 4 + 2 + i], a.sin() as f32);
        }
    }
}

/// Counts at and past every width the checks compute in.
const EXTREME_TOKENS: [usize; 10] =
    [0, 1, 7, u32::MAX as usize, 1 << 32, 1 << 40, 1 << 62, usize::MAX / 3 + 1, usize::MAX / 2, usize::MAX];

/// Whether `m`'s bytes lie in the 64-bit address space (u128 arithmetic, no overflow).
fn in_address_space(m: &Mat) -> bool {
    let span = if m.rows == 0 || m.cols == 0 { 0 } else { (m.rows as u128 - 1) * m.stride as u128 + m.cols as u128 };
    m.addr as u128 + span * m.elem as u128 <= 1 << 64
}

/// The checks a planned call passed, recomputed in u128: settings in range, one position per
/// token (three with mRoPE), and every matrix the kernel touches inside the address space.
fn assert_planned(i: &PlanInput, p: &QkNormRopeParams) {
    let c = i.cfg;
    let case = format!("{i:?}");
    assert!(HEAD_DIMS.contains(&c.head_dim), "{case}");
    assert!((1..=1 << 16).contains(&c.num_q_heads) && (1..=1 << 16).contains(&c.num_kv_heads), "{case}");
    let tokens = i.qkv.rows;
    assert_eq!(p.tokens, tokens as u64, "{case}");
    assert_eq!((p.num_q_heads as usize, p.num_kv_heads as usize), (c.num_q_heads, c.num_kv_heads), "{case}");
    if i.op != Op::HeadRmsNorm {
        assert_eq!(p.rotary_dim as usize, c.rotary_dim, "{case}");
        let pn = i.positions.map_or(0, |(_, n, _)| n) as u128;
        let per_token = if c.mrope_section.is_some() { 3 } else { 1 };
        assert_eq!(pn, per_token * tokens as u128, "{case}");
        if let Some(sec) = c.mrope_section {
            assert_eq!(sec.iter().map(|&s| s as u128).sum::<u128>(), c.rotary_dim as u128 / 2, "{case}");
        }
    }
    if i.outputs.is_none() {
        let k_out = i.qkv.addr as u128 + (c.num_q_heads * c.head_dim * i.qkv.elem) as u128;
        assert_eq!(p.k_out as u128, k_out, "{case}");
    }
    if tokens > 0 {
        let outputs = i.outputs.iter().flat_map(|(q, k)| [q, k]);
        let caches = i.kv.iter().flat_map(|kv| std::iter::once(&kv.k).chain(kv.v.iter()));
        for m in std::iter::once(&i.qkv).chain(outputs).chain(caches) {
            assert!(in_address_space(m), "{case}: {m:?}");
        }
    }
}

#[test]
fn plan_survives_extreme_settings_shapes_strides_and_addresses() {
    let ops = [Op::QkNormRope, Op::HeadRmsNorm, Op::Rope];
    // settings and counts, on an otherwise consistent call
    for op in ops {
        for (hq, hk) in [(4, 2), (1 << 16, 1 << 16), (usize::MAX, 1), (1, 0), (1 << 32, 1)] {
            for d in [128, 256, usize::MAX] {
                for r in [d.min(256), 64, (1 << 32) + 128, usize::MAX] {
                    for mrope in [None, Some([32, 16, 16]), Some([usize::MAX, 1, 0]), Some([r / 4, r / 4, 0])] {
                        for (ti, &tokens) in EXTREME_TOKENS.iter().enumerate() {
                            for pn in [tokens, tokens.wrapping_mul(3), usize::MAX] {
                                let mut i = input(op, tokens);
                                i.cfg = QkNormRopeSettings {
                                    num_q_heads: hq,
                                    num_kv_heads: hk,
                                    head_dim: d,
                                    rotary_dim: r,
                                    mrope_section: mrope,
                                    ..i.cfg
                                };
                                let cols = hq.wrapping_add(hk.wrapping_mul(2)).wrapping_mul(d);
                                i.qkv.cols = cols;
                                i.qkv.stride = [cols, 1 << 62, usize::MAX][ti % 3];
                                i.weights = Some((W, d, W + 1024, d));
                                i.positions = Some((POS, pn, false));
                                let max_pos = [4096, usize::MAX, 1 << 62][ti % 3];
                                i.rotary = Some(if ti % 2 == 0 {
                                    RotaryIn::Cache { addr: CS, len: max_pos.wrapping_mul(r), max_pos }
                                } else {
                                    RotaryIn::Computed { addr: CS, rotary_dim: r, attention_factor: 1.0 }
                                });
                                if let Ok(p) = plan(&i) {
                                    assert_planned(&i, &p);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // strides, addresses, separate outputs and KV caches
    for op in ops {
        for &tokens in &EXTREME_TOKENS {
            for stride in [1024, 1 << 40, 1 << 62, usize::MAX / 2 + 1, usize::MAX] {
                for addr in [QKV, 1 << 62, u64::MAX - 1023, u64::MAX - 15] {
                    let outputs = [
                        None,
                        Some((
                            Mat { name: "q_out", rows: tokens, cols: 512, stride, addr: OUT_Q, elem: 2 },
                            Mat { name: "k_out", rows: tokens, cols: 256, stride: 256, addr, elem: 2 },
                        )),
                    ];
                    for outputs in outputs {
                        for (cache_rows, slots) in [(tokens, None), (1, Some((POS + 4096, tokens))), (usize::MAX, None)]
                        {
                            let k =
                                Mat { name: "kv_cache.k_cache", rows: cache_rows, cols: 256, stride, addr, elem: 1 };
                            for kv in [
                                None,
                                Some(KvIn { k, v: Some(Mat { addr: VC, ..k }), slots, k_scale: 1.0, v_scale: 1.0 }),
                            ] {
                                let mut i = input(op, tokens);
                                (i.qkv.stride, i.qkv.addr, i.outputs, i.kv) = (stride, addr, outputs, kv);
                                if let Ok(p) = plan(&i) {
                                    assert_planned(&i, &p);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
