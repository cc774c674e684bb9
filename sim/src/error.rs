//! The simulator's errors: a kind (which the C API maps to a `CUresult`) and a message that says
//! everything known (kernel, CTA, thread, PTX line, address).

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad argument to an API call (`CUDA_ERROR_INVALID_VALUE`).
    InvalidValue,
    /// Device memory exhausted (`CUDA_ERROR_OUT_OF_MEMORY`).
    OutOfMemory,
    /// PTX that does not parse or uses a form the simulator does not know (`CUDA_ERROR_INVALID_PTX`).
    InvalidPtx,
    /// No such kernel in the module (`CUDA_ERROR_NOT_FOUND`).
    NotFound,
    /// A launch configuration the device cannot run: too many threads, too much shared memory,
    /// registers (`CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES` / `CUDA_ERROR_INVALID_VALUE`).
    OutOfResources,
    /// An access outside any live allocation, past the shared memory, or after free
    /// (`CUDA_ERROR_ILLEGAL_ADDRESS`; sticky).
    IllegalAddress,
    /// A misaligned access (`CUDA_ERROR_MISALIGNED_ADDRESS`; sticky).
    MisalignedAddress,
    /// `trap` or a failed check without a driver equivalent: a read of bytes never written, a race
    /// between CTAs, barrier misuse, a deadlock (`CUDA_ERROR_LAUNCH_FAILED`; sticky).
    LaunchFailed,
    /// A driver entry point the simulator does not implement (`CUDA_ERROR_NOT_SUPPORTED`).
    NotSupported,
}

impl ErrorKind {
    /// Whether the error, like the driver's, leaves the context unusable.
    pub fn is_sticky(self) -> bool {
        matches!(self, ErrorKind::IllegalAddress | ErrorKind::MisalignedAddress | ErrorKind::LaunchFailed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError {
    pub kind: ErrorKind,
    pub message: String,
}

impl SimError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> SimError {
        SimError { kind, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> SimError {
        SimError::new(ErrorKind::InvalidValue, message)
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lowp-sim: {}", self.message)
    }
}

impl std::error::Error for SimError {}

pub type Result<T> = std::result::Result<T, SimError>;
