//! Blockwise FP8 quantizers: the device arithmetic (`kernels-gpu/src/fp8/math.rs`, compiled
//! here) and the reference on the CPU, then the kernels against the reference bit for bit (on a
//! GPU, or on the simulator where there is none, with fewer rows and columns of the same kinds).

mod common;

// The device's arithmetic, compiled for the host: `math` reaches its sibling as `super::soft`.
#[path = "../kernels-gpu/src/fp8/math.rs"]
#[allow(dead_code)]
mod math;
#[path = "../kernels-gpu/src/prim/soft.rs"]
#[allow(dead_code)]
mod soft;

use half::{bf16, f16};
use lowp::fp8;
use lowp::reference::convert as cv;
use lowp::reference::fp8 as reff;
use lowp::{F8E4M3, Matrix, ScaleLayout, ScaleRounding, Scales, m_major_ld};

use common::Rng;

/// A random group value: mostly normal, with occasional subnormals, huge values and zeros.
fn value(rng: &mut Rng) -> f32 {
    match rng.below(50) {
        0 => 0.0,
        1 => (rng.normal() * 1e-8) as f32,
        2 => (rng.normal() * 1e4) as f32,
        _ => (rng.normal() * 2f64.powi(rng.below(30) as i32 - 15)) as f32,
    }
}

#[test]
fn device_group_scale_matches_the_reference() {
    let mut rng = Rng::fresh("device_group_scale_matches_the_reference");
    let mut specials =
        vec![0.0f32, 1e-30, 1e-4, 9.99e-5, 448.0, 1.0, f32::MAX, f32::INFINITY, f32::NAN, f32::MIN_POSITIVE];
    specials.extend((0..1_000_000).map(|_| f32::from_bits(rng.next_u64() as u32 & 0x7fff_ffff)));
    for a in specials {
        for rounding in [ScaleRounding::Exact, ScaleRounding::Ceil] {
            let ue8m0 = rounding == ScaleRounding::Ceil;
            let (s, m) = math::group_scale(a, ue8m0);
            let (rs, rm) =
                (reff::scale(a, rounding).expect("scale"), reff::multiplier(a, rounding).expect("multiplier"));
            assert!(
                s.to_bits() == rs.to_bits() || (s.is_nan() && rs.is_nan()),
                "scale({a:e}, {ue8m0}): {s:e} vs {rs:e}"
            );
            assert!(
                m.to_bits() == rm.to_bits() || (m.is_nan() && rm.is_nan()),
                "mult({a:e}, {ue8m0}): {m:e} vs {rm:e}"
            );
            if ue8m0 && a.is_finite() {
                assert_eq!(s.to_bits() & 0x7f_ffff, 0, "UE8M0 scale {s:e} is not a power of two");
                assert!(s >= a.max(1e-4) / 448.0, "UE8M0 scale {s:e} rounds down for amax {a:e}");
            }
        }
    }
}

#[test]
fn reference_quantization_bounds_the_error_and_saturates_nothing() {
    let mut rng = Rng::fresh("reference_quantization_bounds_the_error");
    let (m, k) = (9, 512);
    let x: Vec<f32> = (0..m * k).map(|_| value(&mut rng)).collect();
    for rounding in [ScaleRounding::Exact, ScaleRounding::Ceil] {
        let (q, s) = reff::quantize_per_token_group(&x, m, k, rounding).expect("reference");
        let back = reff::dequantize(&q, m, k, &s, 1);
        for r in 0..m {
            for c in 0..k {
                let (v, b) = (x[r * k + c], back[r * k + c]);
                let scale = s[r * (k / 128) + c / 128];
                // half an E4M3 ulp (2^-4 relative) of the value, or the subnormal step of the group
                let tol = v.abs() as f64 * 2f64.powi(-4) + scale as f64 * 2f64.powi(-10);
                assert!(
                    ((v - b) as f64).abs() <= tol,
                    "x[{r},{c}] = {v:e} came back {b:e} (scale {scale:e}, {rounding:?})"
                );
                assert!(cv::e4m3fn_to_f32(q[r * k + c]).abs() <= 448.0);
            }
        }
    }
    // a group's largest magnitude lands on ±448 exactly with the float recipe
    let mut g = vec![0.5f32; 128];
    g[17] = -3.0;
    let (q, s) = reff::quantize_per_token_group(&g, 1, 128, ScaleRounding::Exact).expect("reference");
    assert_eq!(q[17], cv::f32_to_e4m3fn_sat(-448.0));
    assert_eq!(s[0], 3.0 / 448.0);
    // a rounding the FP8 recipe does not take is refused, as the quantizers refuse it
    let floor = ScaleRounding::Floor;
    for e in [
        reff::quantize_per_token_group(&g, 1, 128, floor).unwrap_err(),
        reff::quantize_per_block(&g, 1, 128, floor).unwrap_err(),
        reff::scale(1.0, floor).unwrap_err(),
        reff::multiplier(1.0, floor).unwrap_err(),
    ] {
        assert!(
            matches!(&e, lowp::Error::InvalidValue { arg: "rounding", actual, .. } if actual == "ScaleRounding::Floor"),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// GPU

fn random_matrix(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| value(rng)).collect()
}

fn to_t<T: lowp::Float>(v: &[f32]) -> Vec<T> {
    v.iter()
        .map(|&x| {
            let bits: Vec<u8> = match std::mem::size_of::<T>() {
                4 => x.to_ne_bytes().to_vec(),
                _ if T::DTYPE == lowp::DType::Bf16 => bf16::from_f32(x).to_bits().to_ne_bytes().to_vec(),
                _ => f16::from_f32(x).to_bits().to_ne_bytes().to_vec(),
            };
            bytemuck::pod_read_unaligned::<T>(&bits)
        })
        .collect()
}

fn as_f32<T: lowp::Float>(v: &[T]) -> Vec<f32> {
    v.iter()
        .map(|x| {
            let b = bytemuck::bytes_of(x);
            match b.len() {
                4 => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                _ if T::DTYPE == lowp::DType::Bf16 => bf16::from_bits(u16::from_ne_bytes([b[0], b[1]])).to_f32(),
                _ => f16::from_bits(u16::from_ne_bytes([b[0], b[1]])).to_f32(),
            }
        })
        .collect()
}

/// A dequantized value against the reference's f32: the same bf16 bits, or both NaN (a group
/// holding ±Inf dequantizes to NaN, whose sign and payload the reference does not pin down).
fn same_bf16(got: bf16, want: f32) -> bool {
    got.to_bits() == bf16::from_f32(want).to_bits() || (got.is_nan() && want.is_nan())
}

fn group_case<T: lowp::Float>(
    lowp: &lowp::Lowp,
    rng: &mut Rng,
    m: usize,
    k: usize,
    pad: usize,
    layout: ScaleLayout,
    rounding: ScaleRounding,
) {
    let stream = lowp.new_stream().expect("stream");
    let stride = k + pad;
    let host_f32 = random_matrix(rng, m * stride);
    let host: Vec<T> = to_t(&host_f32);
    let exact = as_f32(&host); // the values the kernel sees
    let x = Matrix::from_host_strided(&stream, &host, m, k, stride).expect("x");
    let mut q = Matrix::from_host(&stream, &vec![F8E4M3::from_bits(0xa5); m * k], m, k).expect("q");
    let groups = k / 128;
    let slen = match layout {
        ScaleLayout::RowMajor { ld } => m * ld,
        ScaleLayout::MMajor { ld } => ld * groups,
        _ => unreachable!("the per-token-group scales are row-major or M-major"),
    };
    let buf = stream.clone_htod(&vec![f32::from_bits(0x7fa5_a5a5); slen]).expect("scales");
    let mut s = Scales::from_buffer(buf, m, groups, layout).expect("scales");
    fp8::quantize_per_token_group(lowp, &stream, &x, rounding, &mut q, &mut s).expect("quantize");
    let dense: Vec<f32> = (0..m).flat_map(|r| exact[r * stride..r * stride + k].to_vec()).collect();
    let (want_q, want_s) = reff::quantize_per_token_group(&dense, m, k, rounding).expect("reference");
    let got_q = q.to_host(&stream).expect("q back");
    let got_s = s.to_host_raw(&stream).expect("s back");
    let case = format!("{} m {m} k {k} pad {pad} {layout:?} {rounding:?}", T::DTYPE);
    for i in 0..m * k {
        assert_eq!(got_q[i].to_bits(), want_q[i], "{case}: code {i} ({:e})", dense[i]);
    }
    for r in 0..m {
        for g in 0..groups {
            let at = match layout {
                ScaleLayout::RowMajor { ld } => r * ld + g,
                ScaleLayout::MMajor { ld } => g * ld + r,
                _ => unreachable!(),
            };
            assert_eq!(got_s[at].to_bits(), want_s[r * groups + g].to_bits(), "{case}: scale ({r}, {g})");
        }
    }
    // the padding of the layout's ld is never written
    let padding: Vec<(usize, usize, usize)> = match layout {
        ScaleLayout::MMajor { ld } => (0..groups).flat_map(|g| (m..ld).map(move |r| (r, g, g * ld + r))).collect(),
        ScaleLayout::RowMajor { ld } => (0..m).flat_map(|r| (groups..ld).map(move |g| (r, g, r * ld + g))).collect(),
        _ => unreachable!(),
    };
    for (r, g, at) in padding {
        assert_eq!(got_s[at].to_bits(), 0x7fa5_a5a5, "{case}: padding scale ({r}, {g}) written");
    }
    // round trip through the dequantizer
    let mut out = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); m * k], m, k).expect("out");
    fp8::dequantize_per_token_group(lowp, &stream, &q, &s, &mut out).expect("dequantize");
    let back = out.to_host(&stream).expect("out back");
    let want = reff::dequantize(&want_q, m, k, &want_s, 1);
    for i in 0..m * k {
        assert!(
            same_bf16(back[i], want[i]),
            "{case}: dequantized {i}: got {:#06x}, want {:#06x}",
            back[i].to_bits(),
            bf16::from_f32(want[i]).to_bits()
        );
    }
}

#[test]
fn per_token_group_quantization_matches_reference() {
    let lowp = common::gpu("per_token_group_quantization_matches_reference");
    let mut rng = Rng::fresh("per_token_group_quantization_matches_reference");
    // one row, a few rows, a wide K (56 groups), many rows, and turns of the grid-stride loop
    // whose positions wrap rows by 2 and 3 groups per row (1 and 3 groups per row, more groups
    // than the simulator's 16 CTAs take in a turn); the simulator's row counts are not multiples
    // of 4, so its M-major scales also have padding rows
    let shapes = common::sized(
        &lowp,
        [(1, 128), (7, 2048), (64, 7168), (1000, 512), (4096, 256), (60_001, 128), (70_001, 384)],
        [(1, 128), (7, 2048), (13, 7168), (130, 512), (257, 256), (601, 128), (701, 384)],
    );
    for (m, k) in shapes {
        for rounding in [ScaleRounding::Exact, ScaleRounding::Ceil] {
            group_case::<bf16>(&lowp, &mut rng, m, k, 0, ScaleLayout::RowMajor { ld: k / 128 }, rounding);
            group_case::<bf16>(&lowp, &mut rng, m, k, 0, ScaleLayout::MMajor { ld: m_major_ld(m) }, rounding);
        }
    }
    group_case::<f16>(&lowp, &mut rng, 33, 1024, 0, ScaleLayout::RowMajor { ld: 8 }, ScaleRounding::Exact);
    group_case::<f32>(&lowp, &mut rng, 33, 1024, 0, ScaleLayout::MMajor { ld: 40 }, ScaleRounding::Exact);
    group_case::<bf16>(&lowp, &mut rng, 17, 384, 3, ScaleLayout::RowMajor { ld: 3 }, ScaleRounding::Exact); // scalar path
    group_case::<f32>(&lowp, &mut rng, 5, 256, 1, ScaleLayout::RowMajor { ld: 2 }, ScaleRounding::Ceil);
    group_case::<bf16>(&lowp, &mut rng, 9, 256, 0, ScaleLayout::RowMajor { ld: 5 }, ScaleRounding::Exact); // padded ld
}

fn block_case<T: lowp::Float>(
    lowp: &lowp::Lowp,
    rng: &mut Rng,
    n: usize,
    k: usize,
    pad: usize,
    rounding: ScaleRounding,
) {
    let stream = lowp.new_stream().expect("stream");
    let stride = k + pad;
    let host: Vec<T> = to_t(&random_matrix(rng, n * stride));
    let exact = as_f32(&host);
    let w = Matrix::from_host_strided(&stream, &host, n, k, stride).expect("w");
    let mut q = Matrix::from_host(&stream, &vec![F8E4M3::from_bits(0xa5); n * k], n, k).expect("q");
    let (rb, cb) = (n.div_ceil(128), k / 128);
    let mut s = Scales::row_major(stream.clone_htod(&vec![f32::NAN; rb * cb]).expect("s"), rb, cb).expect("s");
    fp8::quantize_per_block(lowp, &stream, &w, rounding, &mut q, &mut s).expect("quantize");
    let dense: Vec<f32> = (0..n).flat_map(|r| exact[r * stride..r * stride + k].to_vec()).collect();
    let (want_q, want_s) = reff::quantize_per_block(&dense, n, k, rounding).expect("reference");
    let case = format!("{} n {n} k {k} pad {pad} {rounding:?}", T::DTYPE);
    let got_q = q.to_host(&stream).expect("q back");
    for i in 0..n * k {
        assert_eq!(got_q[i].to_bits(), want_q[i], "{case}: code {i}");
    }
    let got_s = s.to_host_raw(&stream).expect("s back");
    for i in 0..rb * cb {
        assert_eq!(got_s[i].to_bits(), want_s[i].to_bits(), "{case}: scale {i}");
    }
    let mut out = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); n * k], n, k).expect("out");
    fp8::dequantize_per_block(lowp, &stream, &q, &s, &mut out).expect("dequantize");
    let back = out.to_host(&stream).expect("back");
    let want = reff::dequantize(&want_q, n, k, &want_s, 128);
    for i in 0..n * k {
        assert!(
            same_bf16(back[i], want[i]),
            "{case}: dequantized {i}: got {:#06x}, want {:#06x}",
            back[i].to_bits(),
            bf16::from_f32(want[i]).to_bits()
        );
    }
}

#[test]
fn per_block_quantization_matches_reference() {
    let lowp = common::gpu("per_block_quantization_matches_reference");
    let mut rng = Rng::fresh("per_block_quantization_matches_reference");
    // one whole tile; many tiles with a half-height last row of tiles; a 44-row last row of
    // tiles; fewer rows than one tile
    let shapes = common::sized(
        &lowp,
        [(128, 128), (2112, 1024), (300, 7168 / 4), (7, 256)],
        [(128, 128), (192, 512), (300, 384), (7, 256)],
    );
    for (n, k) in shapes {
        for rounding in [ScaleRounding::Exact, ScaleRounding::Ceil] {
            block_case::<bf16>(&lowp, &mut rng, n, k, 0, rounding);
        }
    }
    block_case::<f32>(&lowp, &mut rng, 130, 256, 4, ScaleRounding::Exact);
    block_case::<f16>(&lowp, &mut rng, 129, 384, 1, ScaleRounding::Exact); // scalar path
}

#[test]
fn fp8_quantizers_reject_bad_shapes() {
    let lowp = common::gpu("fp8_quantizers_reject_bad_shapes");
    let stream = lowp.new_stream().expect("stream");
    let x = Matrix::<bf16>::zeros(&stream, 4, 200).expect("x");
    let mut q = Matrix::<F8E4M3>::zeros(&stream, 4, 200).expect("q");
    let mut s = Scales::row_major(stream.alloc_zeros::<f32>(8).expect("s"), 4, 2).expect("s");
    let e = fp8::quantize_per_token_group(&lowp, &stream, &x, ScaleRounding::Exact, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, lowp::Error::Shape { arg: "x", .. }), "{e}");
    let w = Matrix::<bf16>::zeros(&stream, 300, 256).expect("w");
    let mut q = Matrix::<F8E4M3>::zeros(&stream, 300, 256).expect("q");
    let mut s = Scales::row_major(stream.alloc_zeros::<f32>(4).expect("s"), 2, 2).expect("s");
    let e = fp8::quantize_per_block(&lowp, &stream, &w, ScaleRounding::Exact, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, lowp::Error::Shape { arg: "scales", .. }), "{e}");
}

/// Scale layouts an op does not take are `Error::Layout`, `ScaleRounding::Floor` is
/// `Error::InvalidValue`; nothing is written.
#[test]
fn fp8_ops_reject_other_layouts_and_rounding() {
    let lowp = common::gpu("fp8_ops_reject_other_layouts_and_rounding");
    let stream = lowp.new_stream().expect("stream");
    let (m, k) = (4, 256);
    let x = Matrix::<bf16>::zeros(&stream, m, k).expect("x");
    let mut q = Matrix::from_host(&stream, &vec![F8E4M3::from_bits(0xa5); m * k], m, k).expect("q");
    let mut out = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); m * k], m, k).expect("out");
    let mut swizzled = Scales::<f32>::zeros(&stream, m, k / 128, ScaleLayout::Swizzled).expect("s");
    let e = fp8::quantize_per_token_group(&lowp, &stream, &x, ScaleRounding::Exact, &mut q, &mut swizzled).unwrap_err();
    assert!(matches!(e, lowp::Error::Layout { arg: "scales", actual: ScaleLayout::Swizzled, .. }), "{e}");
    let e = fp8::dequantize_per_token_group(&lowp, &stream, &q, &swizzled, &mut out).unwrap_err();
    assert!(matches!(e, lowp::Error::Layout { arg: "scales", .. }), "{e}");
    // per-block scales are row-major only
    let mut m_major = Scales::<f32>::zeros(&stream, 1, k / 128, ScaleLayout::MMajor { ld: 4 }).expect("s");
    let e = fp8::quantize_per_block(&lowp, &stream, &x, ScaleRounding::Exact, &mut q, &mut m_major).unwrap_err();
    assert!(matches!(e, lowp::Error::Layout { arg: "scales", actual: ScaleLayout::MMajor { ld: 4 }, .. }), "{e}");
    let e = fp8::dequantize_per_block(&lowp, &stream, &q, &m_major, &mut out).unwrap_err();
    assert!(matches!(e, lowp::Error::Layout { arg: "scales", .. }), "{e}");
    let mut s = Scales::<f32>::zeros(&stream, m, k / 128, ScaleLayout::RowMajor { ld: 2 }).expect("s");
    let e = fp8::quantize_per_token_group(&lowp, &stream, &x, ScaleRounding::Floor, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, lowp::Error::InvalidValue { arg: "rounding", .. }), "{e}");
    let mut s = Scales::<f32>::zeros(&stream, 1, k / 128, ScaleLayout::RowMajor { ld: 2 }).expect("s");
    let e = fp8::quantize_per_block(&lowp, &stream, &x, ScaleRounding::Floor, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, lowp::Error::InvalidValue { arg: "rounding", .. }), "{e}");
    assert!(q.to_host(&stream).expect("q").iter().all(|c| c.to_bits() == 0xa5), "a refused call wrote codes");
    assert!(
        out.to_host(&stream).expect("out").iter().all(|v| v.to_bits() == common::POISON16),
        "a refused call wrote out"
    );
}

// ---------------------------------------------------------------------------------------------
// Special values

fn special_bits<T: lowp::Float>(x: f32, raw16: Option<u16>) -> T {
    let b: Vec<u8> = match std::mem::size_of::<T>() {
        4 => x.to_ne_bytes().to_vec(),
        _ => match raw16 {
            Some(r) => r.to_ne_bytes().to_vec(),
            None if T::DTYPE == lowp::DType::Bf16 => bf16::from_f32(x).to_bits().to_ne_bytes().to_vec(),
            None => f16::from_f32(x).to_bits().to_ne_bytes().to_vec(),
        },
    };
    bytemuck::pod_read_unaligned::<T>(&b)
}
fn special_to_f32<T: lowp::Float>(x: &T) -> f32 {
    let b = bytemuck::bytes_of(x);
    match b.len() {
        4 => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        _ if T::DTYPE == lowp::DType::Bf16 => bf16::from_bits(u16::from_ne_bytes([b[0], b[1]])).to_f32(),
        _ => f16::from_bits(u16::from_ne_bytes([b[0], b[1]])).to_f32(),
    }
}

fn special_values<T: lowp::Float>(rng: &mut Rng, n: usize) -> Vec<T> {
    let bf = T::DTYPE == lowp::DType::Bf16;
    (0..n)
        .map(|_| {
            let r = rng.below(3000);
            match r {
                0 => special_bits::<T>(f32::NAN, Some(if bf { 0x7fc1 } else { 0x7e01 })),
                1 => special_bits::<T>(-f32::NAN, Some(if bf { 0xffc0 } else { 0xfe00 })),
                2 => special_bits::<T>(f32::from_bits(0x7f80_0001), Some(if bf { 0x7f81 } else { 0x7c01 })),
                3 => special_bits::<T>(f32::INFINITY, None),
                4 => special_bits::<T>(f32::NEG_INFINITY, None),
                5 => special_bits::<T>(-0.0, None),
                6 => special_bits::<T>(0.0, None),
                7 => special_bits::<T>(0.0, Some(0x8001)),
                8 => special_bits::<T>(1e-40, Some(0x007f)),
                _ => special_bits::<T>((rng.normal() * 2f64.powi(rng.below(30) as i32 - 15)) as f32, None),
            }
        })
        .collect()
}

fn same_scale_or_nan(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn special_group<T: lowp::Float>(
    lowp: &lowp::Lowp,
    rng: &mut Rng,
    m: usize,
    k: usize,
    pad: usize,
    rounding: ScaleRounding,
) {
    let stream = lowp.new_stream().expect("special-values case");
    let stride = k + pad;
    let host: Vec<T> = special_values(rng, m * stride);
    let x = Matrix::from_host_strided(&stream, &host, m, k, stride).expect("special-values case");
    let mut q = Matrix::from_host(&stream, &vec![F8E4M3::from_bits(0xa5); m * k], m, k).expect("special-values case");
    let g = k / 128;
    let buf = stream.clone_htod(&vec![0f32; m * g]).expect("special-values case");
    let mut s = Scales::from_buffer(buf, m, g, ScaleLayout::RowMajor { ld: g }).expect("special-values case");
    fp8::quantize_per_token_group(lowp, &stream, &x, rounding, &mut q, &mut s).expect("special-values case");
    let dense: Vec<f32> =
        (0..m).flat_map(|r| host[r * stride..r * stride + k].iter().map(special_to_f32).collect::<Vec<_>>()).collect();
    let (wq, ws) = reff::quantize_per_token_group(&dense, m, k, rounding).expect("reference");
    let gq = q.to_host(&stream).expect("special-values case");
    let gs = s.to_host_raw(&stream).expect("special-values case");
    for i in 0..m * k {
        assert_eq!(gq[i].to_bits(), wq[i], "{} group code {i} ({:e})", T::DTYPE, dense[i]);
    }
    for i in 0..m * g {
        assert!(same_scale_or_nan(gs[i], ws[i]), "{} group scale {i}: {:e} vs {:e}", T::DTYPE, gs[i], ws[i]);
    }
}

fn special_block<T: lowp::Float>(
    lowp: &lowp::Lowp,
    rng: &mut Rng,
    n: usize,
    k: usize,
    pad: usize,
    rounding: ScaleRounding,
) {
    let stream = lowp.new_stream().expect("special-values case");
    let stride = k + pad;
    let mut host: Vec<T> = special_values(rng, n * stride);
    // keep some tiles free of specials
    for v in host.iter_mut().take(stride * 128.min(n)) {
        if !special_to_f32(v).is_finite() {
            *v = special_bits::<T>(1.0, None);
        }
    }
    let w = Matrix::from_host_strided(&stream, &host, n, k, stride).expect("special-values case");
    let mut q = Matrix::from_host(&stream, &vec![F8E4M3::from_bits(0xa5); n * k], n, k).expect("special-values case");
    let (rb, cb) = (n.div_ceil(128), k / 128);
    let mut s = Scales::row_major(stream.clone_htod(&vec![0f32; rb * cb]).expect("special-values case"), rb, cb)
        .expect("special-values case");
    fp8::quantize_per_block(lowp, &stream, &w, rounding, &mut q, &mut s).expect("special-values case");
    let dense: Vec<f32> =
        (0..n).flat_map(|r| host[r * stride..r * stride + k].iter().map(special_to_f32).collect::<Vec<_>>()).collect();
    let (wq, ws) = reff::quantize_per_block(&dense, n, k, rounding).expect("reference");
    let gq = q.to_host(&stream).expect("special-values case");
    for i in 0..n * k {
        assert_eq!(gq[i].to_bits(), wq[i], "{} block code {i}", T::DTYPE);
    }
    let gs = s.to_host_raw(&stream).expect("special-values case");
    for i in 0..rb * cb {
        assert!(same_scale_or_nan(gs[i], ws[i]), "{} block scale {i}: {:e} vs {:e}", T::DTYPE, gs[i], ws[i]);
    }
}

/// NaN (both signs, quiet and signalling payloads), ±Inf, ±0, subnormals among normal values:
/// codes bit for bit, scales bit for bit or both NaN (the device's NaN is canonical, the
/// reference keeps the input's payload), for every input type and both roundings.
#[test]
fn quantizers_handle_nan_inf_zeros_and_subnormals() {
    let lowp = common::gpu("quantizers_handle_nan_inf_zeros_and_subnormals");
    let mut rng = Rng::fresh("quantizers_handle_nan_inf_zeros_and_subnormals");
    for rounding in [ScaleRounding::Exact, ScaleRounding::Ceil] {
        special_group::<bf16>(&lowp, &mut rng, 37, 1024, 0, rounding);
        special_group::<f16>(&lowp, &mut rng, 37, 1024, 0, rounding);
        special_group::<f32>(&lowp, &mut rng, 37, 1024, 0, rounding);
        special_group::<bf16>(&lowp, &mut rng, 9, 256, 3, rounding);
        special_block::<bf16>(&lowp, &mut rng, 300, 384, 0, rounding);
        special_block::<f16>(&lowp, &mut rng, 300, 384, 0, rounding);
        special_block::<f32>(&lowp, &mut rng, 300, 384, 0, rounding);
        special_block::<f16>(&lowp, &mut rng, 130, 256, 1, rounding);
    }
}
