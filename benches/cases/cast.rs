//! Benchmark cases of the `cast` family (`lowp::cast::cast`, `lowp::cast::cast_ue8m0`):
//! `cast/<dst>/<rows>x<cols>` and `cast_ue8m0/ue8m0/<rows>x<cols>`, an f32 buffer of rows · cols
//! elements cast into each of lowp's storage formats (UE8M0 rounded down, FP4 packed two per
//! byte).

use lowp::cast::{self, CastTarget};
use lowp::cudarc::driver::{CudaView, CudaViewMut};
use lowp::{Element, F4E2M1x2, F8E4M3, F8E5M2, Lowp, ScaleRounding, Ue8m0};

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str = "cast = f32 input read + destination written (FP4: half a byte per element)";

/// `[rows, cols]` of the f32 source: as many elements as the headline RMSNorm shape.
const SHAPE: (usize, usize) = (16384, 8192);

pub(crate) fn cases() -> Vec<Case> {
    let (rows, cols) = SHAPE;
    let n = rows * cols;
    let case = |dtype: DType, run: Box<RunCase>| Case::new("cast", dtype, format!("{rows}x{cols}"), run);
    vec![
        case(DType::Bf16, Box::new(move |b| bench_cast::<bf16>(b, n, cast_to::<bf16>))),
        case(DType::F16, Box::new(move |b| bench_cast::<f16>(b, n, cast_to::<f16>))),
        case(DType::E4M3, Box::new(move |b| bench_cast::<F8E4M3>(b, n, cast_to::<F8E4M3>))),
        case(DType::E5M2, Box::new(move |b| bench_cast::<F8E5M2>(b, n, cast_to::<F8E5M2>))),
        case(DType::E2M1x2, Box::new(move |b| bench_cast::<F4E2M1x2>(b, n, cast_to::<F4E2M1x2>))),
        Case::new(
            "cast_ue8m0",
            DType::Ue8m0,
            format!("{rows}x{cols}"),
            Box::new(move |b| bench_cast::<Ue8m0>(b, n, cast_floor)),
        ),
    ]
}

/// One launch of the op a case times.
type Launch<D> = fn(&Lowp, &Arc<CudaStream>, &CudaView<'_, f32>, &mut CudaViewMut<'_, D>) -> lowp::Result<()>;

fn cast_to<D: CastTarget>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &CudaView<'_, f32>,
    out: &mut CudaViewMut<'_, D>,
) -> lowp::Result<()> {
    cast::cast(lowp, stream, x, out)
}

fn cast_floor(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &CudaView<'_, f32>,
    out: &mut CudaViewMut<'_, Ue8m0>,
) -> lowp::Result<()> {
    cast::cast_ue8m0(lowp, stream, x, ScaleRounding::Floor, out)
}

fn bench_cast<D: Element>(b: &mut Bench, n: usize, launch: Launch<D>) -> BoxResult<Outcome> {
    let units = n / D::DTYPE.elems_per_unit();
    let set_bytes = n * 4 + units * D::DTYPE.size_of();
    let sets = sets_for(set_bytes, b.l2_bytes);
    if let Some(why) = b.lacks_memory(sets * set_bytes)? {
        return Ok(Outcome::Skipped(why));
    }
    let xs = b.random_f32(sets * n, (n as u64) << 8 ^ D::DTYPE.size_of() as u64)?;
    let mut ys = b.stream.alloc_zeros::<D>(sets * units)?;
    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let timing = b.timer.time(sets, |i| -> lowp::Result<()> {
        let x = xs.slice(i * n..(i + 1) * n);
        let mut y = ys.slice_mut(i * units..(i + 1) * units);
        launch(&lowp, &stream, &x, &mut y)
    })?;
    Ok(Outcome::Done { timing, bytes: set_bytes as u64, flops: 0, sets })
}
