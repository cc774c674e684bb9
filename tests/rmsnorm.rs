//! RMSNorm and add + RMSNorm: the float64 reference on its own (CPU), then the kernels against it
//! on fresh random inputs with poisoned outputs (on a GPU, or on the simulator where there is
//! none, with fewer rows of the same kinds).

mod common;

use std::sync::Arc;

use approx::assert_relative_eq;
use half::{bf16, f16};
use lowp::cudarc::driver::CudaStream;
use lowp::reference::{rmsnorm as refn, ulp};
use lowp::{Error, Half, Lowp, Matrix};

use common::Rng;

#[test]
fn reference_rmsnorm_of_a_constant_row_is_its_sign() {
    let x = vec![bf16::from_f32(3.0); 8];
    let w = vec![bf16::ONE; 8];
    let y = refn::rmsnorm(&x, 1, 8, 8, &w, 0.0);
    for v in &y {
        assert_relative_eq!(*v, 1.0, max_relative = 1e-15);
    }
    let x = vec![f16::from_f32(-0.5); 4];
    let w: Vec<f16> = [1.0f32, 2.0, -1.0, 0.5].iter().map(|&v| f16::from_f32(v)).collect();
    let y = refn::rmsnorm(&x, 1, 4, 4, &w, 0.0);
    for (v, want) in y.iter().zip([-1.0, -2.0, 1.0, -0.5]) {
        assert_relative_eq!(*v, want, max_relative = 1e-15);
    }
}

#[test]
fn reference_rmsnorm_matches_a_hand_computed_row_with_eps_and_stride() {
    // row [1, 2, 3, 4] at stride 6 (two padding elements), eps 0.5: mean sq = 7.5, +eps = 8
    let pad = bf16::from_f32(1000.0);
    let one = |v: f32| bf16::from_f32(v);
    let x = vec![one(9.0), one(9.0), one(9.0), one(9.0), pad, pad, one(1.0), one(2.0), one(3.0), one(4.0), pad, pad];
    let w = vec![one(1.0), one(0.5), one(2.0), one(-1.0)];
    let y = refn::rmsnorm(&x[6..], 1, 4, 6, &w, 0.5);
    let inv = 1.0 / 8f64.sqrt();
    for (v, want) in y.iter().zip([1.0 * inv, 2.0 * inv * 0.5, 3.0 * inv * 2.0, -4.0 * inv]) {
        assert_relative_eq!(*v, want, max_relative = 1e-15);
    }
}

#[test]
fn reference_add_rmsnorm_is_rmsnorm_of_the_rounded_residual() {
    let mut rng = Rng::fresh("reference_add_rmsnorm_is_rmsnorm_of_the_rounded_residual");
    let (rows, hidden) = (5, 33);
    let x: Vec<bf16> = (0..rows * hidden).map(|_| bf16::from_f64(rng.normal())).collect();
    let r: Vec<bf16> = (0..rows * hidden).map(|_| bf16::from_f64(rng.normal())).collect();
    let w: Vec<bf16> = (0..hidden).map(|_| bf16::from_f64(1.0 + 0.1 * rng.normal())).collect();
    let (res, y) = refn::add_rmsnorm(&x, hidden, &r, hidden, rows, hidden, &w, 1e-6);
    for i in 0..rows * hidden {
        assert_eq!(res[i], bf16::from_f64(x[i].to_f64() + r[i].to_f64()));
    }
    let y2 = refn::rmsnorm(&res, rows, hidden, hidden, &w, 1e-6);
    assert_eq!(y, y2);
}

#[test]
fn ulp_is_the_spacing_of_the_format() {
    assert_eq!(ulp::<bf16>(1.0), 2f64.powi(-7));
    assert_eq!(ulp::<bf16>(1.99), 2f64.powi(-7));
    assert_eq!(ulp::<bf16>(-3.0), 2f64.powi(-6));
    assert_eq!(ulp::<f16>(1.0), 2f64.powi(-10));
    assert_eq!(ulp::<f16>(1e-7), 2f64.powi(-24)); // subnormal floor
}

// ---------------------------------------------------------------------------------------------
// GPU

/// One case: shape, strides (elements) for x / residual / out, and the base offset (elements)
/// of x inside its buffer, to exercise unaligned starts.
#[derive(Clone, Copy, Debug)]
struct Case {
    rows: usize,
    hidden: usize,
    x_stride: usize,
    r_stride: usize,
    o_stride: usize,
    x_offset: usize,
}

/// The sweep; `rows(gpu, sim)` picks the row count of the larger cases (one block per row).
fn cases(lowp: &Lowp) -> Vec<Case> {
    let rows = |gpu: usize, sim: usize| common::sized(lowp, gpu, sim);
    let dense = |rows, hidden| Case { rows, hidden, x_stride: hidden, r_stride: hidden, o_stride: hidden, x_offset: 0 };
    let mut v = vec![
        dense(1, 8),
        dense(3, 1000), // not a multiple of 8: scalar path
        dense(7, 4096),
        dense(rows(130, 19), 8192),
        dense(rows(5, 2), 16384), // the largest hidden size
        dense(rows(33, 9), 5120),
        dense(2, 1),
        dense(17, 7),
        dense(rows(64, 16), 2048),
        dense(rows(300, 40), 256), // hidden < 8 * threads: most threads idle
        dense(1, 16376),           // 2047 vectors: the last thread slot partly used
    ];
    // The kernel boundaries (`lowp::rmsnorm` picks by hidden size on the vector path): a warp
    // per row up to 2048, a CTA per row with 4 vectors per thread up to 8192, 8 above; a hidden
    // size that is not a multiple of 8 takes the scalar path whatever its size.
    v.extend([
        dense(13, 2048),            // warp per row, every lane's 8 slots used; 13 rows: the last CTA has 5
        dense(9, 2049),             // scalar
        dense(11, 2056),            // 4 vectors per thread: 257 vectors, one thread with 2 slots
        dense(3, 8192),             // 4 vectors per thread, all used
        dense(2, 8193),             // scalar
        dense(2, 8200),             // 8 vectors per thread, one thread with 5 slots
        dense(21, 264),             // warp per row: 33 vectors, lane 0 alone in its second slot
        dense(rows(1000, 200), 64), // warp per row, 8 lanes busy; more rows than resident warps
        dense(rows(500, 37), 4096), // 4 vectors per thread; more rows than resident CTAs
    ]);
    // strided rows that keep 16-byte alignment (vector path) and that break it (scalar path)
    v.push(Case { rows: 9, hidden: 4096, x_stride: 4104, r_stride: 4160, o_stride: 4112, x_offset: 0 });
    v.push(Case { rows: 9, hidden: 4096, x_stride: 4099, r_stride: 4096, o_stride: 4101, x_offset: 0 });
    // x starting 2 bytes past alignment
    v.push(Case { rows: 6, hidden: 2048, x_stride: 2048, r_stride: 2048, o_stride: 2048, x_offset: 1 });
    // aligned strided rows on the warp-per-row and the 4-vector kernels
    v.push(Case { rows: 10, hidden: 1024, x_stride: 1032, r_stride: 1096, o_stride: 1040, x_offset: 0 });
    v.push(Case { rows: 5, hidden: 6144, x_stride: 6152, r_stride: 6144, o_stride: 6160, x_offset: 8 });
    v
}

fn random_vec<T: Half>(rng: &mut Rng, n: usize, scale: f64) -> Vec<T> {
    (0..n).map(|_| T::from_f64(scale * rng.normal())).collect()
}

/// Host buffer of `rows` rows at `stride` plus `offset` leading elements; padding is random too,
/// so a kernel that reads or writes padding is caught (padding must come back untouched).
fn strided<T: Half>(rng: &mut Rng, rows: usize, stride: usize, offset: usize) -> Vec<T> {
    random_vec(rng, offset + rows * stride, 1.0)
}

fn dense_rows<T: Copy>(buf: &[T], rows: usize, hidden: usize, stride: usize, offset: usize) -> Vec<T> {
    (0..rows).flat_map(|r| buf[offset + r * stride..offset + r * stride + hidden].iter().copied()).collect()
}

fn poison<T: Half>() -> T {
    T::from_bits(if T::SUFFIX == "bf16" { common::POISON16 } else { common::POISON_F16 })
}

/// Checks `got` (device) against the float64 reference: every element within one ulp.
fn check_outputs<T: Half>(what: &str, case: &Case, got: &[T], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    let mut worst = (0.0f64, 0usize);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.to_f64();
        assert!(
            !g.is_nan(),
            "{what} {case:?}: element {i} (row {}, col {}) not written or NaN (reference {w})",
            i / case.hidden,
            i % case.hidden
        );
        let err = (g - w).abs() / ulp::<T>(*w);
        if err > worst.0 {
            worst = (err, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 1.0,
        "{what} {case:?}: element {i} is {} ulp off: got {}, reference {}",
        worst.0,
        got[i].to_f64(),
        want[i]
    );
}

fn run_case<T: Half>(lowp: &Lowp, stream: &Arc<CudaStream>, rng: &mut Rng, case: Case, add: bool) {
    let Case { rows, hidden, x_stride, r_stride, o_stride, x_offset } = case;
    let eps = 1e-6f32;
    let x_host: Vec<T> = strided(rng, rows, x_stride, x_offset);
    let r_host: Vec<T> = strided(rng, rows, r_stride, 0);
    let w_host: Vec<T> = (0..hidden).map(|_| T::from_f64(1.0 + 0.25 * rng.normal())).collect();
    let out_init = vec![poison::<T>(); rows * o_stride];

    let x_dev = stream.clone_htod(&x_host).expect("htod");
    let x_view = x_dev.slice(x_offset..);
    let x = Matrix::from_buffer_strided(x_view, rows, hidden, x_stride).expect("x tensor");
    let w = stream.clone_htod(&w_host).expect("htod");
    let mut out = Matrix::from_host_strided(stream, &out_init, rows, hidden, o_stride).expect("out");
    let mut res = Matrix::from_host_strided(stream, &r_host, rows, hidden, r_stride).expect("residual");

    let x_dense = dense_rows(&x_host, rows, hidden, x_stride, x_offset);
    if add {
        lowp::rmsnorm::add_rmsnorm(lowp, stream, &x, &w, eps, &mut res, &mut out).expect("add_rmsnorm launch");
        let r_dense = dense_rows(&r_host, rows, hidden, r_stride, 0);
        let (want_res, want_y) = refn::add_rmsnorm(&x_dense, hidden, &r_dense, hidden, rows, hidden, &w_host, eps);
        let got_res = res.to_host(stream).expect("residual back");
        // The f32 sum rounded to T is the correctly rounded sum (f32 carries more than 2p + 2
        // bits for p = 8 and 11, so the double rounding is innocuous): bit for bit.
        for (i, (g, w)) in got_res.iter().zip(&want_res).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "add_rmsnorm {case:?}: residual element {i}: got {}, want {}",
                g.to_f64(),
                w.to_f64()
            );
        }
        // Residual padding untouched.
        let all_res = stream.clone_dtoh(res.buffer()).expect("dtoh");
        for r in 0..rows {
            for c in hidden..r_stride.min(all_res.len() - r * r_stride) {
                assert_eq!(
                    all_res[r * r_stride + c].to_bits(),
                    r_host[r * r_stride + c].to_bits(),
                    "residual padding written at row {r} col {c}"
                );
            }
        }
        check_outputs("add_rmsnorm", &case, &out.to_host(stream).expect("out back"), &want_y);
    } else {
        lowp::rmsnorm::rmsnorm(lowp, stream, &x, &w, eps, &mut out).expect("rmsnorm launch");
        let want = refn::rmsnorm(&x_dense, rows, hidden, hidden, &w_host, eps);
        check_outputs("rmsnorm", &case, &out.to_host(stream).expect("out back"), &want);
    }
    // Output padding still poison.
    let all_out = stream.clone_dtoh(out.buffer()).expect("dtoh");
    for r in 0..rows {
        for c in hidden..o_stride.min(all_out.len().saturating_sub(r * o_stride)) {
            assert_eq!(
                all_out[r * o_stride + c].to_bits(),
                poison::<T>().to_bits(),
                "out padding written at row {r} col {c}"
            );
        }
    }
}

fn sweep<T: Half>(test: &str, add: bool) {
    let lowp = common::gpu(test);
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh(test);
    for case in cases(&lowp) {
        run_case::<T>(&lowp, &stream, &mut rng, case, add);
    }
}

#[test]
fn rmsnorm_bf16_matches_reference() {
    sweep::<bf16>("rmsnorm_bf16_matches_reference", false);
}

#[test]
fn rmsnorm_f16_matches_reference() {
    sweep::<f16>("rmsnorm_f16_matches_reference", false);
}

#[test]
fn add_rmsnorm_bf16_matches_reference() {
    sweep::<bf16>("add_rmsnorm_bf16_matches_reference", true);
}

#[test]
fn add_rmsnorm_f16_matches_reference() {
    sweep::<f16>("add_rmsnorm_f16_matches_reference", true);
}

#[test]
fn rmsnorm_many_rows() {
    // More rows than one launch wave (on either device), odd count, realistic hidden size.
    let lowp = common::gpu("rmsnorm_many_rows");
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh("rmsnorm_many_rows");
    let rows = common::sized(&lowp, 20_001, 1_001);
    let case = Case { rows, hidden: 1024, x_stride: 1024, r_stride: 1024, o_stride: 1024, x_offset: 0 };
    run_case::<bf16>(&lowp, &stream, &mut rng, case, true);
}

#[test]
fn rmsnorm_rejects_bad_arguments_on_device() {
    let lowp = common::gpu("rmsnorm_rejects_bad_arguments_on_device");
    let stream = lowp.new_stream().expect("stream");
    let x = Matrix::<bf16>::zeros(&stream, 4, 64).expect("alloc");
    let w = stream.alloc_zeros::<bf16>(64).expect("alloc");
    let w_short = stream.alloc_zeros::<bf16>(63).expect("alloc");
    let mut out = Matrix::<bf16>::zeros(&stream, 4, 64).expect("alloc");
    let mut out_bad = Matrix::<bf16>::zeros(&stream, 5, 64).expect("alloc");
    let e = lowp::rmsnorm::rmsnorm(&lowp, &stream, &x, &w_short, 1e-6, &mut out).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "weight", .. }), "{e}");
    let e = lowp::rmsnorm::rmsnorm(&lowp, &stream, &x, &w, 1e-6, &mut out_bad).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "out", .. }), "{e}");
    let e = lowp::rmsnorm::rmsnorm(&lowp, &stream, &x, &w, f32::NAN, &mut out).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { arg: "eps", .. }), "{e}");
    let mut residual = Matrix::<bf16>::zeros(&stream, 4, 64).expect("alloc");
    let mut residual_bad = Matrix::<bf16>::zeros(&stream, 4, 32).expect("alloc");
    let e = lowp::rmsnorm::add_rmsnorm(&lowp, &stream, &x, &w, 1e-6, &mut residual_bad, &mut out).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "residual", .. }), "{e}");
    let e = lowp::rmsnorm::add_rmsnorm(&lowp, &stream, &x, &w_short, 1e-6, &mut residual, &mut out).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "weight", .. }), "{e}");
    let e = lowp::rmsnorm::add_rmsnorm(&lowp, &stream, &x, &w, -1.0, &mut residual, &mut out).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { arg: "eps", .. }), "{e}");
    let big = Matrix::<bf16>::zeros(&stream, 1, 16392).expect("alloc");
    let mut big_out = Matrix::<bf16>::zeros(&stream, 1, 16392).expect("alloc");
    let wbig = stream.alloc_zeros::<bf16>(16392).expect("alloc");
    let e = lowp::rmsnorm::rmsnorm(&lowp, &stream, &big, &wbig, 1e-6, &mut big_out).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    // A buffer too small for the claimed shape is refused when wrapped.
    let small = stream.alloc_zeros::<bf16>(100).expect("alloc");
    let e = Matrix::from_buffer(small, 2, 64).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "buf", required: 128, actual: 100 }), "{e}");
    // zero rows is a no-op, not an error
    let x0 = Matrix::<bf16>::zeros(&stream, 0, 64).expect("alloc");
    let mut o0 = Matrix::<bf16>::zeros(&stream, 0, 64).expect("alloc");
    lowp::rmsnorm::rmsnorm(&lowp, &stream, &x0, &w, 1e-6, &mut o0).expect("empty");
    stream.synchronize().expect("sync");
}
