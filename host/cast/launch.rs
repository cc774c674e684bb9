//! Launch of a planned cast: a grid-stride kernel, one thread per output unit.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaStream, LaunchConfig, PushKernelArg};

use crate::abi::{CAST_THREADS, CastParams};
use crate::error::{CudaResultExt, Result};

/// Most CTAs of one cast launch: the kernels grid-stride over the rest.
const MAX_CTAS: usize = 65_535 * 4;

/// Launches the cast kernel `f` over `p.n` inputs, `per` inputs per output unit (a no-op for none).
pub(super) fn launch(stream: &Arc<CudaStream>, f: &CudaFunction, p: &CastParams, per: usize) -> Result<()> {
    if p.n == 0 {
        return Ok(());
    }
    let units = p.n as usize / per.max(1);
    let cfg = LaunchConfig {
        grid_dim: (units.div_ceil(CAST_THREADS as usize).clamp(1, MAX_CTAS) as u32, 1, 1),
        block_dim: (CAST_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = stream.launch_builder(f);
    b.arg(p);
    // SAFETY: `plan` checked that src holds n f32 and dst n / per units, that the two do not
    // overlap, and the caller checked both are on this handle's context; the kernel grid-strides
    // over exactly that many.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}
