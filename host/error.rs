//! lowp's one error type. Every shape, layout, alignment, aliasing and device problem is its own variant
//! naming the argument, what was expected and what was given.

use std::fmt;

/// Result alias for lowp.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a lowp call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The CUDA driver library (libcuda.so / nvcuda.dll) could not be loaded.
    NoDriver,
    /// The driver loaded, but there is no device with this ordinal.
    NoDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// Devices the driver reports.
        count: usize,
    },
    /// A CUDA driver call failed.
    Cuda {
        /// The driver call (or the lowp step) that failed.
        op: &'static str,
        /// cudarc's error.
        source: cudarc::driver::DriverError,
    },
    /// The device cannot run this operation.
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The device's name.
        device: String,
        /// The device's compute capability.
        compute_capability: (i32, i32),
        /// What the operation needs.
        needs: &'static str,
    },
    /// A dimension or count is wrong.
    Shape {
        /// The argument, as the op's signature names it.
        arg: &'static str,
        /// What the op needs.
        expected: String,
        /// What it was given.
        actual: String,
    },
    /// A device address (or a stride in bytes) is not aligned as the kernel needs.
    Alignment {
        /// The argument.
        arg: &'static str,
        /// Bytes of alignment needed.
        required: usize,
        /// The address (or stride in bytes) given.
        actual: u64,
    },
    /// A buffer is too small for the shape and stride it is described with.
    BufferTooSmall {
        /// The argument.
        arg: &'static str,
        /// Elements needed.
        required: usize,
        /// Elements the buffer holds.
        actual: usize,
    },
    /// A tensor or stream belongs to another device or context than the lowp handle.
    DeviceMismatch {
        /// The argument.
        arg: &'static str,
        /// The handle's device ordinal.
        expected: usize,
        /// The argument's device ordinal (the same as `expected` when only the context differs).
        actual: usize,
    },
    /// A scale tensor is in a layout the operation does not read or write.
    Layout {
        /// The argument.
        arg: &'static str,
        /// The layouts the op takes.
        expected: &'static str,
        /// The layout given.
        actual: crate::scale::ScaleLayout,
    },
    /// A scalar argument is out of range (eps not finite, a rounding the op does not take, ...).
    InvalidValue {
        /// The argument.
        arg: &'static str,
        /// What the op takes.
        expected: &'static str,
        /// What it was given.
        actual: String,
    },
    /// Two arguments are the same memory where the kernel needs them distinct.
    Aliasing {
        /// The argument written.
        arg: &'static str,
        /// The argument it overlaps.
        other: &'static str,
    },
    /// The stream is capturing a CUDA graph and the operation would have to do what capture does
    /// not allow (loading a module, with a driver older than CUDA 12.3).
    GraphCapture {
        /// The operation.
        op: &'static str,
        /// Why it cannot be captured.
        why: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDriver => {
                write!(f, "no CUDA driver: libcuda could not be loaded (is an NVIDIA driver installed?)")
            }
            Error::NoDevice { ordinal, count } => {
                write!(f, "no CUDA device {ordinal}: the driver reports {count} device(s)")
            }
            Error::Cuda { op, source } => write!(f, "CUDA error in {op}: {source:?}"),
            Error::Unsupported { op, device, compute_capability: (ma, mi), needs } => {
                write!(f, "{op} is not supported on {device} (compute capability {ma}.{mi}): it needs {needs}")
            }
            Error::Shape { arg, expected, actual } => write!(f, "`{arg}`: expected {expected}, got {actual}"),
            Error::Alignment { arg, required, actual } => {
                write!(f, "`{arg}`: must be aligned to {required} bytes, got {actual:#x}")
            }
            Error::BufferTooSmall { arg, required, actual } => {
                write!(f, "`{arg}`: buffer holds {actual} elements, the shape and stride need {required}")
            }
            Error::DeviceMismatch { arg, expected, actual } if expected == actual => {
                write!(f, "`{arg}`: belongs to another CUDA context on device {actual} than the lowp handle's")
            }
            Error::DeviceMismatch { arg, expected, actual } => {
                write!(f, "`{arg}`: lives on device {actual}, the lowp handle is on device {expected}")
            }
            Error::InvalidValue { arg, expected, actual } => write!(f, "`{arg}`: expected {expected}, got {actual}"),
            Error::Layout { arg, expected, actual } => {
                write!(f, "`{arg}`: expected {expected} scales, got ScaleLayout::{actual:?}")
            }
            Error::Aliasing { arg, other } => write!(f, "`{arg}` and `{other}` must not be the same memory"),
            Error::GraphCapture { op, why } => write!(f, "{op} cannot be captured in a CUDA graph here: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Cuda { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A driver error from a cudarc call made outside lowp (`?` on `stream.clone_htod(..)` and the
/// like in a function returning [`lowp::Result`](Result)).
impl From<cudarc::driver::DriverError> for Error {
    fn from(source: cudarc::driver::DriverError) -> Self {
        Error::Cuda { op: "CUDA driver call", source }
    }
}

/// Attaches the failing operation to a driver error.
pub(crate) trait CudaResultExt<T> {
    fn op(self, op: &'static str) -> Result<T>;
}

impl<T> CudaResultExt<T> for std::result::Result<T, cudarc::driver::DriverError> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|source| Error::Cuda { op, source })
    }
}
