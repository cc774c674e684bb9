//! Element types lowp moves between host and device.
//!
//! f32, `half::bf16` and `half::f16` are used as they are; the 8- and 4-bit formats are
//! transparent byte newtypes (their bits, not their values), converted with `crate::reference`.

use std::fmt;

use bytemuck::{Pod, Zeroable};
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};

use crate::reference::convert as cv;

/// The element types of lowp tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    Bf16,
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
            DType::E4M3 => "float8_e4m3fn",
            DType::E5M2 => "float8_e5m2",
            DType::E2M1x2 => "float4_e2m1fn_x2",
            DType::Ue8m0 => "float8_e8m0fnu",
        })
    }
}

/// A type that can be the element (storage unit) of a lowp tensor.
pub trait Element: DeviceRepr + ValidAsZeroBits + Pod + Default + fmt::Debug + Send + Sync + 'static {
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

/// A 16-bit float computed in f32 by the kernels: `half::bf16` or `half::f16`.
pub trait HalfFloat: Element + Copy {
    /// Suffix of the kernel entry points for this type (`rmsnorm_bf16`, ...).
    const SUFFIX: &'static str;
    fn to_f64(self) -> f64;
    /// Rounds to nearest even from f64 (a single rounding).
    fn from_f64(x: f64) -> Self;
    fn to_bits(self) -> u16;
    fn from_bits(bits: u16) -> Self;
    /// Mantissa bits (7 for bf16, 10 for f16) and the smallest normal exponent, for ulp maths.
    const MANTISSA_BITS: i32;
    const MIN_EXP: i32;
}

impl HalfFloat for half::bf16 {
    const SUFFIX: &'static str = "bf16";
    const MANTISSA_BITS: i32 = 7;
    const MIN_EXP: i32 = -126;
    fn to_f64(self) -> f64 {
        half::bf16::to_f64(self)
    }
    fn from_f64(x: f64) -> Self {
        half::bf16::from_f64(x)
    }
    fn to_bits(self) -> u16 {
        half::bf16::to_bits(self)
    }
    fn from_bits(bits: u16) -> Self {
        half::bf16::from_bits(bits)
    }
}

impl HalfFloat for half::f16 {
    const SUFFIX: &'static str = "f16";
    const MANTISSA_BITS: i32 = 10;
    const MIN_EXP: i32 = -14;
    fn to_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
    fn from_f64(x: f64) -> Self {
        half::f16::from_f64(x)
    }
    fn to_bits(self) -> u16 {
        half::f16::to_bits(self)
    }
    fn from_bits(bits: u16) -> Self {
        half::f16::from_bits(bits)
    }
}

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

byte_format!(
    /// FP8 E4M3FN bits. `from_f32` rounds to nearest even and saturates at ±448; NaN gives 0x7f
    /// whatever its sign.
    F8E4M3, DType::E4M3, cv::e4m3fn_to_f32, cv::f32_to_e4m3fn_sat);
byte_format!(
    /// FP8 E5M2 bits. `from_f32` rounds to nearest even and saturates at ±57344; NaN gives 0x7f
    /// whatever its sign.
    F8E5M2, DType::E5M2, cv::e5m2_to_f32, cv::f32_to_e5m2_sat);
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
