//! Launch of a planned RMSNorm call: the kernel [`Variant::of`] picks, its grid and shared memory.

use std::sync::Arc;

use cudarc::driver::{CudaStream, LaunchConfig, PushKernelArg};

use super::plan::Variant;
use crate::abi::{RMSNORM_ROWS_PER_WARP_CTA, RMSNORM_SMEM_BYTES, RMSNORM_THREADS, RmsNormParams};
use crate::context::Lowp;
use crate::error::{CudaResultExt, Result};

/// Launches `op` (`rmsnorm` or `add_rmsnorm`) for dtype `suffix` with the kernel `Variant::of`
/// picks: the general kernel one CTA per row; the persistent ones as many CTAs as fit at once
/// (`Lowp::grid_stride_grid`), fewer when the rows need fewer.
pub(super) fn launch(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    suffix: &str,
    p: &RmsNormParams,
) -> Result<()> {
    let variant = Variant::of(p);
    let kernel = variant.kernel(op, suffix);
    let f = lowp.function(op, &kernel, "compute capability 8.0")?;
    if p.rows == 0 {
        return Ok(());
    }
    let rows = p.rows as u64;
    let grid = match variant {
        Variant::Warp => lowp.grid_stride_grid(&kernel, RMSNORM_THREADS, 0, rows, RMSNORM_ROWS_PER_WARP_CTA as u64)?,
        Variant::V4 => lowp.grid_stride_grid(&kernel, RMSNORM_THREADS, RMSNORM_SMEM_BYTES, rows, 1)?,
        Variant::General => p.rows.min(i32::MAX as u32),
    };
    let cfg = LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (RMSNORM_THREADS, 1, 1),
        shared_mem_bytes: if variant == Variant::Warp { 0 } else { RMSNORM_SMEM_BYTES },
    };
    let mut b = stream.launch_builder(&f);
    b.arg(p);
    // SAFETY: `p` was built by `plan` from live buffers whose spans cover rows × hidden with the
    // given strides, on this handle's context; the kernel reads/writes only inside them, with the
    // block size and shared memory given here (the kernel's launch contract), and `Variant::of`
    // only picks a vector-only kernel for a vectorized call within its hidden size.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}
