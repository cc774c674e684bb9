//! A device-side u32 of error bits that kernels set (never clear) when device data is out of range
//! (a position past a cache, a group offset past the token count, ...). The kernel clamps and goes
//! on; the bits say it happened.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtrMut, SyncOnDrop};

use crate::context::Lowp;
use crate::error::{CudaResultExt, Result};

/// One u32 of error bits on the device, set by the kernels that take it (each op documents its
/// bits, e.g. `qk_norm_rope::ERR_POSITION_OUT_OF_RANGE`).
pub struct ErrorFlag {
    pub(crate) buf: CudaSlice<u32>,
}

impl ErrorFlag {
    /// A cleared flag, allocated on `stream`.
    pub fn new(stream: &Arc<CudaStream>) -> Result<Self> {
        Ok(ErrorFlag { buf: stream.alloc_zeros::<u32>(1).op("cuMemAllocAsync")? })
    }
    /// Reads the bits (waits for `stream`).
    pub fn read(&self, stream: &Arc<CudaStream>) -> Result<u32> {
        let v = stream.clone_dtoh(&self.buf).op("cuMemcpyDtoH")?;
        stream.synchronize().op("cuStreamSynchronize")?;
        Ok(v.first().copied().unwrap_or(0))
    }
    /// Clears the bits (asynchronously on `stream`).
    pub fn clear(&mut self, stream: &Arc<CudaStream>) -> Result<()> {
        stream.memset_zeros(&mut self.buf).op("cuMemsetD8Async")
    }

    /// The flag's device address for a kernel launched on `stream` (0 without a flag), and the
    /// guard to keep until the launch is enqueued.
    pub(crate) fn device_addr<'a>(
        flag: Option<&'a mut ErrorFlag>,
        lowp: &Lowp,
        stream: &'a CudaStream,
    ) -> Result<(u64, Option<SyncOnDrop<'a>>)> {
        match flag {
            Some(f) => {
                lowp.check_buffer("error_flag", &f.buf)?;
                let (a, g) = f.buf.device_ptr_mut(stream);
                Ok((a, Some(g)))
            }
            None => Ok((0, None)),
        }
    }
}
