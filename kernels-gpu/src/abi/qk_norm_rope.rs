//! Parameters of `qk_norm_rope` (fused per-head RMSNorm + rotary embedding).
