//! Host conversions between f32 and the storage formats (RNE, saturating; FP8 NaN → 0x7f).
//!
//! The same source file as the device's software conversions (`kernels-gpu/src/prim/soft.rs`),
//! compiled for the host: the tests check it against PyTorch's and ml_dtypes' casts
//! (`tests/data/`), and the GPU tests check the device casts (`cvt` where the target has one)
//! against it, bit for bit.

pub use crate::dtype::soft::*;
