//! The blockwise FP8 GEMM against a float64 reference from the dequantized inputs (GPU, Hopper).
//! Bounds (issue 3): relative Frobenius error ≤ 2e-3, and no element off by more than 1% of its
//! row's largest magnitude. Large shapes are checked on a sample of full rows.

mod common;

use half::bf16;
use lowp::fp8::{self, ScaleLayout};
use lowp::reference::fp8 as reff;
use lowp::{F8E4M3, Tensor};

use common::Rng;

/// A random finite E4M3 code (never NaN), magnitudes spread over the format.
fn code(rng: &mut Rng) -> u8 {
    loop {
        let c = rng.next_u64() as u8;
        if c & 0x7f != 0x7f {
            return c;
        }
    }
}

fn scale(rng: &mut Rng) -> f32 {
    2f32.powf(-(rng.uniform() as f32) * 12.0) / 448.0 * (1.0 + rng.uniform() as f32)
}

#[test]
fn reference_gemm_row_matches_a_direct_sum() {
    let mut rng = Rng::fresh("reference_gemm_row_matches_a_direct_sum");
    let (m, n, k) = (3, 130, 256);
    let a: Vec<u8> = (0..m * k).map(|_| code(&mut rng)).collect();
    let b: Vec<u8> = (0..n * k).map(|_| code(&mut rng)).collect();
    let sa: Vec<f32> = (0..m * 2).map(|_| scale(&mut rng)).collect();
    let sb: Vec<f32> = (0..2 * 2).map(|_| scale(&mut rng)).collect();
    let e = lowp::reference::convert::e4m3fn_to_f32;
    for r in 0..m {
        let row = reff::gemm_row(&a, r, |mm, g| sa[mm * 2 + g], &b, &sb, n, k);
        for j in [0, 1, 127, 128, 129] {
            let direct: f64 = (0..k).map(|c| e(a[r * k + c]) as f64 * sa[r * 2 + c / 128] as f64 * e(b[j * k + c]) as f64 * sb[(j / 128) * 2 + c / 128] as f64).sum();
            approx::assert_relative_eq!(row[j], direct, max_relative = 1e-12, epsilon = 1e-300);
        }
    }
}

fn gemm_case(lowp: &lowp::Lowp, rng: &mut Rng, m: usize, n: usize, k: usize, layout_m_major: bool) {
    let stream = lowp.new_stream().expect("stream");
    let g = k / 128;
    let a: Vec<u8> = (0..m * k).map(|_| code(rng)).collect();
    let b: Vec<u8> = (0..n * k).map(|_| code(rng)).collect();
    let sa_rm: Vec<f32> = (0..m * g).map(|_| scale(rng)).collect();
    let sb: Vec<f32> = (0..n.div_ceil(128) * g).map(|_| scale(rng)).collect();
    let (layout, sa_dev_host) = if layout_m_major {
        let ld = fp8::m_major_ld(m);
        let mut v = vec![0f32; ld * g];
        for r in 0..m {
            for c in 0..g {
                v[c * ld + r] = sa_rm[r * g + c];
            }
        }
        (ScaleLayout::MMajor { ld }, v)
    } else {
        (ScaleLayout::RowMajor, sa_rm.clone())
    };
    let to8 = |v: &[u8]| v.iter().map(|&c| F8E4M3(c)).collect::<Vec<_>>();
    let a_d = Tensor::from_host(&stream, &to8(&a), m, k).expect("a");
    let b_d = Tensor::from_host(&stream, &to8(&b), n, k).expect("b");
    let sa_d = stream.clone_htod(&sa_dev_host).expect("sa");
    let sb_d = Tensor::from_host(&stream, &sb, n.div_ceil(128), g).expect("sb");
    let mut d = Tensor::from_host(&stream, &vec![bf16::from_bits(common::POISON16); m * n], m, n).expect("d");
    fp8::blockwise_gemm(lowp, &stream, &a_d, &sa_d, layout, &b_d, &sb_d, &mut d).expect("gemm");
    let got = d.to_host(&stream).expect("d back");

    let rows: Vec<usize> = if m <= 16 { (0..m).collect() } else { let mut r: Vec<usize> = (0..12).map(|_| rng.below(m as u64) as usize).collect(); r.extend([0, m - 1]); r };
    let (mut err2, mut ref2) = (0.0f64, 0.0f64);
    for &r in &rows {
        let want = reff::gemm_row(&a, r, |mm, gg| sa_rm[mm * g + gg], &b, &sb, n, k);
        let row_max = want.iter().fold(0.0f64, |x, v| x.max(v.abs()));
        for j in 0..n {
            let v = got[r * n + j].to_f64();
            assert!(!v.is_nan(), "m {m} n {n} k {k}: d[{r}, {j}] not written");
            let e = (v - want[j]).abs();
            assert!(e <= 0.01 * row_max, "m {m} n {n} k {k}: d[{r}, {j}] = {v}, reference {} (row max {row_max})", want[j]);
            err2 += e * e;
            ref2 += want[j] * want[j];
        }
    }
    let rel = (err2 / ref2).sqrt();
    assert!(rel <= 2e-3, "m {m} n {n} k {k}: relative Frobenius error {rel:e}");
}

#[test]
fn blockwise_gemm_matches_reference_over_the_issue_sweep() {
    let Some(lowp) = common::gpu("blockwise_gemm_matches_reference_over_the_issue_sweep") else { return };
    if lowp.arch() != lowp::Arch::Sm90a {
        eprintln!("SKIP blockwise_gemm_matches_reference_over_the_issue_sweep: {} is not compute capability 9.0", lowp.device_name());
        return;
    }
    let mut rng = Rng::fresh("blockwise_gemm_matches_reference_over_the_issue_sweep");
    for m in [1, 7, 64, 128, 1000, 4096] {
        for n in [128, 2112, 7168] {
            for k in [128, 2048, 7168] {
                gemm_case(&lowp, &mut rng, m, n, k, (m + n + k) % 2 == 0);
            }
        }
    }
}

#[test]
fn blockwise_gemm_handles_ragged_edges_and_both_scale_layouts() {
    let Some(lowp) = common::gpu("blockwise_gemm_handles_ragged_edges") else { return };
    if lowp.arch() != lowp::Arch::Sm90a {
        return;
    }
    let mut rng = Rng::fresh("blockwise_gemm_handles_ragged_edges");
    for (m, n, k) in [(129, 130, 256), (33, 8, 384), (257, 1000, 1152), (300, 2, 128)] {
        gemm_case(&lowp, &mut rng, m, n, k, true);
        gemm_case(&lowp, &mut rng, m, n, k, false);
    }
}

#[test]
fn blockwise_gemm_is_unsupported_off_hopper_and_validates_shapes() {
    let Some(lowp) = common::gpu("blockwise_gemm_is_unsupported_off_hopper") else { return };
    let stream = lowp.new_stream().expect("stream");
    let a = Tensor::<F8E4M3>::zeros(&stream, 4, 256).expect("a");
    let b = Tensor::<F8E4M3>::zeros(&stream, 8, 256).expect("b");
    let sa = stream.alloc_zeros::<f32>(8).expect("sa");
    let sb = Tensor::<f32>::zeros(&stream, 1, 2).expect("sb");
    let mut d = Tensor::<bf16>::zeros(&stream, 4, 8).expect("d");
    let r = fp8::blockwise_gemm(&lowp, &stream, &a, &sa, ScaleLayout::RowMajor, &b, &sb, &mut d);
    if lowp.arch() == lowp::Arch::Sm90a {
        r.expect("valid small GEMM");
        let mut d_bad = Tensor::<bf16>::zeros(&stream, 4, 9).expect("d");
        let e = fp8::blockwise_gemm(&lowp, &stream, &a, &sa, ScaleLayout::RowMajor, &b, &sb, &mut d_bad).unwrap_err();
        assert!(matches!(e, lowp::Error::Shape { arg: "d", .. }), "{e}");
    } else {
        let e = r.unwrap_err();
        assert!(matches!(e, lowp::Error::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("9.0"), "{e}");
    }
}

/// Diagnostic for the kernel's index mappings (descriptors, swizzle, fragment layout, tile
/// order): A is a permutation matrix, so D must be a permuted copy of B's rows (in E4M3 values),
/// with unit scales. A mismatch is reported as "d[m, n] holds B[?, ?]" by searching where the
/// value came from, which names the wrong mapping directly.
#[test]
fn blockwise_gemm_permutation_probe() {
    let Some(lowp) = common::gpu("blockwise_gemm_permutation_probe") else { return };
    if lowp.arch() != lowp::Arch::Sm90a {
        return;
    }
    let stream = lowp.new_stream().expect("stream");
    let (m, n, k) = (256, 256, 256);
    let one = lowp::reference::convert::f32_to_e4m3fn_sat(1.0);
    // row r of A selects column perm(r) of K: d[r, j] = B[j, perm(r)]
    let perm = |r: usize| (r * 37 + 11) % k;
    let mut a = vec![0u8; m * k];
    for r in 0..m {
        a[r * k + perm(r)] = one;
    }
    // B[j, c]: a value that encodes (j, c) uniquely within E4M3's exact integers (±1..±448 grid)
    let mut rng = Rng::fresh("blockwise_gemm_permutation_probe");
    let b: Vec<u8> = (0..n * k).map(|_| code(&mut rng)).collect();
    let to8 = |v: &[u8]| v.iter().map(|&c| F8E4M3(c)).collect::<Vec<_>>();
    let a_d = Tensor::from_host(&stream, &to8(&a), m, k).expect("a");
    let b_d = Tensor::from_host(&stream, &to8(&b), n, k).expect("b");
    let sa = stream.clone_htod(&vec![1.0f32; m * (k / 128)]).expect("sa");
    let sb = Tensor::from_host(&stream, &vec![1.0f32; (n / 128) * (k / 128)], n / 128, k / 128).expect("sb");
    let mut d = Tensor::from_host(&stream, &vec![bf16::from_bits(common::POISON16); m * n], m, n).expect("d");
    fp8::blockwise_gemm(&lowp, &stream, &a_d, &sa, ScaleLayout::RowMajor, &b_d, &sb, &mut d).expect("gemm");
    let got = d.to_host(&stream).expect("d back");
    let e = lowp::reference::convert::e4m3fn_to_f32;
    let mut wrong = Vec::new();
    for r in 0..m {
        for j in 0..n {
            let want = bf16::from_f32(e(b[j * k + perm(r)]));
            if got[r * n + j].to_bits() != want.to_bits() && wrong.len() < 12 {
                let v = got[r * n + j].to_f32();
                let from: Vec<(usize, usize)> = (0..n * k).filter(|&i| bf16::from_f32(e(b[i])).to_f32() == v).take(3).map(|i| (i / k, i % k)).collect();
                wrong.push(format!("d[{r}, {j}] = {v} (want B[{j}, {}] = {}; B[n, k] holding that value: {from:?})", perm(r), want.to_f32()));
            }
        }
    }
    assert!(wrong.is_empty(), "permutation probe failed:\n{}", wrong.join("\n"));
}
