//! Element types lowp moves between host and device.
//!
//! - `f32`, `half::bf16` and `half::f16` are used as they are ([`Float`]; the 16-bit two are
//!   [`Half`]).
//! - FP8 is the `float8` crate's [`F8E4M3`] and [`F8E5M2`], the types candle and cudarc use, so
//!   a framework's FP8 buffer is a lowp tensor as it is. Compare them by [`F8E4M3::to_bits`]
//!   where bit-exactness matters: their `PartialEq` is the float comparison (NaN ≠ NaN, -0 = +0).
//! - The formats the ecosystem has no shared type for are transparent byte newtypes here, their
//!   bits public: [`F4E2M1x2`] (two FP4 E2M1 values per byte, as PyTorch's `float4_e2m1fn_x2`)
//!   and [`Ue8m0`] (a power-of-two scale, as PyTorch's `float8_e8m0fnu`). Any crate's
//!   byte-sized FP4 or E8M0 type converts with `F4E2M1x2(bits)` / `Ue8m0(bits)`, or by
//!   `bytemuck::cast_slice` for whole host buffers.

use std::fmt;

use bytemuck::{Pod, Zeroable};
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
pub use float8::{F8E4M3, F8E5M2};

/// The conversions between f32 and the narrow formats: the same source as the device's software
/// path, public as `lowp::reference::convert`.
#[path = "../kernels-gpu/src/prim/soft.rs"]
#[allow(dead_code)]
pub(crate) mod soft;
use soft as cv;

/// The element types of lowp tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE binary16.
    F16,
    /// FP8 E4M3FN (OCP; no infinities, max 448).
    E4M3,
    /// FP8 E5M2 (max 57344).
    E5M2,
    /// Two FP4 E2M1 values per byte, element 2i in the low nibble.
    E2M1x2,
    /// UE8M0 power-of-two scale (OCP microscaling), 0xff = NaN.
    Ue8m0,
}

impl DType {
    /// Bytes of one storage unit.
    pub fn size_of(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::Bf16 | DType::F16 => 2,
            DType::E4M3 | DType::E5M2 | DType::E2M1x2 | DType::Ue8m0 => 1,
        }
    }

    /// Logical elements in one storage unit (2 for packed FP4).
    pub fn elems_per_unit(self) -> usize {
        if self == DType::E2M1x2 { 2 } else { 1 }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::Bf16 => "bf16",
            DType::F16 => "f16",
            DType::E4M3 => "e4m3",
            DType::E5M2 => "e5m2",
            DType::E2M1x2 => "e2m1x2",
            DType::Ue8m0 => "ue8m0",
        })
    }
}

/// A type that can be the element (storage unit) of a lowp tensor.
pub trait Element: DeviceRepr + ValidAsZeroBits + Pod + Default + fmt::Debug + Send + Sync + 'static {
    /// The type's [`DType`].
    const DTYPE: DType;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for half::bf16 {
    const DTYPE: DType = DType::Bf16;
}
impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
}

/// What only lowp sees of its element traits: the kernel-name suffix of each [`Float`].
pub(crate) mod sealed {
    /// Implemented by exactly the [`Float`](super::Float) types.
    pub trait Sealed {
        /// Suffix of the kernel entry points for this type (`fp8_quantize_group_bf16`, ...).
        const SUFFIX: &'static str;
    }
    impl Sealed for f32 {
        const SUFFIX: &'static str = "f32";
    }
    impl Sealed for half::bf16 {
        const SUFFIX: &'static str = "bf16";
    }
    impl Sealed for half::f16 {
        const SUFFIX: &'static str = "f16";
    }
}

/// A floating-point type lowp kernels read and write as high precision: `f32`, `half::bf16`,
/// `half::f16`. Every op that takes a high-precision input is generic over it (the norms and
/// RoPE over its 16-bit subset, [`Half`]). Sealed: lowp has kernels for exactly these types.
pub trait Float: Element + Copy + sealed::Sealed {
    /// The value as f64 (exact).
    fn to_f64(self) -> f64;
    /// Rounds to nearest even from f64 (a single rounding).
    fn from_f64(x: f64) -> Self;
}

impl Float for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

/// The 16-bit [`Float`]s, computed in f32 by the kernels: `half::bf16` and `half::f16`.
pub trait Half: Float {
    /// The raw bits.
    fn to_bits(self) -> u16;
    /// From raw bits.
    fn from_bits(bits: u16) -> Self;
    /// Mantissa bits (7 for bf16, 10 for f16), for ulp arithmetic.
    const MANTISSA_BITS: i32;
    /// The smallest normal exponent (-126 for bf16, -14 for f16).
    const MIN_EXP: i32;
}

macro_rules! half_float {
    ($t:ty, $mant:literal, $min_exp:literal) => {
        impl Float for $t {
            fn to_f64(self) -> f64 {
                <$t>::to_f64(self)
            }
            fn from_f64(x: f64) -> Self {
                <$t>::from_f64(x)
            }
        }
        impl Half for $t {
            const MANTISSA_BITS: i32 = $mant;
            const MIN_EXP: i32 = $min_exp;
            fn to_bits(self) -> u16 {
                <$t>::to_bits(self)
            }
            fn from_bits(bits: u16) -> Self {
                <$t>::from_bits(bits)
            }
        }
    };
}
half_float!(half::bf16, 7, -126);
half_float!(half::f16, 10, -14);

macro_rules! byte_format {
    ($(#[$doc:meta])* $name:ident, $dtype:expr, $to:expr, $from:expr) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
        pub struct $name(pub u8);

        // SAFETY: a transparent byte; any bit pattern is a valid value.
        unsafe impl DeviceRepr for $name {}
        // SAFETY: the all-zero byte is a valid value (+0, or scale 2^-127 for UE8M0).
        unsafe impl ValidAsZeroBits for $name {}

        impl Element for $name {
            const DTYPE: DType = $dtype;
        }

        impl $name {
            /// The value as f32 (exact).
            pub fn to_f32(self) -> f32 {
                $to(self.0)
            }
            /// Converts with the library's rounding (see `crate::reference::convert`).
            pub fn from_f32(x: f32) -> Self {
                Self($from(x))
            }
        }
    };
}

impl Element for F8E4M3 {
    const DTYPE: DType = DType::E4M3;
}
impl Element for F8E5M2 {
    const DTYPE: DType = DType::E5M2;
}

byte_format!(
    /// UE8M0 scale bits (2^(bits-127), 0xff NaN). `from_f32` rounds down to a power of two.
    Ue8m0, DType::Ue8m0, cv::ue8m0_to_f32, cv::f32_to_ue8m0_floor);

/// Two FP4 E2M1 values in one byte: element 2i in the low nibble, 2i+1 in the high nibble.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct F4E2M1x2(pub u8);

// SAFETY: a transparent byte; any bit pattern is valid.
unsafe impl DeviceRepr for F4E2M1x2 {}
// SAFETY: zero is two +0 values.
unsafe impl ValidAsZeroBits for F4E2M1x2 {}

impl Element for F4E2M1x2 {
    const DTYPE: DType = DType::E2M1x2;
}

impl F4E2M1x2 {
    /// Packs two values (rounded to nearest even, saturating at ±6): `lo` is the even element.
    pub fn from_f32_pair(lo: f32, hi: f32) -> Self {
        Self(cv::f32_to_e2m1_sat(lo) | (cv::f32_to_e2m1_sat(hi) << 4))
    }
    /// The two values, even element first.
    pub fn to_f32_pair(self) -> (f32, f32) {
        (cv::e2m1_to_f32(self.0 & 0xf), cv::e2m1_to_f32(self.0 >> 4))
    }
}
