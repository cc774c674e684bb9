//! Fused per-head RMSNorm + rotary embedding on the packed QKV buffer (device side:
//! `kernels-gpu/src/qk_norm_rope.rs`).

/// Kernel entry points of this family.
pub(crate) const KERNELS: &[&str] = &[];
