//! Validation of the FP8 quantizers and dequantizers (pure: unit-tested without a GPU), and the
//! scale placement the GEMMs share: where scale `(row, group)` lives for a [`ScaleLayout`].

use super::GROUP;
use crate::abi::{FP8_UE8M0, FP8_VECTORIZED, Fp8QuantParams};
use crate::error::{Error, Result};
use crate::scale::{ScaleLayout, ScaleRounding};
pub(crate) use crate::validate::Operand;
use crate::validate::{fp8_ue8m0, overlap};

/// Which scale layouts an argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accepts {
    /// `RowMajor` (per-block weight scales).
    RowMajor,
    /// `RowMajor` or `MMajor` (per-token-group activation scales).
    RowOrMMajor,
}

impl Accepts {
    fn expected(self) -> &'static str {
        match self {
            Accepts::RowMajor => "ScaleLayout::RowMajor",
            Accepts::RowOrMMajor => "ScaleLayout::RowMajor or ScaleLayout::MMajor",
        }
    }
}

/// A scale tensor as a kernel reads it: address, buffer length (f32 elements), and where
/// `(row, group)` lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScaleArg {
    pub addr: u64,
    pub len: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    /// Scale rows and columns the operation touches.
    pub rows: usize,
    pub cols: usize,
}

impl ScaleArg {
    /// Elements from the first scale to one past the last, `None` when that overflows usize.
    fn checked_required(&self) -> Option<usize> {
        if self.rows == 0 || self.cols == 0 {
            return Some(0);
        }
        let last_row = (self.rows - 1).checked_mul(self.row_stride)?;
        last_row.checked_add((self.cols - 1).checked_mul(self.col_stride)?)?.checked_add(1)
    }

    /// Elements from the first scale to one past the last (saturating; [`place`] has checked
    /// that it fits).
    pub(crate) fn required(&self) -> usize {
        self.checked_required().unwrap_or(usize::MAX)
    }

    /// The byte range the scales span (saturating; [`place`] has checked that it fits).
    pub(crate) fn range(&self) -> (u64, u64) {
        (self.addr, self.addr.saturating_add((self.required() as u64).saturating_mul(4)))
    }
}

/// A [`Scales`](crate::Scales) argument as given: its layout, logical shape, address and buffer
/// length (f32 elements).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScaleInput {
    pub layout: ScaleLayout,
    pub shape: [usize; 2],
    pub addr: u64,
    pub len: usize,
}

/// Places the scales argument named `arg`: checked against the layouts it `accepts`
/// (`Error::Layout`), the shape the operation needs, `want` (`Error::Shape`, saying `want_text`),
/// and its buffer's length (`Error::BufferTooSmall`).
pub(crate) fn place(
    arg: &'static str,
    s: ScaleInput,
    want: [usize; 2],
    want_text: &str,
    accepts: Accepts,
) -> Result<ScaleArg> {
    let (row_stride, col_stride) = match (s.layout, accepts) {
        (ScaleLayout::RowMajor { ld }, _) => (ld, 1),
        (ScaleLayout::MMajor { ld }, Accepts::RowOrMMajor) => (1, ld),
        _ => return Err(Error::Layout { arg, expected: accepts.expected(), actual: s.layout }),
    };
    if s.shape != want {
        return Err(Error::Shape {
            arg,
            expected: format!("[{}, {}] ({want_text})", want[0], want[1]),
            actual: format!("[{}, {}]", s.shape[0], s.shape[1]),
        });
    }
    let a = ScaleArg { addr: s.addr, len: s.len, row_stride, col_stride, rows: want[0], cols: want[1] };
    let beyond = || Error::Shape {
        arg,
        expected: "scales whose bytes fit in the 64-bit address space".into(),
        actual: format!("[{}, {}] {:?} at {:#x}", want[0], want[1], s.layout, s.addr),
    };
    let required = a.checked_required().ok_or_else(beyond)?;
    if a.len < required {
        return Err(Error::BufferTooSmall { arg, required, actual: a.len });
    }
    if u64::try_from(required).ok().and_then(|n| n.checked_mul(4)).and_then(|b| a.addr.checked_add(b)).is_none() {
        return Err(beyond());
    }
    Ok(a)
}

/// The flag bit for a quantizer's `rounding` (`Exact` or `Ceil`; `Floor` is `InvalidValue`).
pub(crate) fn rounding_flag(rounding: ScaleRounding) -> Result<u32> {
    Ok(if fp8_ue8m0(rounding)? { FP8_UE8M0 } else { 0 })
}

/// Validates a dequantize call: [`plan`] with the errors named from the call's side (`codes` and
/// `scales` are the inputs, `out` is written).
pub(crate) fn plan_dequantize(
    out: Operand,
    codes: Operand,
    scales: ScaleInput,
    block_rows: usize,
) -> Result<Fp8QuantParams> {
    if codes.cols % GROUP != 0 {
        return Err(Error::Shape {
            arg: codes.name,
            expected: format!("a multiple of {GROUP} columns (K)"),
            actual: format!("{} columns", codes.cols),
        });
    }
    if out.rows != codes.rows || out.cols != codes.cols {
        return Err(Error::Shape {
            arg: out.name,
            expected: format!("[{}, {}] like {}", codes.rows, codes.cols, codes.name),
            actual: format!("[{}, {}]", out.rows, out.cols),
        });
    }
    // `plan` names the arguments from a quantizer's side (codes and scales written): turn an
    // overlap with `out` around, as `out` is what a dequantizer writes.
    plan(out, codes, scales, block_rows, ScaleRounding::Exact).map_err(|e| match e {
        Error::Aliasing { arg, other } if other == out.name => Error::Aliasing { arg: out.name, other: arg },
        e => e,
    })
}

/// Validates a quantize or dequantize call and fills the parameters (pure; unit-tested).
/// `hp` is the high-precision matrix, `codes` the E4M3 one, `block_rows` 1 (per-token groups:
/// scales `[M, K/128]`, row-major or M-major) or 128 (per block: `[⌈N/128⌉, K/128]` row-major).
pub(crate) fn plan(
    hp: Operand,
    codes: Operand,
    scales: ScaleInput,
    block_rows: usize,
    rounding: ScaleRounding,
) -> Result<Fp8QuantParams> {
    let flags = rounding_flag(rounding)?;
    if hp.cols % GROUP != 0 {
        return Err(Error::Shape {
            arg: hp.name,
            expected: format!("a multiple of {GROUP} columns (K)"),
            actual: format!("{} columns", hp.cols),
        });
    }
    if codes.rows != hp.rows || codes.cols != hp.cols {
        return Err(Error::Shape {
            arg: codes.name,
            expected: format!("[{}, {}] like {}", hp.rows, hp.cols, hp.name),
            actual: format!("[{}, {}]", codes.rows, codes.cols),
        });
    }
    let s = if block_rows == 1 {
        place("scales", scales, [hp.rows, hp.cols / GROUP], "M, K/128", Accepts::RowOrMMajor)?
    } else {
        place("scales", scales, [hp.rows.div_ceil(GROUP), hp.cols / GROUP], "⌈N/128⌉, K/128", Accepts::RowMajor)?
    };
    if hp.rows > 0 {
        let (hp_range, codes_range) = (hp.range()?, codes.range()?);
        if overlap(hp_range, codes_range) {
            return Err(Error::Aliasing { arg: codes.name, other: hp.name });
        }
        if overlap(s.range(), hp_range) {
            return Err(Error::Aliasing { arg: "scales", other: hp.name });
        }
        if overlap(s.range(), codes_range) {
            return Err(Error::Aliasing { arg: "scales", other: codes.name });
        }
    }
    let vectorized = hp.aligned(16) && codes.aligned(8);
    let flags = flags | if vectorized { FP8_VECTORIZED } else { 0 };
    Ok(Fp8QuantParams {
        x: hp.addr,
        codes: codes.addr,
        scales: s.addr,
        x_stride: hp.stride as u64,
        codes_stride: codes.stride as u64,
        scale_row_stride: s.row_stride as u64,
        scale_col_stride: s.col_stride as u64,
        rows: hp.rows as u64,
        cols: hp.cols as u64,
        block_rows: block_rows as u32,
        flags,
    })
}
