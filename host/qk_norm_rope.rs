//! Fused per-head RMSNorm + rotary embedding on the packed QKV buffer (device side:
//! `kernels-gpu/src/qk_norm_rope.rs`), and the standalone per-head RMSNorm and RoPE built from the
//! same device body.
//!
//! ```text
//! qkv [tokens, (Hq + 2·Hk)·D]   q heads | k heads | v heads        (bf16 or f16, any row stride)
//! q, k:  y = rope(rmsnorm(head) · w, position)    f32 math, one rounding
//! v:     untouched (optionally written to an FP8 V cache)
//! ```
//! Conventions (Hugging Face Qwen3 `Qwen3RMSNorm` then `apply_rotary_pos_emb`): NeoX style
//! rotates the halves of the rotary part (`rotate_half`), GPT-J style interleaved pairs; with
//! `rotary_dim < head_dim` the trailing elements are normalized and passed through. The norm's
//! weight multiplies as `w` or, Gemma-style, as `1 + w` ([`NormWeight`]). cos/sin come from an
//! f32 cache `[max_pos, rotary_dim]` (cos in the first half of a row, sin in the second, vLLM's
//! `cos_sin_cache`) or are computed in the kernel from [`RopeFrequencies`]. Multimodal rotary
//! embeddings (vLLM's `MRotaryEmbedding`): positions `[3, tokens]` and
//! [`QkNormRopeConfig::mrope_section`], each section of frequencies rotating by its own row.
//!
//! A position outside `[0, max_pos)` of a cache is clamped (never read out of bounds) and sets
//! [`ERR_POSITION_OUT_OF_RANGE`] in the optional [`ErrorFlag`]; a slot mapping entry past the end
//! of an FP8 cache skips that token and sets [`ERR_SLOT_OUT_OF_RANGE`]. See
//! `docs/kernels/qk_norm_rope.md`.

use std::sync::Arc;

use cudarc::driver::{
    CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceSlice,
    LaunchConfig, PushKernelArg, SyncOnDrop,
};

pub use crate::abi::{ERR_POSITION_OUT_OF_RANGE, ERR_SLOT_OUT_OF_RANGE};
use crate::abi::{
    FLAG_CACHE_VEC8, FLAG_GPTJ, FLAG_MROPE, FLAG_POS_I64, FLAG_VECTORIZED, FLAG_WEIGHT_ONE_PLUS,
    QK_ELEMS_PER_LANE, QK_NORM_ROPE_MAX_THREADS, QkNormRopeParams, neox_by_shuffle,
    qk_norm_rope_smem_bytes,
};
use crate::context::Lowp;
use crate::dtype::{F8E4M3, Half};
use crate::error::{CudaResultExt, Error, Result};
use crate::matrix::Matrix;

/// The device's FP8 scale arithmetic (`RECIP_RANGE`, and `div_by_scale` for the tests).
#[path = "../kernels-gpu/src/prim/kv_fp8.rs"]
#[allow(dead_code)]
pub(crate) mod kv_fp8;

crate::abi::device_repr!(QkNormRopeParams);

/// Kernel entry points of this family: `{qk_norm_rope,head_rmsnorm,rope}_{bf16,f16}_d{64,128,256}`,
/// and `{qk_norm_rope,rope}_rows_*` for NeoX rotary widths whose partners are not a shuffle away.
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &[
    "qk_norm_rope_bf16_d64",
    "qk_norm_rope_bf16_d128",
    "qk_norm_rope_bf16_d256",
    "qk_norm_rope_f16_d64",
    "qk_norm_rope_f16_d128",
    "qk_norm_rope_f16_d256",
    "head_rmsnorm_bf16_d64",
    "head_rmsnorm_bf16_d128",
    "head_rmsnorm_bf16_d256",
    "head_rmsnorm_f16_d64",
    "head_rmsnorm_f16_d128",
    "head_rmsnorm_f16_d256",
    "rope_bf16_d64",
    "rope_bf16_d128",
    "rope_bf16_d256",
    "rope_f16_d64",
    "rope_f16_d128",
    "rope_f16_d256",
    "qk_norm_rope_rows_bf16_d64",
    "qk_norm_rope_rows_bf16_d128",
    "qk_norm_rope_rows_bf16_d256",
    "qk_norm_rope_rows_f16_d64",
    "qk_norm_rope_rows_f16_d128",
    "qk_norm_rope_rows_f16_d256",
    "rope_rows_bf16_d64",
    "rope_rows_bf16_d128",
    "rope_rows_bf16_d256",
    "rope_rows_f16_d64",
    "rope_rows_f16_d128",
    "rope_rows_f16_d256",
];

/// Head sizes with a kernel.
pub const HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// Which elements rotate together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (i, i + R/2): Hugging Face `rotate_half`, GPT-NeoX, Llama, Qwen.
    NeoX,
    /// Pairs (2i, 2i + 1): GPT-J, interleaved.
    GptJ,
}

/// How the norm applies its weight `w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormWeight {
    /// `n · w` (Qwen3, Llama).
    Plain,
    /// `n · (1 + w)`, the sum in f32 (Gemma's `GemmaRMSNorm`: weights stored as offsets from 1).
    OnePlus,
}

/// Shape and numerics of one attention layer's prologue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QkNormRopeConfig {
    pub num_q_heads: usize,
    pub num_kv_heads: usize,
    /// 64, 128 or 256.
    pub head_dim: usize,
    /// Even, in `2..=head_dim`.
    pub rotary_dim: usize,
    pub style: RopeStyle,
    pub eps: f32,
    pub weight: NormWeight,
    /// Multimodal RoPE (vLLM's `MRotaryEmbedding`, Qwen2-VL): the sizes of the 3 frequency
    /// sections (temporal, height, width), summing to `rotary_dim / 2`; frequency `f` of section
    /// `k` rotates by `positions[k, t]`, and positions are `[3, tokens]` (row-major). `None`: one
    /// position per token.
    pub mrope_section: Option<[usize; 3]>,
}

/// Frequency scaling of computed rotary embeddings (Hugging Face `rope_scaling`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (frequencies too, equivalently).
    Linear {
        factor: f64,
    },
    /// YaRN: frequencies blended between interpolated and extrapolated by a ramp over
    /// `[beta_slow, beta_fast]` rotations, cos and sin scaled by `attention_factor`
    /// (default `0.1 · ln(factor) + 1`).
    Yarn {
        factor: f64,
        original_max_position: usize,
        beta_fast: f64,
        beta_slow: f64,
        attention_factor: Option<f64>,
    },
}

/// Angular frequencies `θ_i` (f64, `rotary_dim / 2` of them) and the cos/sin factor, on the host.
/// Follows Hugging Face `_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`
/// and `_compute_yarn_parameters` (computed in f64 here).
pub fn rope_inv_freq(
    rotary_dim: usize,
    base: f64,
    scaling: RopeScaling,
) -> Result<(Vec<f64>, f64)> {
    if rotary_dim < 2 || rotary_dim % 2 != 0 {
        return Err(Error::InvalidValue {
            arg: "rotary_dim",
            expected: "an even number >= 2",
            actual: rotary_dim.to_string(),
        });
    }
    if !(base.is_finite() && base > 1.0) {
        return Err(Error::InvalidValue {
            arg: "base",
            expected: "a finite value > 1",
            actual: base.to_string(),
        });
    }
    let half = rotary_dim / 2;
    let pos_freq: Vec<f64> = (0..half)
        .map(|i| base.powf(2.0 * i as f64 / rotary_dim as f64))
        .collect();
    let check_factor = |factor: f64| {
        if factor.is_finite() && factor > 0.0 {
            Ok(())
        } else {
            Err(Error::InvalidValue {
                arg: "factor",
                expected: "a finite value > 0",
                actual: factor.to_string(),
            })
        }
    };
    match scaling {
        RopeScaling::None => Ok((pos_freq.iter().map(|p| 1.0 / p).collect(), 1.0)),
        RopeScaling::Linear { factor } => {
            check_factor(factor)?;
            Ok((pos_freq.iter().map(|p| 1.0 / p / factor).collect(), 1.0))
        }
        RopeScaling::Yarn {
            factor,
            original_max_position,
            beta_fast,
            beta_slow,
            attention_factor,
        } => {
            check_factor(factor)?;
            let attention = attention_factor.unwrap_or(if factor <= 1.0 {
                1.0
            } else {
                0.1 * factor.ln() + 1.0
            });
            // Dimension at which a frequency completes `rotations` turns over the original context.
            let correction_dim = |rotations: f64| {
                rotary_dim as f64
                    * (original_max_position as f64 / (rotations * 2.0 * std::f64::consts::PI)).ln()
                    / (2.0 * base.ln())
            };
            let low = correction_dim(beta_fast).floor().max(0.0);
            let high = correction_dim(beta_slow)
                .ceil()
                .min(rotary_dim as f64 - 1.0);
            let high = if low == high { high + 0.001 } else { high };
            let inv = (0..half)
                .map(|i| {
                    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                    let extrapolation = 1.0 - ramp;
                    let (interp, extrap) = (1.0 / (factor * pos_freq[i]), 1.0 / pos_freq[i]);
                    interp * (1.0 - extrapolation) + extrap * extrapolation
                })
                .collect();
            Ok((inv, attention))
        }
    }
}

/// The f32 `[max_pos, rotary_dim]` cos/sin cache (cos | sin per row) for `inv_freq`, on the host.
pub fn cos_sin_cache(inv_freq: &[f64], attention_factor: f64, max_pos: usize) -> Vec<f32> {
    let half = inv_freq.len();
    let mut cache = vec![0.0f32; max_pos * 2 * half];
    for p in 0..max_pos {
        for (i, f) in inv_freq.iter().enumerate() {
            let a = p as f64 * f;
            cache[p * 2 * half + i] = (a.cos() * attention_factor) as f32;
            cache[p * 2 * half + half + i] = (a.sin() * attention_factor) as f32;
        }
    }
    cache
}

/// Frequencies on the device, for rotary embeddings computed in the kernel (no cache read).
pub struct RopeFrequencies {
    inv_freq: CudaSlice<f64>,
    rotary_dim: usize,
    attention_factor: f64,
}

impl RopeFrequencies {
    /// Computes the frequencies on the host ([`rope_inv_freq`]) and uploads them on `stream`.
    pub fn new(
        stream: &Arc<CudaStream>,
        rotary_dim: usize,
        base: f64,
        scaling: RopeScaling,
    ) -> Result<Self> {
        let (inv, attention_factor) = rope_inv_freq(rotary_dim, base, scaling)?;
        let inv_freq = stream.clone_htod(&inv).op("cuMemcpyHtoDAsync")?;
        Ok(RopeFrequencies {
            inv_freq,
            rotary_dim,
            attention_factor,
        })
    }
    pub fn rotary_dim(&self) -> usize {
        self.rotary_dim
    }
    pub fn attention_factor(&self) -> f64 {
        self.attention_factor
    }
}

/// Where cos and sin come from.
pub enum Rotary<'a> {
    /// f32 `[max_pos, rotary_dim]`, cos | sin per row; positions are clamped into it.
    Cache {
        cos_sin: CudaView<'a, f32>,
        max_pos: usize,
    },
    /// Computed in the kernel (f64 angle and sincos), no memory read.
    Computed(&'a RopeFrequencies),
}

/// One position per token (`[3, tokens]`, row-major, with mRoPE).
pub enum Positions<'a> {
    I32(CudaView<'a, i32>),
    I64(CudaView<'a, i64>),
}

impl Positions<'_> {
    fn len(&self) -> usize {
        match self {
            Positions::I32(v) => v.len(),
            Positions::I64(v) => v.len(),
        }
    }
}

/// Where the rotated q and k go.
pub enum Output<'a, T: Half> {
    /// Back into the q and k heads of `qkv`.
    InPlace,
    /// Separate `[tokens, Hq·D]` and `[tokens, Hk·D]` tensors (any row strides); `qkv` is read only.
    Separate {
        q: Matrix<T, CudaViewMut<'a, T>>,
        k: Matrix<T, CudaViewMut<'a, T>>,
    },
}

/// The FP8 KV-cache write: each token's final k (and optionally v), as `e4m3(value / scale)` with
/// per-tensor scales, into row `slot_mapping[t]` (or `t`) of `[rows, Hk·D]` caches.
pub struct KvCacheFp8<'a> {
    pub k_cache: Matrix<F8E4M3, CudaViewMut<'a, F8E4M3>>,
    pub v_cache: Option<Matrix<F8E4M3, CudaViewMut<'a, F8E4M3>>>,
    /// Row per token; negative entries skip the token (padding).
    pub slot_mapping: Option<CudaView<'a, i64>>,
    pub k_scale: f32,
    pub v_scale: f32,
}

/// The device-side error bits ([`ERR_POSITION_OUT_OF_RANGE`], [`ERR_SLOT_OUT_OF_RANGE`]).
pub use crate::flag::ErrorFlag;

/// Everything one call touches besides the configuration.
pub struct QkNormRopeArgs<'a, T: Half> {
    /// `[tokens, (Hq + 2·Hk)·D]`.
    pub qkv: Matrix<T, CudaViewMut<'a, T>>,
    /// `[D]` each; required by `qk_norm_rope` and `head_rmsnorm`.
    pub weights: Option<(CudaView<'a, T>, CudaView<'a, T>)>,
    /// Required by `qk_norm_rope` and `rope`.
    pub positions: Option<Positions<'a>>,
    /// Required by `qk_norm_rope` and `rope`.
    pub rotary: Option<Rotary<'a>>,
    pub output: Output<'a, T>,
    pub kv_cache: Option<KvCacheFp8<'a>>,
    pub error_flag: Option<&'a mut ErrorFlag>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    QkNormRope,
    HeadRmsNorm,
    Rope,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::QkNormRope => "qk_norm_rope",
            Op::HeadRmsNorm => "head_rmsnorm",
            Op::Rope => "rope",
        }
    }
    fn norm(self) -> bool {
        self != Op::Rope
    }
    fn rope(self) -> bool {
        self != Op::HeadRmsNorm
    }
}

/// A matrix argument for validation (`validate::Operand`).
pub(crate) use crate::validate::Operand as Mat;
use crate::validate::disjoint;

fn shape_err(arg: &'static str, expected: String, actual: String) -> Error {
    Error::Shape {
        arg,
        expected,
        actual,
    }
}

/// Everything `plan` needs to know about the arguments, with device addresses resolved.
#[derive(Clone, Debug)]
pub(crate) struct PlanInput {
    pub op: Op,
    pub cfg: QkNormRopeConfig,
    pub qkv: Mat,
    /// (addr of q_weight, len, addr of k_weight, len)
    pub weights: Option<(u64, usize, u64, usize)>,
    /// (addr, len, is_i64)
    pub positions: Option<(u64, usize, bool)>,
    /// Cache: (addr, len, max_pos); computed: (addr of inv_freq, rotary_dim, attention factor)
    pub rotary: Option<RotaryIn>,
    pub outputs: Option<(Mat, Mat)>,
    pub kv: Option<KvIn>,
    pub error_flag: u64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum RotaryIn {
    Cache {
        addr: u64,
        len: usize,
        max_pos: usize,
    },
    Computed {
        addr: u64,
        rotary_dim: usize,
        attention_factor: f64,
    },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct KvIn {
    pub k: Mat,
    pub v: Option<Mat>,
    /// (addr, len)
    pub slots: Option<(u64, usize)>,
    pub k_scale: f32,
    pub v_scale: f32,
}

/// Validates every argument and builds the kernel parameters (pure: unit-tested without a GPU).
pub(crate) fn plan(inp: &PlanInput) -> Result<QkNormRopeParams> {
    let c = inp.cfg;
    let op = inp.op.name();
    if !HEAD_DIMS.contains(&c.head_dim) {
        return Err(shape_err(
            "head_dim",
            "64, 128 or 256".into(),
            c.head_dim.to_string(),
        ));
    }
    if c.num_q_heads == 0
        || c.num_kv_heads == 0
        || c.num_q_heads > 1 << 16
        || c.num_kv_heads > 1 << 16
    {
        return Err(shape_err(
            "num_q_heads / num_kv_heads",
            "1..=65536 each".into(),
            format!("{} / {}", c.num_q_heads, c.num_kv_heads),
        ));
    }
    let d = c.head_dim;
    let (hq, hk) = (c.num_q_heads, c.num_kv_heads);
    let cols = (hq + 2 * hk) * d;
    let q = inp.qkv;
    if q.cols != cols {
        return Err(shape_err(
            "qkv",
            format!("(Hq + 2·Hk)·D = ({hq} + 2·{hk})·{d} = {cols} columns"),
            format!("{} columns", q.cols),
        ));
    }
    let tokens = q.rows;
    let mut params = QkNormRopeParams {
        qkv: q.addr,
        q_out: q.addr,
        k_out: q.addr + (hq * d * q.elem) as u64,
        q_weight: 0,
        k_weight: 0,
        positions: 0,
        cos_sin: 0,
        inv_freq: 0,
        k_cache: 0,
        v_cache: 0,
        slot_mapping: 0,
        error_flag: inp.error_flag,
        qkv_stride: q.stride as u64,
        q_out_stride: q.stride as u64,
        k_out_stride: q.stride as u64,
        cache_stride: 0,
        cache_rows: 0,
        tokens: tokens as u64,
        max_pos: 0,
        num_q_heads: hq as u32,
        num_kv_heads: hk as u32,
        rotary_dim: c.rotary_dim as u32,
        flags: 0,
        eps: c.eps,
        attention_factor: 1.0,
        k_scale: 1.0,
        v_scale: 1.0,
        k_recip: 0.0,
        v_recip: 0.0,
        mrope_end0: 0,
        mrope_end1: 0,
    };
    // Per-lane access: 8 elements; a vector access needs rows and bases aligned to 16 bytes.
    let vec_bytes = (QK_ELEMS_PER_LANE as usize * q.elem) as u64;
    let mut vectorized = q.aligned(vec_bytes);

    if inp.op.norm() {
        let Some((qw, qn, kw, kn)) = inp.weights else {
            return Err(Error::InvalidValue {
                arg: "weights",
                expected: "q and k weights for the norm",
                actual: format!("None ({op})"),
            });
        };
        for (arg, n) in [("q_weight", qn), ("k_weight", kn)] {
            if n != d {
                return Err(shape_err(
                    arg,
                    format!("{d} elements (head_dim)"),
                    format!("{n} elements"),
                ));
            }
        }
        if !(c.eps.is_finite() && c.eps >= 0.0) {
            return Err(Error::InvalidValue {
                arg: "eps",
                expected: "a finite value >= 0",
                actual: c.eps.to_string(),
            });
        }
        vectorized &= qw % vec_bytes == 0 && kw % vec_bytes == 0;
        (params.q_weight, params.k_weight) = (qw, kw);
        if c.weight == NormWeight::OnePlus {
            params.flags |= FLAG_WEIGHT_ONE_PLUS;
        }
    }
    if inp.op.rope() {
        let r = c.rotary_dim;
        if r < 2 || r % 2 != 0 || r > d {
            return Err(Error::InvalidValue {
                arg: "rotary_dim",
                expected: "an even number in 2..=head_dim",
                actual: r.to_string(),
            });
        }
        let Some((pa, pn, i64s)) = inp.positions else {
            return Err(Error::InvalidValue {
                arg: "positions",
                expected: "one position per token",
                actual: format!("None ({op})"),
            });
        };
        if let Some(sec) = c.mrope_section {
            if sec.iter().try_fold(0usize, |a, &s| a.checked_add(s)) != Some(r / 2) {
                return Err(Error::InvalidValue {
                    arg: "mrope_section",
                    expected: "3 section sizes summing to rotary_dim / 2",
                    actual: format!("{sec:?} (rotary_dim / 2 = {})", r / 2),
                });
            }
            if Some(pn) != tokens.checked_mul(3) {
                return Err(shape_err(
                    "positions",
                    format!(
                        "[3, {tokens}] = {} (mRoPE: 3 rows of one per token)",
                        3 * tokens
                    ),
                    pn.to_string(),
                ));
            }
            params.flags |= FLAG_MROPE;
            (params.mrope_end0, params.mrope_end1) = (sec[0] as u32, (sec[0] + sec[1]) as u32);
        } else if pn != tokens {
            return Err(shape_err(
                "positions",
                format!("{tokens} (one per token)"),
                pn.to_string(),
            ));
        }
        params.positions = pa;
        if i64s {
            params.flags |= FLAG_POS_I64;
        }
        if c.style == RopeStyle::GptJ {
            params.flags |= FLAG_GPTJ;
        }
        match inp.rotary {
            None => {
                return Err(Error::InvalidValue {
                    arg: "rotary",
                    expected: "a cos/sin cache or frequencies",
                    actual: format!("None ({op})"),
                });
            }
            Some(RotaryIn::Cache { addr, len, max_pos }) => {
                if max_pos == 0 || max_pos.checked_mul(r) != Some(len) {
                    return Err(shape_err(
                        "cos_sin",
                        format!("max_pos × rotary_dim = {max_pos} × {r} f32 (max_pos >= 1)"),
                        format!("{len} f32"),
                    ));
                }
                (params.cos_sin, params.max_pos) = (addr, max_pos as u64);
            }
            Some(RotaryIn::Computed {
                addr,
                rotary_dim,
                attention_factor,
            }) => {
                if rotary_dim != r {
                    return Err(shape_err(
                        "rotary",
                        format!("frequencies for rotary_dim {r}"),
                        format!("frequencies for rotary_dim {rotary_dim}"),
                    ));
                }
                (params.inv_freq, params.attention_factor) = (addr, attention_factor as f32);
            }
        }
    }
    if let Some((qo, ko)) = inp.outputs {
        for (m, heads) in [(&qo, hq), (&ko, hk)] {
            if m.rows != tokens || m.cols != heads * d {
                return Err(shape_err(
                    m.name,
                    format!("[{tokens}, {}]", heads * d),
                    format!("[{}, {}]", m.rows, m.cols),
                ));
            }
        }
        if tokens > 0 {
            disjoint(&qo, &q)?;
            disjoint(&ko, &q)?;
            disjoint(&qo, &ko)?;
        }
        vectorized &= qo.aligned(vec_bytes) && ko.aligned(vec_bytes);
        (
            params.q_out,
            params.q_out_stride,
            params.k_out,
            params.k_out_stride,
        ) = (qo.addr, qo.stride as u64, ko.addr, ko.stride as u64);
    }
    if let Some(kv) = inp.kv {
        let rows = kv.k.rows;
        for m in std::iter::once(&kv.k).chain(kv.v.iter()) {
            if m.cols != hk * d || m.rows != rows || m.stride != kv.k.stride {
                return Err(shape_err(
                    m.name,
                    format!(
                        "[rows, Hk·D = {}] with the K cache's rows and stride",
                        hk * d
                    ),
                    format!("[{}, {}] stride {}", m.rows, m.cols, m.stride),
                ));
            }
            if tokens > 0 {
                disjoint(m, &q)?;
            }
        }
        match kv.slots {
            Some((addr, n)) => {
                if n != tokens {
                    return Err(shape_err(
                        "slot_mapping",
                        format!("{tokens} (one per token)"),
                        n.to_string(),
                    ));
                }
                params.slot_mapping = addr;
            }
            None if rows < tokens => {
                return Err(shape_err(
                    "k_cache",
                    format!("at least {tokens} rows (one per token, no slot mapping)"),
                    rows.to_string(),
                ));
            }
            None => {}
        }
        for (arg, s) in [("k_scale", kv.k_scale), ("v_scale", kv.v_scale)] {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::InvalidValue {
                    arg,
                    expected: "a finite value > 0",
                    actual: s.to_string(),
                });
            }
        }
        params.k_cache = kv.k.addr;
        params.v_cache = kv.v.map_or(0, |v| v.addr);
        (params.cache_stride, params.cache_rows) = (kv.k.stride as u64, rows as u64);
        (params.k_scale, params.v_scale) = (kv.k_scale, kv.v_scale);
        (params.k_recip, params.v_recip) = (reciprocal(kv.k_scale), reciprocal(kv.v_scale));
        if std::iter::once(&kv.k)
            .chain(kv.v.iter())
            .all(|m| m.aligned(8))
        {
            params.flags |= FLAG_CACHE_VEC8;
        }
    }
    if vectorized {
        params.flags |= FLAG_VECTORIZED;
    }
    Ok(params)
}

/// `RN(1 / scale)` when the kernel may divide through it (`prim::kv_fp8::RECIP_RANGE`), else 0
/// (the kernel divides).
fn reciprocal(scale: f32) -> f32 {
    let (lo, hi) = kv_fp8::RECIP_RANGE;
    if (lo..=hi).contains(&scale) {
        1.0 / scale
    } else {
        0.0
    }
}

/// Warps per CTA and dynamic shared memory of a launch: the token's head groups (`256 / D` heads
/// each) spread evenly over at most 8 warps.
pub(crate) fn block_shape(params: &QkNormRopeParams, head_dim: usize, op: Op) -> (u32, u32) {
    let heads = params.num_q_heads
        + params.num_kv_heads
        + if params.v_cache != 0 {
            params.num_kv_heads
        } else {
            0
        };
    let groups = heads.div_ceil(256 / head_dim as u32);
    let max_warps = QK_NORM_ROPE_MAX_THREADS / 32;
    let warps = groups.div_ceil(groups.div_ceil(max_warps));
    (
        warps,
        qk_norm_rope_smem_bytes(head_dim as u32, warps, op.rope(), neox_rows(params, op)),
    )
}

/// Whether a launch needs the NeoX partners through shared memory (the `_rows` kernels).
fn neox_rows(params: &QkNormRopeParams, op: Op) -> bool {
    op.rope() && params.flags & FLAG_GPTJ == 0 && !neox_by_shuffle(params.rotary_dim)
}

/// Kernel name for an op, dtype and head size.
fn kernel_name<T: Half>(op: Op, d: usize, rows: bool) -> String {
    format!(
        "{}{}_{}_d{d}",
        op.name(),
        if rows { "_rows" } else { "" },
        T::SUFFIX
    )
}

fn mat<T, B: DeviceSlice<T>>(name: &'static str, t: &Matrix<T, B>, addr: u64, elem: usize) -> Mat
where
    T: crate::dtype::Element,
{
    Mat {
        name,
        rows: t.rows(),
        cols: t.cols(),
        stride: t.row_stride(),
        addr,
        elem,
    }
}

fn run<T: Half>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    cfg: &QkNormRopeConfig,
    op: Op,
    args: QkNormRopeArgs<'_, T>,
) -> Result<()> {
    lowp.check_stream(stream)?;
    let QkNormRopeArgs {
        mut qkv,
        weights,
        positions,
        rotary,
        mut output,
        mut kv_cache,
        mut error_flag,
    } = args;
    let elem = std::mem::size_of::<T>();
    // Device checks first, then the addresses (each guard lives until after the launch).
    lowp.check_buffer("qkv", qkv.buffer())?;
    let mut guards: Vec<SyncOnDrop<'_>> = Vec::new();
    let qkv_mat = mat("qkv", &qkv, 0, elem);
    let (qkv_addr, g) = qkv.device_ptr_mut(stream);
    guards.push(g);
    let mut inp = PlanInput {
        op,
        cfg: *cfg,
        qkv: Mat {
            addr: qkv_addr,
            ..qkv_mat
        },
        weights: None,
        positions: None,
        rotary: None,
        outputs: None,
        kv: None,
        error_flag: 0,
    };
    if let Some((qw, kw)) = &weights {
        lowp.check_buffer("q_weight", qw)?;
        lowp.check_buffer("k_weight", kw)?;
        let (qa, g1) = qw.device_ptr(stream);
        let (ka, g2) = kw.device_ptr(stream);
        guards.extend([g1, g2]);
        inp.weights = Some((qa, qw.len(), ka, kw.len()));
    }
    if let Some(p) = &positions {
        let (addr, g) = match p {
            Positions::I32(v) => {
                lowp.check_buffer("positions", v)?;
                v.device_ptr(stream)
            }
            Positions::I64(v) => {
                lowp.check_buffer("positions", v)?;
                v.device_ptr(stream)
            }
        };
        guards.push(g);
        inp.positions = Some((addr, p.len(), matches!(p, Positions::I64(_))));
    }
    match &rotary {
        Some(Rotary::Cache { cos_sin, max_pos }) => {
            lowp.check_buffer("cos_sin", cos_sin)?;
            let (addr, g) = cos_sin.device_ptr(stream);
            guards.push(g);
            inp.rotary = Some(RotaryIn::Cache {
                addr,
                len: cos_sin.len(),
                max_pos: *max_pos,
            });
        }
        Some(Rotary::Computed(f)) => {
            lowp.check_buffer("rotary", &f.inv_freq)?;
            let (addr, g) = f.inv_freq.device_ptr(stream);
            guards.push(g);
            inp.rotary = Some(RotaryIn::Computed {
                addr,
                rotary_dim: f.rotary_dim,
                attention_factor: f.attention_factor,
            });
        }
        None => {}
    }
    if let Output::Separate { q, k } = &mut output {
        lowp.check_buffer("q_out", q.buffer())?;
        lowp.check_buffer("k_out", k.buffer())?;
        let (qm, km) = (mat("q_out", q, 0, elem), mat("k_out", k, 0, elem));
        let (qa, g1) = q.device_ptr_mut(stream);
        let (ka, g2) = k.device_ptr_mut(stream);
        guards.extend([g1, g2]);
        inp.outputs = Some((Mat { addr: qa, ..qm }, Mat { addr: ka, ..km }));
    }
    if let Some(kv) = &mut kv_cache {
        lowp.check_buffer("k_cache", kv.k_cache.buffer())?;
        let km = mat("k_cache", &kv.k_cache, 0, 1);
        let (ka, g) = kv.k_cache.device_ptr_mut(stream);
        guards.push(g);
        let v = match &mut kv.v_cache {
            Some(v) => {
                lowp.check_buffer("v_cache", v.buffer())?;
                let vm = mat("v_cache", v, 0, 1);
                let (va, g) = v.device_ptr_mut(stream);
                guards.push(g);
                Some(Mat { addr: va, ..vm })
            }
            None => None,
        };
        let slots = match &kv.slot_mapping {
            Some(s) => {
                lowp.check_buffer("slot_mapping", s)?;
                let (a, g) = s.device_ptr(stream);
                guards.push(g);
                Some((a, s.len()))
            }
            None => None,
        };
        inp.kv = Some(KvIn {
            k: Mat { addr: ka, ..km },
            v,
            slots,
            k_scale: kv.k_scale,
            v_scale: kv.v_scale,
        });
    }
    if let Some(flag) = &mut error_flag {
        lowp.check_buffer("error_flag", &flag.buf)?;
        let (a, g) = flag.buf.device_ptr_mut(stream);
        guards.push(g);
        inp.error_flag = a;
    }

    let params = plan(&inp)?;
    let f = lowp.function(
        op.name(),
        &kernel_name::<T>(op, cfg.head_dim, neox_rows(&params, op)),
        "compute capability 8.0",
    )?;
    if params.tokens == 0 {
        return Ok(());
    }
    let (warps, smem) = block_shape(&params, cfg.head_dim, op);
    // One CTA per token, at most as many as are resident at once (grid-stride over the rest).
    let sms = lowp.sm_count() as u64;
    let grid = if params.tokens <= sms {
        params.tokens
    } else {
        let per_sm = f
            .occupancy_max_active_blocks_per_multiprocessor(32 * warps, smem as usize, None)
            .op("cuOccupancyMaxActiveBlocksPerMultiprocessor")?;
        params.tokens.min(sms * per_sm.max(1) as u64)
    };
    let cfg_launch = LaunchConfig {
        grid_dim: (grid.min(i32::MAX as u64) as u32, 1, 1),
        block_dim: (32 * warps, 1, 1),
        shared_mem_bytes: smem,
    };
    let mut b = stream.launch_builder(&f);
    b.arg(&params);
    // SAFETY: `plan` checked every shape, length, stride and overlap against the buffers whose
    // addresses are in `params` (all on this context, guards alive until after the launch); the
    // kernel touches only those ranges, clamps device-side positions and slots, and runs with the
    // block size (1..=8 warps) and shared memory of `block_shape`.
    unsafe { b.launch(cfg_launch) }.op("cuLaunchKernel")?;
    drop(guards);
    Ok(())
}

/// Per-head RMSNorm of q and k, then the rotary embedding, in one pass (asynchronous on `stream`).
pub fn qk_norm_rope<T: Half>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    cfg: &QkNormRopeConfig,
    args: QkNormRopeArgs<'_, T>,
) -> Result<()> {
    run(lowp, stream, cfg, Op::QkNormRope, args)
}

/// Per-head RMSNorm of q and k only (`positions` and `rotary` are ignored).
pub fn head_rmsnorm<T: Half>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    cfg: &QkNormRopeConfig,
    args: QkNormRopeArgs<'_, T>,
) -> Result<()> {
    run(lowp, stream, cfg, Op::HeadRmsNorm, args)
}

/// The rotary embedding of q and k only (`weights` and `eps` are ignored).
pub fn rope<T: Half>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    cfg: &QkNormRopeConfig,
    args: QkNormRopeArgs<'_, T>,
) -> Result<()> {
    run(lowp, stream, cfg, Op::Rope, args)
}

#[cfg(test)]
#[path = "tests/qk_norm_rope_plan.rs"]
mod tests;
