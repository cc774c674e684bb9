//! Benchmark cases of the `rmsnorm` family (`lowp::rmsnorm`): `rmsnorm/<dtype>/<rows>x<hidden>`
//! and `add_rmsnorm/<dtype>/<rows>x<hidden>`.
//!
//! bytes: rmsnorm = x read + out written + weight; add_rmsnorm = x read + residual read and
//! written + out written + weight.

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str =
    "rmsnorm = x read + out written + weight; add_rmsnorm = x read + residual read and written + out written + weight";

/// `[rows, hidden]` of the norm cases; the first is the headline shape (a 16k-token prefill
/// batch at hidden 8192), the only one also run in f16. Hidden 8192 and below run the kernel
/// with 4 vectors per thread, 16384 the general one, 2048 the warp-per-row kernel.
const NORM_SHAPES: [(usize, usize); 6] =
    [(16384, 8192), (4096, 4096), (16384, 5120), (1, 8192), (128, 16384), (16384, 2048)];
const EPS: f32 = 1e-6;

/// The RMSNorm cases: add + RMSNorm and RMSNorm, bf16 on every shape, f16 on the headline one.
pub(crate) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for op in [Norm::Add, Norm::Plain] {
        for (rows, hidden) in NORM_SHAPES {
            v.push(norm_case::<bf16>(op, rows, hidden));
        }
        let (rows, hidden) = NORM_SHAPES[0];
        v.push(norm_case::<f16>(op, rows, hidden));
    }
    v
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Norm {
    /// `lowp::rmsnorm::rmsnorm`
    Plain,
    /// `lowp::rmsnorm::add_rmsnorm`
    Add,
}

fn norm_case<T: Half>(op: Norm, rows: usize, hidden: usize) -> Case {
    Case::new(
        if op == Norm::Add { "add_rmsnorm" } else { "rmsnorm" },
        T::DTYPE,
        format!("{rows}x{hidden}"),
        Box::new(move |b| bench_norm::<T>(b, op, rows, hidden)),
    )
}

fn bench_norm<T: Half>(b: &mut Bench, op: Norm, rows: usize, hidden: usize) -> BoxResult<Outcome> {
    let elem = std::mem::size_of::<T>();
    let n = rows * hidden;
    let matrices = if op == Norm::Add { 3 } else { 2 }; // x, out (and residual), per set
    let sets = sets_for(matrices * n * elem, b.l2_bytes);
    if let Some(why) = b.lacks_memory(sets * matrices * n * elem + hidden * elem)? {
        return Ok(Outcome::Skipped(why));
    }
    let seed = ((rows as u64) << 32) ^ hidden as u64 ^ ((T::DTYPE as u64) << 56);
    let weight = b.random::<T>(hidden, seed ^ 1)?;
    let xs = b.random::<T>(sets * n, seed ^ 2)?;
    let mut outs = b.stream.alloc_zeros::<T>(sets * n)?;
    let mut residuals = if op == Norm::Add { Some(b.random::<T>(sets * n, seed ^ 3)?) } else { None };
    let bytes = ((matrices + usize::from(op == Norm::Add)) * n * elem + hidden * elem) as u64;

    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let timing = b.timer.time(sets, |i| -> lowp::Result<()> {
        let range = i * n..(i + 1) * n;
        let x = Matrix::from_buffer(xs.slice(range.clone()), rows, hidden)?;
        let mut out = Matrix::from_buffer(outs.slice_mut(range.clone()), rows, hidden)?;
        match residuals.as_mut() {
            Some(res) => {
                let mut residual = Matrix::from_buffer(res.slice_mut(range), rows, hidden)?;
                lowp::rmsnorm::add_rmsnorm(&lowp, &stream, &x, &weight, EPS, &mut residual, &mut out)
            }
            None => lowp::rmsnorm::rmsnorm(&lowp, &stream, &x, &weight, EPS, &mut out),
        }
    })?;
    Ok(Outcome::Done { timing, bytes, flops: 0, sets })
}
