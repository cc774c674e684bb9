//! Parameters of `microscaling` (NVFP4 / MXFP4 / MXFP8 quantization, scale swizzle).
