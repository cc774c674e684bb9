//! Argument checks shared by the host families: a matrix operand's shape, stride, address and
//! element size, its alignment and the bytes it spans; the [`ScaleRounding`] variants each family
//! takes (the ops and `reference` refuse the others with one wording).

use crate::error::{Error, Result};
use crate::scale::ScaleRounding;

/// A row-major matrix argument: `rows × cols` elements of `elem` bytes, rows `stride` elements
/// apart, starting at device address `addr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    pub name: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
    pub addr: u64,
    pub elem: usize,
}

impl Operand {
    /// The row stride in bytes, `None` when that does not fit in 64 bits.
    pub fn stride_bytes(&self) -> Option<u64> {
        u64::try_from(self.stride).ok()?.checked_mul(self.elem as u64)
    }

    /// Base and row stride are both multiples of `bytes` (false for a stride of more bytes than
    /// 64 bits count).
    pub fn aligned(&self, bytes: u64) -> bool {
        self.addr % bytes == 0 && self.stride_bytes().is_some_and(|s| s % bytes == 0)
    }

    /// The byte range from the first to one past the last element (empty without rows or
    /// columns); `Shape` naming the operand when it does not fit in the 64-bit address space.
    pub fn range(&self) -> Result<(u64, u64)> {
        let end = crate::matrix::span(self.rows, self.cols, self.stride)
            .and_then(|span| u64::try_from(span).ok()?.checked_mul(self.elem as u64))
            .and_then(|bytes| self.addr.checked_add(bytes));
        let Some(end) = end else {
            return Err(Error::Shape {
                arg: self.name,
                expected: "a matrix whose bytes fit in the 64-bit address space".into(),
                actual: format!(
                    "[{}, {}] with row stride {} at {:#x} ({} bytes per element)",
                    self.rows, self.cols, self.stride, self.addr, self.elem
                ),
            });
        };
        Ok((self.addr, end))
    }
}

/// Whether two byte ranges share a byte.
pub(crate) fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// `Aliasing` naming both when the operands' byte ranges overlap.
pub(crate) fn disjoint(a: &Operand, b: &Operand) -> Result<()> {
    if overlap(a.range()?, b.range()?) {
        return Err(Error::Aliasing { arg: a.name, other: b.name });
    }
    Ok(())
}

/// `InvalidValue { arg: "rounding" }` for a variant an op does not take: `expected` names the
/// variants it takes by path (`"ScaleRounding::Floor or ScaleRounding::Ceil (why)"`), `actual` is
/// the given one's path (`"ScaleRounding::Exact"`).
fn refused(rounding: ScaleRounding, expected: &'static str) -> Error {
    Error::InvalidValue { arg: "rounding", expected, actual: format!("ScaleRounding::{rounding:?}") }
}

/// The FP8 quantizers' (and `reference::fp8`'s) rounding: `Exact` (the f32 scale, `false`) or
/// `Ceil` (the UE8M0 recipe, `true`).
pub(crate) fn fp8_ue8m0(rounding: ScaleRounding) -> Result<bool> {
    match rounding {
        ScaleRounding::Exact => Ok(false),
        ScaleRounding::Ceil => Ok(true),
        ScaleRounding::Floor => Err(refused(
            rounding,
            "ScaleRounding::Exact or ScaleRounding::Ceil (a scale rounded down would saturate the block's largest \
             value)",
        )),
    }
}

/// The MX quantizers' (and `reference::microscaling`'s) rounding: `Floor` (the OCP rule, `false`)
/// or `Ceil` (round up, `true`).
pub(crate) fn mx_round_up(rounding: ScaleRounding) -> Result<bool> {
    match rounding {
        ScaleRounding::Floor => Ok(false),
        ScaleRounding::Ceil => Ok(true),
        ScaleRounding::Exact => {
            Err(refused(rounding, "ScaleRounding::Floor or ScaleRounding::Ceil (MX scales are powers of two)"))
        }
    }
}

/// `cast::cast_ue8m0`'s rounding: `Floor` (`false`) or `Ceil` (`true`).
pub(crate) fn ue8m0_round_up(rounding: ScaleRounding) -> Result<bool> {
    match rounding {
        ScaleRounding::Floor => Ok(false),
        ScaleRounding::Ceil => Ok(true),
        ScaleRounding::Exact => {
            Err(refused(rounding, "ScaleRounding::Floor or ScaleRounding::Ceil (UE8M0 holds powers of two only)"))
        }
    }
}
