//! Argument checks shared by the host families: a matrix operand's shape, stride, address and
//! element size, its alignment and the bytes it spans.

use crate::error::{Error, Result};

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
    /// Base and row stride are both multiples of `bytes`.
    pub fn aligned(&self, bytes: u64) -> bool {
        self.addr % bytes == 0 && (self.stride * self.elem) as u64 % bytes == 0
    }

    /// The byte range from the first to one past the last element.
    pub fn range(&self) -> (u64, u64) {
        let span = if self.rows == 0 { 0 } else { (self.rows - 1) * self.stride + self.cols };
        (self.addr, self.addr + (span * self.elem) as u64)
    }
}

/// Whether two byte ranges share a byte.
pub(crate) fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// `Aliasing` naming both when the operands' byte ranges overlap.
pub(crate) fn disjoint(a: &Operand, b: &Operand) -> Result<()> {
    if overlap(a.range(), b.range()) {
        return Err(Error::Aliasing { arg: a.name, other: b.name });
    }
    Ok(())
}
