//! Element-wise casts from f32 to lowp's storage formats on the device (device side:
//! `kernels-gpu/src/cast.rs`), with the conversions of [`crate::reference::convert`] bit for bit:
//!
//! - [`cast`]: f32 → bf16, f16, FP8 E4M3 / E5M2 or packed FP4 E2M1 ([`CastTarget`]), rounded to
//!   nearest even; the FP8 and FP4 casts saturate to the largest finite value; NaN stays NaN
//!   where the format has one (FP8: `0x7f` whatever its sign; FP4 has none: ±6).
//! - [`cast_ue8m0`]: f32 → UE8M0, a power of two rounded down or up
//!   ([`ScaleRounding::Floor`] / [`ScaleRounding::Ceil`]).
//!
//! The vectors are flat device buffers (`CudaSlice`, `CudaView`, ...): a [`Matrix`](crate::Matrix)
//! is cast through [`Matrix::buffer`](crate::Matrix::buffer) and
//! [`Matrix::buffer_mut`](crate::Matrix::buffer_mut). See `docs/kernels/cast.md`.

mod launch;
mod plan;

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut};

use crate::context::Lowp;
use crate::dtype::{DType, Element, F4E2M1x2, F8E4M3, F8E5M2, Ue8m0};
use crate::error::Result;
use crate::scale::ScaleRounding;
use plan::{VecArg, plan, ue8m0_kernel};

/// Kernel entry points of this family (`kernels-gpu/src/cast.rs`).
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &[
    "cast_f32_to_bf16",
    "cast_f32_to_f16",
    "cast_f32_to_e4m3fn",
    "cast_f32_to_e5m2",
    "cast_f32_to_e2m1x2",
    "cast_f32_to_ue8m0_floor",
    "cast_f32_to_ue8m0_ceil",
];

mod sealed {
    /// The kernel of each [`CastTarget`](super::CastTarget).
    pub trait Sealed {
        /// The kernel entry point.
        const KERNEL: &'static str;
    }
    impl Sealed for half::bf16 {
        const KERNEL: &'static str = "cast_f32_to_bf16";
    }
    impl Sealed for half::f16 {
        const KERNEL: &'static str = "cast_f32_to_f16";
    }
    impl Sealed for crate::dtype::F8E4M3 {
        const KERNEL: &'static str = "cast_f32_to_e4m3fn";
    }
    impl Sealed for crate::dtype::F8E5M2 {
        const KERNEL: &'static str = "cast_f32_to_e5m2";
    }
    impl Sealed for crate::dtype::F4E2M1x2 {
        const KERNEL: &'static str = "cast_f32_to_e2m1x2";
    }
}

/// An element type [`cast`] converts f32 into: `half::bf16`, `half::f16`, [`F8E4M3`], [`F8E5M2`]
/// and [`F4E2M1x2`] (two values per byte). Sealed: these are the types lowp has cast kernels for
/// (UE8M0 takes a rounding: [`cast_ue8m0`]).
pub trait CastTarget: Element + sealed::Sealed {}

impl CastTarget for half::bf16 {}
impl CastTarget for half::f16 {}
impl CastTarget for F8E4M3 {}
impl CastTarget for F8E5M2 {}
impl CastTarget for F4E2M1x2 {}

/// Checks the handle, plans and launches `kernel` from `x` (f32) into `out` (`dtype` units).
fn run<X, O, D>(lowp: &Lowp, stream: &Arc<CudaStream>, op: &'static str, kernel: &str, x: &X, out: &mut O) -> Result<()>
where
    D: Element,
    X: DevicePtr<f32>,
    O: DevicePtrMut<D>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x)?;
    lowp.check_buffer("out", out)?;
    let f = lowp.function(op, kernel, "compute capability 8.0")?;
    let (x_len, out_len) = (x.len(), out.len());
    let (xa, _gx) = x.device_ptr(stream);
    let (oa, _go) = out.device_ptr_mut(stream);
    let p = plan(
        VecArg { name: "x", len: x_len, addr: xa, dtype: DType::F32 },
        VecArg { name: "out", len: out_len, addr: oa, dtype: D::DTYPE },
    )?;
    launch::launch(stream, &f, &p, D::DTYPE.elems_per_unit())
}

/// Casts `x` (f32) into `out` on `stream` (asynchronous; nothing is synchronized): element `i`
/// of `x` becomes element `i` of `out`, rounded to nearest even.
///
/// - bf16, f16: NaN stays NaN (with its sign), out-of-range values become ±∞.
/// - [`F8E4M3`] (E4M3FN) and [`F8E5M2`]: saturating at ±448 and ±57344 (±∞ too); every NaN
///   becomes `0x7f`, as the hardware's `cvt.rn.satfinite` gives.
/// - [`F4E2M1x2`]: saturating at ±6, NaN gives ±6 (E2M1 has no NaN); element `2i` in the low
///   nibble of byte `i`, `2i + 1` in the high one.
///
/// `out` holds as many elements as `x` (for packed FP4: `x.len() / 2` bytes, `x.len()` even),
/// and must not overlap it. Empty vectors are a no-op.
///
/// Errors: `Shape` (`x` odd for FP4, `out` the wrong length), `Aliasing` (`out` with `x`),
/// `DeviceMismatch` (`stream`, `x`, `out`).
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::{F8E4M3, Lowp};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let x = stream.clone_htod(&[1.0f32, 0.3, -1000.0, 17.0])?;
/// let mut out = stream.alloc_zeros::<F8E4M3>(4)?;
/// lowp::cast::cast(&lowp, &stream, &x, &mut out)?;
/// let codes = stream.clone_dtoh(&out)?;
/// stream.synchronize()?;
/// let values: Vec<f32> = codes.iter().map(|c| c.to_f32()).collect();
/// assert_eq!(values, [1.0, 0.3125, -448.0, 16.0]); // nearest even, saturating
/// # Ok(()) }
/// ```
pub fn cast<D, X, O>(lowp: &Lowp, stream: &Arc<CudaStream>, x: &X, out: &mut O) -> Result<()>
where
    D: CastTarget,
    X: DevicePtr<f32>,
    O: DevicePtrMut<D>,
{
    run::<X, O, D>(lowp, stream, "cast", D::KERNEL, x, out)
}

/// Casts `x` (f32) into UE8M0 powers of two on `stream` (asynchronous): `2^⌊log2 x⌋` with
/// [`ScaleRounding::Floor`], `2^⌈log2 x⌉` with [`ScaleRounding::Ceil`], clamped to
/// `[2^-127, 2^127]`. NaN, ±∞, zero and negative inputs give `0xff` (NaN).
///
/// `out` holds as many elements as `x` and must not overlap it.
///
/// Errors: `InvalidValue` (`rounding` = [`ScaleRounding::Exact`]: UE8M0 holds powers of two
/// only), `Shape` (`out` the wrong length), `Aliasing` (`out` with `x`), `DeviceMismatch`
/// (`stream`, `x`, `out`).
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::{Lowp, ScaleRounding, Ue8m0};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let x = stream.clone_htod(&[1.0f32, 3.0, 0.3])?;
/// let mut out = stream.alloc_zeros::<Ue8m0>(3)?;
/// lowp::cast::cast_ue8m0(&lowp, &stream, &x, ScaleRounding::Ceil, &mut out)?;
/// let scales = stream.clone_dtoh(&out)?;
/// stream.synchronize()?;
/// let values: Vec<f32> = scales.iter().map(|s| s.to_f32()).collect();
/// assert_eq!(values, [1.0, 4.0, 0.5]);
/// # Ok(()) }
/// ```
pub fn cast_ue8m0<X, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &X,
    rounding: ScaleRounding,
    out: &mut O,
) -> Result<()>
where
    X: DevicePtr<f32>,
    O: DevicePtrMut<Ue8m0>,
{
    let kernel = ue8m0_kernel(rounding)?;
    run::<X, O, Ue8m0>(lowp, stream, "cast_ue8m0", kernel, x, out)
}

#[cfg(test)]
#[path = "../tests/cast_plan.rs"]
mod tests;
