//! lowp's one error type. Every shape, dtype, alignment and device problem is its own variant
//! naming the argument, what was expected and what was given.

use std::fmt;

use crate::dtype::DType;

/// Result alias for lowp.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a lowp call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The CUDA driver library (libcuda.so / nvcuda.dll) could not be loaded.
    NoDriver,
    /// The driver loaded, but there is no device with this ordinal.
    NoDevice { ordinal: usize, count: usize },
    /// A CUDA driver call failed.
    Cuda { op: &'static str, source: cudarc::driver::DriverError },
    /// The device cannot run this operation.
    Unsupported { op: &'static str, device: String, compute_capability: (i32, i32), needs: &'static str },
    /// A dimension or count is wrong.
    Shape { arg: &'static str, expected: String, actual: String },
    /// A tensor has the wrong element type.
    DType { arg: &'static str, expected: DType, actual: DType },
    /// A device address (or a stride in bytes) is not aligned as the kernel needs.
    Alignment { arg: &'static str, required: usize, actual: u64 },
    /// A buffer is too small for the shape and stride it is described with.
    BufferTooSmall { arg: &'static str, required: usize, actual: usize },
    /// A tensor or stream belongs to another device or context than the lowp handle
    /// (`expected`: the handle's device ordinal, `actual`: the argument's).
    DeviceMismatch { arg: &'static str, expected: usize, actual: usize },
    /// A scale tensor is in a layout the operation does not read or write.
    Layout { arg: &'static str, expected: &'static str, actual: crate::scale::ScaleLayout },
    /// A scalar argument is out of range (eps not finite, ...).
    InvalidValue { arg: &'static str, expected: &'static str, actual: String },
    /// Two arguments are the same memory where the kernel needs them distinct.
    Aliasing { arg: &'static str, other: &'static str },
    /// The stream is capturing a CUDA graph and the operation would have to do what capture does
    /// not allow (upload data the graph would re-read from host memory at every replay).
    GraphCapture { op: &'static str, why: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDriver => write!(f, "no CUDA driver: libcuda could not be loaded (is an NVIDIA driver installed?)"),
            Error::NoDevice { ordinal, count } => {
                write!(f, "no CUDA device {ordinal}: the driver reports {count} device(s)")
            }
            Error::Cuda { op, source } => write!(f, "CUDA error in {op}: {source:?}"),
            Error::Unsupported { op, device, compute_capability: (ma, mi), needs } => {
                write!(f, "{op} is not supported on {device} (compute capability {ma}.{mi}): it needs {needs}")
            }
            Error::Shape { arg, expected, actual } => write!(f, "`{arg}`: expected {expected}, got {actual}"),
            Error::DType { arg, expected, actual } => write!(f, "`{arg}`: expected dtype {expected}, got {actual}"),
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
            Error::Layout { arg, expected, actual } => write!(f, "`{arg}`: expected {expected} scales, got {actual:?}"),
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
