//! A device-side u32 of error bits that kernels set (never clear) when device data is out of range
//! (a position past a cache, a group offset past the token count, ...). The kernel clamps and goes
//! on; the bits say it happened.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use crate::error::{CudaResultExt, Result};

pub struct ErrorFlag {
    pub(crate) buf: CudaSlice<u32>,
}

impl ErrorFlag {
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
}
