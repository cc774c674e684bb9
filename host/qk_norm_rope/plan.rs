//! Pure planning of the family's launches: every argument check, the kernel parameters, the
//! block shape and the kernel name, from shapes and device addresses alone (unit-tested without a
//! GPU in `host/tests/qk_norm_rope_plan.rs`).

use crate::abi::{
    FLAG_CACHE_VEC8, FLAG_GPTJ, FLAG_MROPE, FLAG_POS_I64, FLAG_VECTORIZED, FLAG_WEIGHT_ONE_PLUS, QK_ELEMS_PER_LANE,
    QK_NORM_ROPE_MAX_THREADS, QkNormRopeParams, neox_by_shuffle, qk_norm_rope_smem_bytes,
};
use crate::dtype::Half;
use crate::error::{Error, Result};

use super::{HEAD_DIMS, NormWeight, QkNormRopeSettings, RopeStyle};

/// The device's FP8 scale arithmetic (`RECIP_RANGE`, and `div_by_scale` for the tests).
#[path = "../../kernels-gpu/src/prim/kv_fp8.rs"]
#[allow(dead_code)]
pub(crate) mod kv_fp8;

/// The three ops of the family (one device body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    QkNormRope,
    HeadRmsNorm,
    Rope,
}

impl Op {
    /// The op's kernel name prefix.
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::QkNormRope => "qk_norm_rope",
            Op::HeadRmsNorm => "head_rmsnorm",
            Op::Rope => "rope",
        }
    }
    /// Whether the op normalizes.
    fn norm(self) -> bool {
        self != Op::Rope
    }
    /// Whether the op rotates.
    fn rope(self) -> bool {
        self != Op::HeadRmsNorm
    }
}

/// A matrix argument for validation (`validate::Operand`).
pub(crate) use crate::validate::Operand as Mat;
use crate::validate::disjoint;

fn shape_err(arg: &'static str, expected: String, actual: String) -> Error {
    Error::Shape { arg, expected, actual }
}

/// Everything `plan` needs to know about the arguments, with device addresses resolved.
#[derive(Clone, Debug)]
pub(crate) struct PlanInput {
    pub op: Op,
    pub cfg: QkNormRopeSettings,
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
    Cache { addr: u64, len: usize, max_pos: usize },
    Computed { addr: u64, rotary_dim: usize, attention_factor: f64 },
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
        return Err(shape_err("settings.head_dim", "64, 128 or 256".into(), c.head_dim.to_string()));
    }
    for (arg, heads) in [("settings.num_q_heads", c.num_q_heads), ("settings.num_kv_heads", c.num_kv_heads)] {
        if heads == 0 || heads > 1 << 16 {
            return Err(shape_err(arg, "1..=65536".into(), heads.to_string()));
        }
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
    // `Shape` for a qkv past the end of the address space (an empty one too: K's columns start
    // `Hq·D` elements in)
    q.range()?;
    let Some(k_out) = q.addr.checked_add((hq * d * q.elem) as u64) else {
        return Err(shape_err(
            "qkv",
            "a matrix whose bytes fit in the 64-bit address space".into(),
            format!("{cols} columns at {:#x}", q.addr),
        ));
    };
    let mut params = QkNormRopeParams {
        qkv: q.addr,
        q_out: q.addr,
        k_out,
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
        // set once checked (the ops that rotate)
        rotary_dim: 0,
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
                arg: "q_weight",
                expected: "q and k weights for the norm",
                actual: format!("None ({op})"),
            });
        };
        for (arg, n) in [("q_weight", qn), ("k_weight", kn)] {
            if n != d {
                return Err(shape_err(arg, format!("{d} elements (head_dim)"), format!("{n} elements")));
            }
        }
        if !(c.eps.is_finite() && c.eps >= 0.0) {
            return Err(Error::InvalidValue {
                arg: "settings.eps",
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
                arg: "settings.rotary_dim",
                expected: "an even number in 2..=head_dim",
                actual: r.to_string(),
            });
        }
        params.rotary_dim = r as u32;
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
                    arg: "settings.mrope_section",
                    expected: "3 section sizes summing to rotary_dim / 2",
                    actual: format!("{sec:?} (rotary_dim / 2 = {})", r / 2),
                });
            }
            if Some(pn) != tokens.checked_mul(3) {
                return Err(shape_err(
                    "positions",
                    format!("[3, {tokens}] = {} (mRoPE: 3 rows of one per token)", 3 * tokens as u128),
                    pn.to_string(),
                ));
            }
            params.flags |= FLAG_MROPE;
            (params.mrope_end0, params.mrope_end1) = (sec[0] as u32, (sec[0] + sec[1]) as u32);
        } else if pn != tokens {
            return Err(shape_err("positions", format!("{tokens} (one per token)"), pn.to_string()));
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
                        "rotary.cos_sin",
                        format!("max_pos × rotary_dim = {max_pos} × {r} f32 (max_pos >= 1)"),
                        format!("{len} f32"),
                    ));
                }
                (params.cos_sin, params.max_pos) = (addr, max_pos as u64);
            }
            Some(RotaryIn::Computed { addr, rotary_dim, attention_factor }) => {
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
        (params.q_out, params.q_out_stride, params.k_out, params.k_out_stride) =
            (qo.addr, qo.stride as u64, ko.addr, ko.stride as u64);
    }
    if let Some(kv) = inp.kv {
        let rows = kv.k.rows;
        for m in std::iter::once(&kv.k).chain(kv.v.iter()) {
            if m.cols != hk * d || m.rows != rows || m.stride != kv.k.stride {
                return Err(shape_err(
                    m.name,
                    format!("[rows, Hk·D = {}] with the K cache's rows and stride", hk * d),
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
                    return Err(shape_err("kv_cache.slot_mapping", format!("{tokens} (one per token)"), n.to_string()));
                }
                params.slot_mapping = addr;
            }
            None if rows < tokens => {
                return Err(shape_err(
                    "kv_cache.k_cache",
                    format!("at least {tokens} rows (one per token, no slot mapping)"),
                    rows.to_string(),
                ));
            }
            None => {}
        }
        for (arg, s) in [("kv_cache.k_scale", kv.k_scale), ("kv_cache.v_scale", kv.v_scale)] {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::InvalidValue { arg, expected: "a finite value > 0", actual: s.to_string() });
            }
        }
        params.k_cache = kv.k.addr;
        params.v_cache = kv.v.map_or(0, |v| v.addr);
        (params.cache_stride, params.cache_rows) = (kv.k.stride as u64, rows as u64);
        (params.k_scale, params.v_scale) = (kv.k_scale, kv.v_scale);
        (params.k_recip, params.v_recip) = (reciprocal(kv.k_scale), reciprocal(kv.v_scale));
        if std::iter::once(&kv.k).chain(kv.v.iter()).all(|m| m.aligned(8)) {
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
    if (lo..=hi).contains(&scale) { 1.0 / scale } else { 0.0 }
}

/// Warps per CTA and dynamic shared memory of a launch: the token's head groups (`256 / D` heads
/// each) spread evenly over at most 8 warps.
pub(crate) fn block_shape(params: &QkNormRopeParams, head_dim: usize, op: Op) -> (u32, u32) {
    let heads = params.num_q_heads + params.num_kv_heads + if params.v_cache != 0 { params.num_kv_heads } else { 0 };
    let groups = heads.div_ceil(256 / head_dim as u32);
    let max_warps = QK_NORM_ROPE_MAX_THREADS / 32;
    let warps = groups.div_ceil(groups.div_ceil(max_warps));
    (warps, qk_norm_rope_smem_bytes(head_dim as u32, warps, op.rope(), neox_rows(params, op)))
}

/// Whether a launch needs the NeoX partners through shared memory (the `_rows` kernels).
pub(super) fn neox_rows(params: &QkNormRopeParams, op: Op) -> bool {
    op.rope() && params.flags & FLAG_GPTJ == 0 && !neox_by_shuffle(params.rotary_dim)
}

/// Kernel name for an op, dtype and head size.
pub(super) fn kernel_name<T: Half>(op: Op, d: usize, rows: bool) -> String {
    format!("{}{}_{}_d{d}", op.name(), if rows { "_rows" } else { "" }, T::SUFFIX)
}

#[cfg(test)]
#[path = "../tests/qk_norm_rope_plan.rs"]
mod tests;
