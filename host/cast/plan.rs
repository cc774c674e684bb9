//! Argument checks of the casts: pure functions of lengths, addresses and the rounding,
//! unit-tested without a GPU (`host/tests/cast_plan.rs`).

use crate::abi::CastParams;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::scale::ScaleRounding;
use crate::validate::{Operand, disjoint, ue8m0_round_up};

/// A flat device vector argument: `len` storage units of `dtype` at `addr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VecArg {
    pub name: &'static str,
    pub len: usize,
    pub addr: u64,
    pub dtype: DType,
}

impl VecArg {
    fn operand(&self) -> Operand {
        Operand {
            name: self.name,
            rows: 1,
            cols: self.len,
            stride: self.len,
            addr: self.addr,
            elem: self.dtype.size_of(),
        }
    }
}

/// Checks that `out` holds one storage unit per `x` element (per two for packed FP4) and that the
/// two do not overlap, and fills the kernel parameters (`n`: the f32 inputs).
pub(crate) fn plan(x: VecArg, out: VecArg) -> Result<CastParams> {
    let n = x.len;
    let per = out.dtype.elems_per_unit();
    if n % per != 0 {
        return Err(Error::Shape {
            arg: x.name,
            expected: format!("a multiple of {per} elements ({per} per {} unit of `{}`)", out.dtype, out.name),
            actual: format!("{n} elements"),
        });
    }
    if out.len != n / per {
        return Err(Error::Shape {
            arg: out.name,
            expected: format!("{} elements of {} for {n} inputs", n / per, out.dtype),
            actual: format!("{} elements", out.len),
        });
    }
    if n > 0 {
        disjoint(&out.operand(), &x.operand())?;
    }
    Ok(CastParams { src: x.addr, dst: out.addr, n: n as u64 })
}

/// The UE8M0 cast kernel for `rounding`: `Floor` and `Ceil` round to a power of two; `Exact` has
/// no UE8M0 meaning and is an `InvalidValue` naming `rounding`.
pub(crate) fn ue8m0_kernel(rounding: ScaleRounding) -> Result<&'static str> {
    Ok(if ue8m0_round_up(rounding)? { "cast_f32_to_ue8m0_ceil" } else { "cast_f32_to_ue8m0_floor" })
}
