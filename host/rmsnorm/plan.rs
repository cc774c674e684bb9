//! Argument checks and kernel choice of the RMSNorm ops: pure functions of shapes, strides and
//! addresses, unit-tested without a GPU (`host/tests/rmsnorm_plan.rs`).

use crate::abi::{RMSNORM_MAX_HIDDEN, RMSNORM_V4_MAX_HIDDEN, RMSNORM_WARP_MAX_HIDDEN, RmsNormParams};
use crate::error::{Error, Result};
use crate::validate::disjoint;

/// A matrix argument for validation (`validate::Operand`, 2-byte elements).
pub(crate) use crate::validate::Operand as MatArg;

/// Which kernel runs a validated call (`plan`'s parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// A warp per row, 8 rows per CTA (vector path, hidden ≤ 2048).
    Warp,
    /// A CTA per row, at most 4 vectors per thread, the weight held (vector path, hidden ≤ 8192).
    V4,
    /// A CTA per row, at most 8 vectors per thread (vector path), or the scalar path.
    General,
}

impl Variant {
    pub(crate) fn of(p: &RmsNormParams) -> Variant {
        match p.hidden {
            _ if p.vectorized == 0 => Variant::General,
            h if h <= RMSNORM_WARP_MAX_HIDDEN => Variant::Warp,
            h if h <= RMSNORM_V4_MAX_HIDDEN => Variant::V4,
            _ => Variant::General,
        }
    }

    /// The entry point: `{op}{infix}_{dtype}`.
    pub(crate) fn kernel(self, op: &str, suffix: &str) -> String {
        let infix = match self {
            Variant::Warp => "_warp",
            Variant::V4 => "_v4",
            Variant::General => "",
        };
        format!("{op}{infix}_{suffix}")
    }
}

/// Checks every argument and fills the kernel parameters: `x` and `weight` are read, `residual`
/// (for `add_rmsnorm`) is read and written, `out` is written.
pub(crate) fn plan(
    x: MatArg,
    weight_len: usize,
    weight_addr: u64,
    eps: f32,
    residual: Option<MatArg>,
    out: MatArg,
) -> Result<RmsNormParams> {
    const ELEM: usize = 2;
    let hidden = x.cols;
    if hidden == 0 || hidden > RMSNORM_MAX_HIDDEN as usize {
        return Err(Error::Shape {
            arg: "x",
            expected: format!("hidden size (columns) in 1..={RMSNORM_MAX_HIDDEN}"),
            actual: hidden.to_string(),
        });
    }
    if x.rows > u32::MAX as usize {
        return Err(Error::Shape {
            arg: "x",
            expected: format!("at most {} rows", u32::MAX),
            actual: x.rows.to_string(),
        });
    }
    for m in residual.iter().chain(std::iter::once(&out)) {
        if m.rows != x.rows || m.cols != x.cols {
            return Err(Error::Shape {
                arg: m.name,
                expected: format!("[{}, {}] like x", x.rows, x.cols),
                actual: format!("[{}, {}]", m.rows, m.cols),
            });
        }
    }
    if weight_len != hidden {
        return Err(Error::Shape {
            arg: "weight",
            expected: format!("{hidden} elements (the hidden size)"),
            actual: format!("{weight_len} elements"),
        });
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::InvalidValue { arg: "eps", expected: "a finite value >= 0", actual: eps.to_string() });
    }
    if x.rows > 0 {
        // x and weight are read through the non-coherent path: nothing the kernel writes may
        // overlap them, and the two outputs may not overlap each other.
        let weight =
            MatArg { name: "weight", rows: 1, cols: weight_len, stride: weight_len, addr: weight_addr, elem: ELEM };
        for written in residual.iter().chain(std::iter::once(&out)) {
            disjoint(written, &x)?;
            disjoint(written, &weight)?;
        }
        if let Some(r) = &residual {
            disjoint(&out, r)?;
        }
    }
    let aligned = |m: &MatArg| m.aligned(16);
    let vectorized = hidden % 8 == 0
        && weight_addr % 16 == 0
        && aligned(&x)
        && aligned(&out)
        && residual.as_ref().is_none_or(aligned);
    Ok(RmsNormParams {
        x: x.addr,
        residual: residual.map_or(0, |r| r.addr),
        weight: weight_addr,
        out: out.addr,
        x_stride: x.stride as u64,
        residual_stride: residual.map_or(0, |r| r.stride as u64),
        out_stride: out.stride as u64,
        rows: x.rows as u32,
        hidden: hidden as u32,
        eps,
        vectorized: vectorized as u32,
    })
}
