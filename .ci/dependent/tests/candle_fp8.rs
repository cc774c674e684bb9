//! lowp beside candle-core's CUDA backend, one cudarc for both: lowp's FP8 quantizer writes E4M3
//! codes into a `CudaSlice<float8::F8E4M3>` (candle's FP8 element type), and the result matches
//! `lowp::reference`. No `unsafe` here.
//!
//! On a GPU the slices come from candle: a bf16 `Tensor` on candle's `CudaDevice`, its
//! `CudaStorage` slice read by lowp, the outputs allocated on candle's device and wrapped back
//! into candle tensors. On the lowp-sim simulator (the device is named `lowp-sim`), candle's
//! `CudaDevice::new` is not tried (it creates cuBLAS and cuRAND handles, which the simulator does
//! not provide); the same call runs on plain cudarc allocations of candle's element types.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use float8::F8E4M3;
use lowp::cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use lowp::half::bf16;
use lowp::{Lowp, Matrix, ScaleRounding, Scales};

const M: usize = 6;
const K: usize = 384;

fn input() -> Vec<bf16> {
    (0..M * K)
        .map(|i| {
            let (r, c) = (i / K, i % K);
            // Rows of different magnitudes; one group per row with a larger outlier.
            let v = ((i * 37 % 101) as f32 - 50.0) / 50.0 * (r as f32 + 1.0) * 0.75;
            bf16::from_f32(if c % 128 == 5 { v * 20.0 } else { v })
        })
        .collect()
}

/// lowp's quantizer on `x [M, K]` into `q` and row-major scales, on `stream`.
fn quantize(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &CudaSlice<bf16>,
    q: &mut CudaSlice<F8E4M3>,
    s: &mut CudaSlice<f32>,
) {
    let x = Matrix::from_buffer(x.as_view(), M, K).expect("x matrix");
    let mut codes = Matrix::from_buffer(q.as_view_mut(), M, K).expect("codes matrix");
    let mut scales = Scales::row_major(s.as_view_mut(), M, K / 128).expect("scales");
    lowp::fp8::quantize_per_token_group(lowp, stream, &x, ScaleRounding::Exact, &mut codes, &mut scales)
        .expect("quantize_per_token_group");
}

/// On candle's device, through `quantize_fp8` (the crate's, as docs/dependency.md shows it):
/// returns (codes, scales) read back through candle.
fn with_candle(device: &Device, host: &[bf16]) -> (Vec<F8E4M3>, Vec<f32>) {
    let cuda = device.as_cuda_device().expect("a CUDA device");
    let lowp = Lowp::from_context(cuda.cuda_stream().context().clone()).expect("lowp on candle's context");
    let x = Tensor::from_slice(host, (M, K), device).expect("x tensor");
    let (q, s) = lowp_dependent_check::quantize_fp8(&lowp, &x).expect("quantize_fp8");
    assert_eq!(q.dtype(), DType::F8E4M3);
    let q = q.flatten_all().and_then(|t| t.to_vec1::<F8E4M3>()).expect("q to host");
    let s = s.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("scales to host");
    (q, s)
}

/// On plain cudarc allocations of candle's element types.
fn with_cudarc(ctx: Arc<CudaContext>, host: &[bf16]) -> (Vec<F8E4M3>, Vec<f32>) {
    let lowp = Lowp::from_context(ctx.clone()).expect("lowp");
    let stream = ctx.new_stream().expect("stream");
    let x: CudaSlice<bf16> = stream.clone_htod(host).expect("x upload");
    let mut q: CudaSlice<F8E4M3> = stream.alloc_zeros::<F8E4M3>(M * K).expect("alloc q");
    let mut s: CudaSlice<f32> = stream.alloc_zeros::<f32>(M * K / 128).expect("alloc scales");
    quantize(&lowp, &stream, &x, &mut q, &mut s);
    (stream.clone_dtoh(&q).expect("q to host"), stream.clone_dtoh(&s).expect("scales to host"))
}

#[test]
fn fp8_quantizer_writes_candles_fp8_slice() {
    let host = input();
    let ctx = CudaContext::new(0).expect("CUDA device 0 (the simulator where there is no GPU)");
    let name = ctx.name().expect("device name");
    let (q, s) = if name == "lowp-sim" {
        eprintln!(
            "path: plain cudarc allocations of candle's element types on {name} (candle's CudaDevice needs cuBLAS and cuRAND)"
        );
        with_cudarc(ctx, &host)
    } else {
        drop(ctx);
        eprintln!("path: candle's CudaDevice on {name}: Tensor storage -> CudaStorage::as_cuda_slice -> lowp");
        let device = Device::new_cuda(0).expect("candle's CUDA device");
        with_candle(&device, &host)
    };

    let x: Vec<f32> = host.iter().map(|v| v.to_f32()).collect();
    let (q_ref, s_ref) =
        lowp::reference::fp8::quantize_per_token_group(&x, M, K, ScaleRounding::Exact).expect("an FP8 rounding");
    assert_eq!(s.len(), s_ref.len());
    for (i, (a, b)) in s.iter().zip(&s_ref).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "scale {i}: {a} vs reference {b}");
    }
    let bits: Vec<u8> = q.iter().map(|v| v.to_bits()).collect();
    let mismatches = bits.iter().zip(&q_ref).filter(|(a, b)| a != b).count();
    assert_eq!(mismatches, 0, "{mismatches} of {} E4M3 codes differ from lowp::reference", bits.len());
    // The codes read as candle's element type: value = code · scale.
    let back = q[5].to_f32() * s[0];
    assert!((back - x[5]).abs() <= x[5].abs() * 0.07 + 1e-3, "dequantized {back} vs {}", x[5]);
    eprintln!("ok: {} codes and {} scales equal lowp::reference bit for bit", bits.len(), s.len());
}
