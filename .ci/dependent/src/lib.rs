//! lowp on candle tensors: the function docs/dependency.md shows, compiled here (the test in
//! `tests/candle_fp8.rs` runs it on a GPU).

use candle_core::cuda_backend::CudaStorage;
use candle_core::op::BackpropOp;
use candle_core::{Device, Storage, Tensor};
use float8::F8E4M3;
use lowp::half::bf16;
use lowp::{Lowp, Matrix, ScaleRounding, Scales};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// FP8 per-token-group quantization of a contiguous bf16 `[m, k]` candle tensor on a CUDA
/// device: (E4M3 codes `[m, k]`, f32 scales `[m, k/128]`), candle tensors on the same device,
/// enqueued on candle's stream.
pub fn quantize_fp8(lowp: &Lowp, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (m, k) = x.dims2()?;
    let Device::Cuda(dev) = x.device() else { return Err("x is not on a CUDA device".into()) };
    let stream = dev.cuda_stream();
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cuda(storage) = &*storage else { return Err("x is not on a CUDA device".into()) };
    if !layout.is_contiguous() {
        return Err("x must be contiguous".into());
    }
    let x_slice = storage.as_cuda_slice::<bf16>()?.slice(layout.start_offset()..);

    let mut q = dev.alloc_zeros::<F8E4M3>(m * k)?;
    let mut s = dev.alloc_zeros::<f32>(m * (k / 128))?;
    let x = Matrix::from_buffer(x_slice, m, k)?;
    let mut codes = Matrix::from_buffer(q.as_view_mut(), m, k)?;
    let mut scales = Scales::row_major(s.as_view_mut(), m, k / 128)?;
    lowp::fp8::quantize_per_token_group(lowp, &stream, &x, ScaleRounding::Exact, &mut codes, &mut scales)?;
    drop((codes, scales));

    let q = Tensor::from_storage(
        Storage::Cuda(CudaStorage::wrap_cuda_slice(q, dev.clone())),
        (m, k),
        BackpropOp::none(),
        false,
    );
    let s = Tensor::from_storage(
        Storage::Cuda(CudaStorage::wrap_cuda_slice(s, dev.clone())),
        (m, k / 128),
        BackpropOp::none(),
        false,
    );
    Ok((q, s))
}
