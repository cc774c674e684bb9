//! The CUDA driver API's C ABI over one process-wide `Sim`.
