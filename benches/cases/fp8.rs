//! Benchmark cases of the `lowp::fp8` quantizers (DeepSeek-V3 shapes).

use lowp::fp8;
use lowp::F8E4M3;

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str = "fp8 quantize = input read + E4M3 values written + f32 scales written";

pub(crate) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (m, k) in [(4096, 7168), (16384, 7168), (4096, 2048)] {
        v.push(Case {
            op: "fp8_quantize_group",
            dtype: DType::Bf16,
            shape: format!("{m}x{k}"),
            run: Box::new(move |b| bench_group(b, m, k)),
        });
    }
    for (n, k) in [(7168, 2048), (24576, 1536)] {
        v.push(Case {
            op: "fp8_quantize_block",
            dtype: DType::Bf16,
            shape: format!("{n}x{k}"),
            run: Box::new(move |b| bench_block(b, n, k)),
        });
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

/// The blockwise FP8 GEMM on the DeepSeek-V3 shapes (M, N, K); Hopper only.
pub(crate) fn gemm_cases() -> Vec<Case> {
    [(4096, 7168, 2048), (4096, 24576, 1536), (4096, 7168, 16384), (4096, 2112, 7168), (128, 7168, 2048), (64, 7168, 2048), (8192, 8192, 8192)]
        .into_iter()
        .map(|(m, n, k)| Case { op: "fp8_blockwise_gemm", dtype: DType::E4M3, shape: format!("{m}x{n}x{k}"), run: Box::new(move |b| bench_gemm(b, m, n, k)) })
        .collect()
}

fn bench_gemm(b: &mut Bench, m: usize, n: usize, k: usize) -> BoxResult<Outcome> {
    if b.lowp.arch() != lowp::Arch::Sm90a {
        return Ok(Outcome::Skipped(format!("needs compute capability 9.0, {} has {:?}", b.lowp.device_name(), b.lowp.compute_capability())));
    }
    let g = k / 128;
    let ld = lowp::m_major_ld(m);
    let set_bytes = m * k + n * k + m * n * 2 + (ld + n.div_ceil(128)) * g * 4;
    let sets = sets_for(set_bytes, b.l2_bytes);
    if let Some(why) = b.lacks_memory(sets * set_bytes)? {
        return Ok(Outcome::Skipped(why));
    }
    // Random finite E4M3 codes and scales around 1/448: realistic magnitudes, no NaN.
    let mut rng = SplitMix64((m as u64) << 40 ^ (n as u64) << 20 ^ k as u64);
    let mut codes = |len: usize| -> Vec<F8E4M3> {
        (0..len).map(|_| loop { let c = rng.next_u64() as u8; if c & 0x7f != 0x7f { break F8E4M3::from_bits(c) } }).collect()
    };
    let a_all = b.stream.clone_htod(&codes(sets * m * k))?;
    let b_all = b.stream.clone_htod(&codes(sets * n * k))?;
    let sa_all = b.stream.clone_htod(&vec![1.0f32 / 448.0; sets * ld * g])?;
    let sbn = n.div_ceil(128) * g;
    let sb_all = b.stream.clone_htod(&vec![1.0f32 / 448.0; sets * sbn])?;
    let mut d_all = b.stream.alloc_zeros::<bf16>(sets * m * n)?;
    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let timing = b.timer.time(sets, |i| -> lowp::Result<()> {
        let a = Matrix::from_buffer(a_all.slice(i * m * k..(i + 1) * m * k), m, k)?;
        let bb = Matrix::from_buffer(b_all.slice(i * n * k..(i + 1) * n * k), n, k)?;
        let sa = lowp::Scales::m_major(sa_all.slice(i * ld * g..(i + 1) * ld * g), m, g)?;
        let sb = lowp::Scales::row_major(sb_all.slice(i * sbn..(i + 1) * sbn), n.div_ceil(128), g)?;
        let mut d = Matrix::from_buffer(d_all.slice_mut(i * m * n..(i + 1) * m * n), m, n)?;
        lowp::gemm::blockwise_fp8(&lowp, &stream, &a, &sa, &bb, &sb, &mut d)
    })?;
    Ok(Outcome::Done { timing, bytes: (m * k + n * k + m * n * 2) as u64, flops: (2 * m * n * k) as u64, sets })
}
