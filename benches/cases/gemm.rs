//! Benchmark cases of the `gemm` family: the blockwise FP8 GEMM (`lowp::gemm::blockwise_fp8`) on
//! DeepSeek-V3 shapes (M, N, K), and the grouped GEMMs (`lowp::gemm::grouped_bf16`, `grouped_fp8`) on MoE shapes
//! (E, tokens per expert, N, K), balanced and with Zipf-like routing (`/zipf`), bf16 and
//! blockwise FP8. Hopper only.

use lowp::F8E4M3;
use lowp::gemm::{self, GroupLayout};

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str = "fp8_blockwise_gemm = A + B read once + D (bf16) written; \
                                *_grouped_gemm = x + every expert's weights read once + y written \
                                (TFLOP/s from 2 · M · N · K, 2 · tokens · N · K)";

/// Contiguous-layout shapes (E, tokens per expert, N, K); the last is DeepGEMM's published
/// contiguous case (4 groups of 8192 rows).
const SHAPES: [(usize, usize, usize, usize); 4] =
    [(8, 512, 4096, 7168), (32, 256, 4096, 7168), (64, 128, 7168, 2048), (4, 8192, 4096, 7168)];
/// Masked-layout shapes (E, rows per slab, all of them routed, N, K): DeepGEMM's published masked
/// case (4 groups of 256).
const MASKED_SHAPES: [(usize, usize, usize, usize); 1] = [(4, 256, 4096, 7168)];

/// How a grouped case routes its rows.
#[derive(Clone, Copy)]
enum Routing {
    /// Contiguous groups of equal size.
    Equal,
    /// Contiguous groups of Zipf(1.1)-weighted sizes.
    Zipf,
    /// The masked layout: E slabs of `t` rows, every row routed.
    Masked,
}

/// The blockwise GEMM's cases, then
/// `{bf16,fp8}_grouped_gemm/<dtype>/<E>x<tokens per expert>x<N>x<K>[/zipf|/masked]`.
pub(crate) fn cases() -> Vec<Case> {
    let mut v = blockwise_cases();
    for fp8 in [false, true] {
        let shapes = [Routing::Equal, Routing::Zipf]
            .into_iter()
            .flat_map(|r| SHAPES.into_iter().map(move |s| (r, s)))
            .chain(MASKED_SHAPES.into_iter().map(|s| (Routing::Masked, s)));
        for (routing, (e, t, n, k)) in shapes {
            let variant = match routing {
                Routing::Equal => None,
                Routing::Zipf => Some("zipf"),
                Routing::Masked => Some("masked"),
            };
            v.push(
                Case::new(
                    if fp8 { "fp8_grouped_gemm" } else { "bf16_grouped_gemm" },
                    if fp8 { DType::E4M3 } else { DType::Bf16 },
                    format!("{e}x{t}x{n}x{k}"),
                    Box::new(move |b| bench(b, e, t, n, k, fp8, routing)),
                )
                .variant(variant),
            );
        }
    }
    v
}

/// Cumulative group ends for `e` experts and `e · t` tokens: equal, or Zipf(1.1)-weighted.
fn ends(e: usize, t: usize, zipf: bool) -> Vec<i32> {
    let total = e * t;
    let sizes: Vec<usize> = if zipf {
        let w: Vec<f64> = (0..e).map(|i| 1.0 / (1.0 + i as f64).powf(1.1)).collect();
        let s: f64 = w.iter().sum();
        let mut v: Vec<usize> = w.iter().map(|x| (x / s * total as f64) as usize).collect();
        let used: usize = v.iter().sum();
        v[0] += total - used;
        v
    } else {
        vec![t; e]
    };
    let mut end = 0;
    sizes
        .iter()
        .map(|s| {
            end += s;
            end as i32
        })
        .collect()
}

fn bench(b: &mut Bench, e: usize, t: usize, n: usize, k: usize, fp8: bool, routing: Routing) -> BoxResult<Outcome> {
    if b.lowp.arch() != lowp::Arch::Sm90a {
        return Ok(Outcome::Skipped(format!(
            "needs compute capability 9.0, {} has {:?}",
            b.lowp.device_name(),
            b.lowp.compute_capability()
        )));
    }
    let rows = e * t;
    let elem = if fp8 { 1 } else { 2 };
    let set_bytes = rows * k * elem + e * n * k * elem + rows * n * 2;
    let sets = sets_for(set_bytes, b.l2_bytes);
    if let Some(why) = b.lacks_memory(sets * set_bytes)? {
        return Ok(Outcome::Skipped(why));
    }
    // Contiguous: cumulative ends; masked: a count per slab (all `t` rows).
    let table = b.stream.clone_htod(&match routing {
        Routing::Masked => vec![t as i32; e],
        _ => ends(e, t, matches!(routing, Routing::Zipf)),
    })?;
    let groups = |table| match routing {
        Routing::Masked => GroupLayout::Masked { counts: table, max_m: t },
        _ => GroupLayout::Contiguous { ends: table },
    };
    let mut ys = b.stream.alloc_zeros::<bf16>(sets * rows * n)?;
    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let timing = if fp8 {
        let mut rng = SplitMix64((rows as u64) << 24 ^ n as u64 ^ k as u64);
        let xs = b.stream.clone_htod(&e4m3_codes(&mut rng, sets * rows * k))?;
        let ws = b.stream.clone_htod(&e4m3_codes(&mut rng, sets * e * n * k))?;
        let (kb, nb) = (k / 128, n.div_ceil(128));
        // M-major activation scales (what `fp8::quantize_per_token_group` writes for a GEMM):
        // the kernel TMA-loads them.
        let sx_all = b.stream.clone_htod(&vec![1.0f32 / 448.0; lowp::m_major_ld(rows) * kb])?;
        let sw = b.stream.clone_htod(&vec![1.0f32 / 448.0; e * nb * kb])?;
        let timing = b.timer.time(sets, |i| -> lowp::Result<()> {
            let x = Matrix::from_buffer(xs.slice(i * rows * k..(i + 1) * rows * k), rows, k)?;
            let w = lowp::MatrixBatch::from_buffer(ws.slice(i * e * n * k..(i + 1) * e * n * k), e, n, k)?;
            let sx = lowp::Scales::m_major(sx_all.slice(..), rows, kb)?;
            let s_w = lowp::Scales::row_major(sw.slice(..), e * nb, kb)?;
            let mut y = Matrix::from_buffer(ys.slice_mut(i * rows * n..(i + 1) * rows * n), rows, n)?;
            gemm::grouped_fp8(&lowp, &stream, &x, &sx, &w, &s_w, &groups(&table), &mut y, None)
        })?;
        let x = Matrix::from_buffer(xs.slice(..rows * k), rows, k)?;
        let w = lowp::MatrixBatch::from_buffer(ws.slice(..e * n * k), e, n, k)?;
        b.note =
            gemm::grouped_fp8_config(&b.lowp, &b.stream, &x, &w, &groups(&table)).ok().map(|c| format!("config {c}"));
        timing
    } else {
        let xs = b.random::<bf16>(sets * rows * k, (rows as u64) << 20 ^ k as u64)?;
        let ws = b.random::<bf16>(sets * e * n * k, (e as u64) << 40 ^ n as u64)?;
        let timing = b.timer.time(sets, |i| -> lowp::Result<()> {
            let x = Matrix::from_buffer(xs.slice(i * rows * k..(i + 1) * rows * k), rows, k)?;
            let w = lowp::MatrixBatch::from_buffer(ws.slice(i * e * n * k..(i + 1) * e * n * k), e, n, k)?;
            let mut y = Matrix::from_buffer(ys.slice_mut(i * rows * n..(i + 1) * rows * n), rows, n)?;
            gemm::grouped_bf16(&lowp, &stream, &x, &w, &groups(&table), &mut y, None)
        })?;
        let x = Matrix::from_buffer(xs.slice(..rows * k), rows, k)?;
        let w = lowp::MatrixBatch::from_buffer(ws.slice(..e * n * k), e, n, k)?;
        b.note =
            gemm::grouped_bf16_config(&b.lowp, &b.stream, &x, &w, &groups(&table)).ok().map(|c| format!("config {c}"));
        timing
    };
    Ok(Outcome::Done { timing, bytes: set_bytes as u64, flops: (2 * rows * n * k) as u64, sets })
}

/// The dense FP8 shapes (M, N, K).
const BLOCKWISE_SHAPES: [(usize, usize, usize); 13] = [
    (4096, 7168, 2048),
    (4096, 24576, 1536),
    (4096, 7168, 16384),
    (4096, 2112, 7168),
    (128, 7168, 2048),
    (64, 7168, 2048),
    (8192, 8192, 8192),
    // DeepGEMM's published shapes not above
    (4096, 4096, 7168),
    (128, 7168, 16384),
    (64, 7168, 16384),
    // decode shapes whose 64 × 64 tiles underfill the SMs: split-K clusters (4, 2 and 8 CTAs
    // where 132 SMs hold 33 clusters of 4 and 16 of 8; 2 for N = 2112 where 32 of 4 fit)
    (64, 2112, 7168),
    (64, 4096, 7168),
    (32, 576, 7168),
];

/// `fp8_blockwise_gemm/e4m3/<M>x<N>x<K>`: the blockwise FP8 GEMM on DeepSeek-V3 shapes; Hopper only.
fn blockwise_cases() -> Vec<Case> {
    BLOCKWISE_SHAPES
        .into_iter()
        .map(|(m, n, k)| {
            let run: Box<RunCase> = Box::new(move |b| bench_gemm(b, m, n, k, None));
            Case::new("fp8_blockwise_gemm", DType::E4M3, format!("{m}x{n}x{k}"), run)
        })
        .collect()
}

/// `fp8_blockwise_gemm/e4m3/<M>x<N>x<K>/<config>` (`--configs`): each dense shape in every kernel
/// configuration (`gemm::blockwise_fp8_with`), `<config>` as `128x112`, `128x128c2` (clusters of
/// 2 along N) or `64x64k4` (split-K clusters of 4). A configuration whose clusters the device
/// cannot hold is skipped.
pub(crate) fn config_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (m, n, k) in BLOCKWISE_SHAPES {
        for config in gemm::GemmConfig::all(true) {
            let label = config.to_string();
            let run: Box<RunCase> = Box::new(move |b| bench_gemm(b, m, n, k, Some(config)));
            v.push(Case::new("fp8_blockwise_gemm", DType::E4M3, format!("{m}x{n}x{k}"), run).variant(Some(&label)));
        }
    }
    v
}

fn bench_gemm(b: &mut Bench, m: usize, n: usize, k: usize, config: Option<gemm::GemmConfig>) -> BoxResult<Outcome> {
    if b.lowp.arch() != lowp::Arch::Sm90a {
        return Ok(Outcome::Skipped(format!(
            "needs compute capability 9.0, {} has {:?}",
            b.lowp.device_name(),
            b.lowp.compute_capability()
        )));
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
    let a_all = b.stream.clone_htod(&e4m3_codes(&mut rng, sets * m * k))?;
    let b_all = b.stream.clone_htod(&e4m3_codes(&mut rng, sets * n * k))?;
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
        match config {
            None => gemm::blockwise_fp8(&lowp, &stream, &a, &sa, &bb, &sb, &mut d),
            Some(c) => gemm::blockwise_fp8_with(&lowp, &stream, &a, &sa, &bb, &sb, c, &mut d),
        }
    });
    if config.is_none() {
        let a = Matrix::from_buffer(a_all.slice(..m * k), m, k)?;
        let bb = Matrix::from_buffer(b_all.slice(..n * k), n, k)?;
        b.note = gemm::blockwise_fp8_config(&b.lowp, &b.stream, &a, &bb).ok().map(|c| format!("config {c}"));
    }
    let timing = match (timing, config) {
        (Err(e), Some(c))
            if e.downcast_ref::<lowp::Error>()
                .is_some_and(|e| matches!(e, lowp::Error::InvalidValue { arg: "config", .. })) =>
        {
            return Ok(Outcome::Skipped(format!("{c}: {e}")));
        }
        (t, _) => t?,
    };
    Ok(Outcome::Done { timing, bytes: (m * k + n * k + m * n * 2) as u64, flops: (2 * m * n * k) as u64, sets })
}

/// `len` random finite E4M3 codes (any bit pattern but the two NaNs).
fn e4m3_codes(rng: &mut SplitMix64, len: usize) -> Vec<F8E4M3> {
    (0..len)
        .map(|_| {
            loop {
                let c = rng.next_u64() as u8;
                if c & 0x7f != 0x7f {
                    break F8E4M3::from_bits(c);
                }
            }
        })
        .collect()
}
