//! Benchmark cases of the `fp8` family, the `lowp::fp8` quantizers (DeepSeek-V3 shapes):
//! `fp8_quantize_group/bf16/<M>x<K>` (1×128 groups, M-major scales) and
//! `fp8_quantize_block/bf16/<N>x<K>` (128×128 blocks). The blockwise FP8 GEMM is in `gemm.rs`.

use lowp::F8E4M3;
use lowp::fp8;

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str = "fp8 quantize = input read + E4M3 values written + f32 scales written";

pub(crate) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (m, k) in [(4096, 7168), (16384, 7168), (4096, 2048)] {
        let run: Box<RunCase> = Box::new(move |b| bench_group(b, m, k));
        v.push(Case::new("fp8_quantize_group", DType::Bf16, format!("{m}x{k}"), run));
    }
    for (n, k) in [(7168, 2048), (24576, 1536)] {
        let run: Box<RunCase> = Box::new(move |b| bench_block(b, n, k));
        v.push(Case::new("fp8_quantize_block", DType::Bf16, format!("{n}x{k}"), run));
    }
    v
}

fn bench_group(b: &mut Bench, m: usize, k: usize) -> BoxResult<Outcome> {
    let n = m * k;
    let set_bytes = n * 3 + n / 128 * 4;
    let sets = sets_for(set_bytes, b.l2_bytes);
    if let Some(why) = b.lacks_memory(sets * set_bytes)? {
        return Ok(Outcome::Skipped(why));
    }
    let xs = b.random::<bf16>(sets * n, (m as u64) << 32 ^ k as u64)?;
    let mut qs = b.stream.alloc_zeros::<F8E4M3>(sets * n)?;
    let ld = lowp::m_major_ld(m);
    let mut ss = b.stream.alloc_zeros::<f32>(sets * ld * (k / 128))?;
    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let sl = ld * (k / 128);
    let timing = b.timer.time(sets, |i| -> lowp::Result<()> {
        let x = Matrix::from_buffer(xs.slice(i * n..(i + 1) * n), m, k)?;
        let mut q = Matrix::from_buffer(qs.slice_mut(i * n..(i + 1) * n), m, k)?;
        let mut s = lowp::Scales::m_major(ss.slice_mut(i * sl..(i + 1) * sl), m, k / 128)?;
        fp8::quantize_per_token_group(&lowp, &stream, &x, lowp::ScaleRounding::Exact, &mut q, &mut s)
    })?;
    Ok(Outcome::Done { timing, bytes: (n * 3 + m * (k / 128) * 4) as u64, flops: 0, sets })
}

fn bench_block(b: &mut Bench, rows: usize, k: usize) -> BoxResult<Outcome> {
    let n = rows * k;
    let (rb, cb) = (rows.div_ceil(128), k / 128);
    let set_bytes = n * 3 + rb * cb * 4;
    let sets = sets_for(set_bytes, b.l2_bytes);
    if let Some(why) = b.lacks_memory(sets * set_bytes)? {
        return Ok(Outcome::Skipped(why));
    }
    let ws = b.random::<bf16>(sets * n, (rows as u64) << 32 ^ k as u64 ^ 7)?;
    let mut qs = b.stream.alloc_zeros::<F8E4M3>(sets * n)?;
    let mut ss = b.stream.alloc_zeros::<f32>(sets * rb * cb)?;
    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let timing = b.timer.time(sets, |i| -> lowp::Result<()> {
        let w = Matrix::from_buffer(ws.slice(i * n..(i + 1) * n), rows, k)?;
        let mut q = Matrix::from_buffer(qs.slice_mut(i * n..(i + 1) * n), rows, k)?;
        let mut s = lowp::Scales::row_major(ss.slice_mut(i * rb * cb..(i + 1) * rb * cb), rb, cb)?;
        fp8::quantize_per_block(&lowp, &stream, &w, lowp::ScaleRounding::Exact, &mut q, &mut s)
    })?;
    Ok(Outcome::Done { timing, bytes: set_bytes as u64, flops: 0, sets })
}
