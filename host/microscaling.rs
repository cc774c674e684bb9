//! NVFP4 / MXFP4 / MXFP8 quantization with linear or 128×4-swizzled scale factors, grouped
//! (MoE) layouts, swizzle/unswizzle and dequantization (device side: `kernels-gpu/src/microscaling.rs`).

/// Kernel entry points of this family.
pub(crate) const KERNELS: &[&str] = &[];
