//! Benchmark cases of the `microscaling` family (`lowp::microscaling`): `nvfp4_quantize` and
//! `mxfp8_quantize`, NVFP4 and MXFP8 quantization of bf16 activations
//! with swizzled scales, at a square [8192, 8192] and an MoE-like [E·T, 7168] (16 experts × 1024
//! tokens).
//!
//! bytes: x read + packed codes written + swizzled scales written (the whole padded layout, which
//! the kernel writes).

use lowp::microscaling::{self as mx, GlobalScale};
use lowp::{F4E2M1x2, F8E4M3, ScaleLayout, ScaleRounding, Scales, Ue8m0};

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str =
    "nvfp4_quantize/mxfp8_quantize = x read + packed codes written + swizzled scales written (padding included)";

/// `[rows, K]` of the quantize cases: square, and MoE-like (16 experts × 1024 tokens, K 7168).
const SHAPES: [(usize, usize); 2] = [(8192, 8192), (16 * 1024, 7168)];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fmt {
    Nvfp4,
    Mxfp8,
}

impl Fmt {
    fn block(self) -> usize {
        if self == Fmt::Nvfp4 { 16 } else { 32 }
    }
    fn code_cols(self, k: usize) -> usize {
        if self == Fmt::Nvfp4 { k / 2 } else { k }
    }
}

pub(crate) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (rows, k) in SHAPES {
        for fmt in [Fmt::Nvfp4, Fmt::Mxfp8] {
            v.push(Case::new(
                if fmt == Fmt::Nvfp4 { "nvfp4_quantize" } else { "mxfp8_quantize" },
                DType::Bf16,
                format!("{rows}x{k}"),
                Box::new(move |b| bench_quantize(b, fmt, rows, k)),
            ));
        }
    }
    v
}

fn bench_quantize(b: &mut Bench, fmt: Fmt, rows: usize, k: usize) -> BoxResult<Outcome> {
    let n = rows * k;
    let code_bytes = rows * fmt.code_cols(k);
    let scale_cols = k / fmt.block();
    // a multiple of 512: sets stay aligned
    let scale_bytes = ScaleLayout::Swizzled.required_len(rows, scale_cols).unwrap_or(usize::MAX);
    let set_bytes = 2 * n + code_bytes + scale_bytes;
    let sets = sets_for(set_bytes, b.l2_bytes);
    if let Some(why) = b.lacks_memory(sets * set_bytes)? {
        return Ok(Outcome::Skipped(why));
    }
    let seed = ((rows as u64) << 32) ^ k as u64 ^ ((fmt as u64) << 60);
    let xs = b.random::<bf16>(sets * n, seed)?;
    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let code_cols = fmt.code_cols(k);
    // N(0, 1) inputs stay within ±3.5: the global scale of an amax of 4 keeps NVFP4 in range.
    let g = GlobalScale::Value(mx::nvfp4_global_scale_from_amax(4.0));
    let timing = match fmt {
        Fmt::Nvfp4 => {
            let mut codes = b.stream.alloc_zeros::<F4E2M1x2>(sets * code_bytes)?;
            let mut scales = b.stream.alloc_zeros::<F8E4M3>(sets * scale_bytes)?;
            b.timer.time(sets, |i| -> lowp::Result<()> {
                let x = Matrix::from_buffer(xs.slice(i * n..(i + 1) * n), rows, k)?;
                let mut c =
                    Matrix::from_buffer(codes.slice_mut(i * code_bytes..(i + 1) * code_bytes), rows, code_cols)?;
                let s = scales.slice_mut(i * scale_bytes..(i + 1) * scale_bytes);
                let mut s = Scales::swizzled(s, rows, scale_cols)?;
                mx::nvfp4_quantize(&lowp, &stream, &x, &g, &mut c, &mut s)
            })?
        }
        Fmt::Mxfp8 => {
            let mut codes = b.stream.alloc_zeros::<F8E4M3>(sets * code_bytes)?;
            let mut scales = b.stream.alloc_zeros::<Ue8m0>(sets * scale_bytes)?;
            b.timer.time(sets, |i| -> lowp::Result<()> {
                let x = Matrix::from_buffer(xs.slice(i * n..(i + 1) * n), rows, k)?;
                let mut c =
                    Matrix::from_buffer(codes.slice_mut(i * code_bytes..(i + 1) * code_bytes), rows, code_cols)?;
                let s = scales.slice_mut(i * scale_bytes..(i + 1) * scale_bytes);
                let mut s = Scales::swizzled(s, rows, scale_cols)?;
                mx::mxfp8_quantize(&lowp, &stream, &x, ScaleRounding::Floor, &mut c, &mut s)
            })?
        }
    };
    Ok(Outcome::Done { timing, bytes: set_bytes as u64, flops: 0, sets })
}
