//! CPU reference implementations, in float64 where they compute, used by the tests to check the
//! kernels on fresh random inputs.

pub mod convert;
pub mod fp8;
pub mod gemm;
pub mod microscaling;
pub mod qk_norm_rope;
pub mod rmsnorm;

/// Spacing of the 16-bit format `T` at magnitude `|v|` (one unit in the last place), with the
/// subnormal floor: outputs are checked to lie within one of these of the float64 reference.
pub fn ulp<T: crate::Half>(v: f64) -> f64 {
    let a = v.abs();
    let e = if a > 0.0 { a.log2().floor() as i32 } else { T::MIN_EXP };
    let e = e.max(T::MIN_EXP);
    2f64.powi(e - T::MANTISSA_BITS)
}
