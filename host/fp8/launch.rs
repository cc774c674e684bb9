//! Launching the FP8 quantizer and dequantizer kernels once a call is validated.

use std::sync::Arc;

use cudarc::driver::{CudaStream, LaunchConfig, PushKernelArg};

use crate::abi::{FP8_BLOCK_SMEM_BYTES, FP8_GROUP, FP8_THREADS, Fp8QuantParams};
use crate::context::Lowp;
use crate::error::{CudaResultExt, Result};

crate::abi::device_repr!(Fp8QuantParams);

/// 1×128 groups one CTA of `fp8_quantize_group_*` takes per turn: 4 per warp.
const GROUPS_PER_CTA: u64 = 4 * (FP8_THREADS / 32) as u64;

/// What every kernel of the family needs.
const NEEDS: &str = "compute capability 8.0";

/// Launches `kernel` over `blocks` CTAs of `FP8_THREADS` threads (none when `blocks` is 0, after
/// resolving the kernel so that an unsupported device is reported whatever the shape).
fn launch(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    kernel: &str,
    p: &Fp8QuantParams,
    blocks: u64,
    smem: u32,
) -> Result<()> {
    let f = lowp.function(op, kernel, NEEDS)?;
    if blocks == 0 {
        return Ok(());
    }
    let cfg = LaunchConfig {
        grid_dim: (blocks.min(i32::MAX as u64) as u32, 1, 1),
        block_dim: (FP8_THREADS, 1, 1),
        shared_mem_bytes: smem,
    };
    let mut b = stream.launch_builder(&f);
    b.arg(p);
    // SAFETY: `plan` validated shapes, strides, the scale layout's extent and overlaps against the
    // live buffers whose addresses `p` holds (guards alive in the caller until after this); the
    // kernels grid-stride over exactly rows × cols and the scales named.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}

/// `fp8_quantize_group_<suffix>`: grid-stride over the 1×128 groups.
pub(crate) fn quantize_groups(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    suffix: &str,
    p: &Fp8QuantParams,
) -> Result<()> {
    let groups = p.rows * (p.cols / FP8_GROUP as u64);
    let kernel = format!("fp8_quantize_group_{suffix}");
    lowp.function(op, &kernel, NEEDS)?; // `Unsupported` names this operation
    let blocks =
        if groups == 0 { 0 } else { lowp.grid_stride_grid(&kernel, FP8_THREADS, 0, groups, GROUPS_PER_CTA)? as u64 };
    launch(lowp, stream, op, &kernel, p, blocks, 0)
}

/// `fp8_quantize_block_<suffix>`: one CTA per 128×128 tile.
pub(crate) fn quantize_blocks(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    suffix: &str,
    p: &Fp8QuantParams,
) -> Result<()> {
    let tiles = p.rows.div_ceil(FP8_GROUP as u64) * (p.cols / FP8_GROUP as u64);
    launch(lowp, stream, op, &format!("fp8_quantize_block_{suffix}"), p, tiles, FP8_BLOCK_SMEM_BYTES)
}

/// `fp8_dequantize_bf16`: one thread per 8 elements.
pub(crate) fn dequantize(lowp: &Lowp, stream: &Arc<CudaStream>, op: &'static str, p: &Fp8QuantParams) -> Result<()> {
    let chunks = p.rows * (p.cols / 8);
    launch(lowp, stream, op, "fp8_dequantize_bf16", p, chunks.div_ceil(FP8_THREADS as u64), 0)
}
