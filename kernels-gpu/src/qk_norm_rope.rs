//! Fused per-head RMSNorm + rotary embedding on packed QKV. (Kernels land here.)
