//! Grouped (MoE) GEMM, bf16 and blockwise FP8, contiguous and masked layouts, against a per-group
//! float64 reference (Hopper). Bounds as the dense FP8 GEMM (`tests/fp8_gemm.rs` explains them):
//! every element within 1% of its row's largest magnitude of the exact reference, and the error
//! beyond the bf16 output rounding with a relative Frobenius norm ≤ 1e-3, 1e-6 on the simulator
//! (bf16: f32 accumulation across all of K, in the tensor core). Rows outside every group keep
//! their poison, and valid offsets never raise the error flag.
//!
//! The simulator runs the GPU cases' kinds at CPU sizes: many experts with few tokens, empty,
//! single-token and uneven groups, three tokens in all, groups clamped by the masked layout's
//! `max_m`, an N that is not a multiple of the 128-wide tile (expert g's last B tile then holds
//! rows of expert g + 1, loaded but never stored), more k-blocks than pipeline stages, both
//! activation-scale layouts and power-of-two (UE8M0) scales, and bad device-side offsets (flagged
//! and clamped). Grids are `min(tiles, SM count)`: CI runs these tests again with
//! `LOWP_SIM_SMS=1` and `LOWP_SIM_SMS=3`.

mod common;

use half::bf16;
use lowp::cudarc::driver::sys::CUstreamCaptureMode;
use lowp::fp8::ScaleLayout;
use lowp::grouped_gemm::{self as gg, GroupLayout};
use lowp::reference::convert::e4m3fn_to_f32;
use lowp::{ErrorFlag, F8E4M3, Matrix};

use common::Rng;

/// Group sizes: empty, single-token, uneven, and a Zipf-like tail.
fn sizes(rng: &mut Rng, experts: usize, total: usize) -> Vec<usize> {
    let weights: Vec<f64> = (0..experts).map(|e| 1.0 / (1.0 + e as f64).powf(1.1)).collect();
    let sum: f64 = weights.iter().sum();
    let mut s: Vec<usize> = weights.iter().map(|w| (w / sum * total as f64) as usize).collect();
    if experts > 3 {
        s[1] = 0; // an empty group
        s[2] = 1; // a single token
    }
    let used: usize = s.iter().sum();
    s[0] += total.saturating_sub(used);
    let i = rng.below(experts as u64) as usize;
    let j = rng.below(experts as u64) as usize;
    if s[i] >= 3 {
        s[i] -= 3;
        s[j] += 3;
    }
    s
}

/// The device table (contiguous: cumulative ends; masked: counts clamped to `max_m`) and each
/// group's row span `[start, end)` for group sizes `sz`.
fn group_table(sz: &[usize], masked: Option<usize>) -> (Vec<i32>, Vec<(usize, usize)>) {
    match masked {
        None => {
            let mut start = 0;
            let spans: Vec<(usize, usize)> = sz.iter().map(|s| { let sp = (start, start + s); start += s; sp }).collect();
            (spans.iter().map(|&(_, e)| e as i32).collect(), spans)
        }
        Some(m) => {
            let counts: Vec<usize> = sz.iter().map(|s| (*s).min(m)).collect();
            (counts.iter().map(|c| *c as i32).collect(), counts.iter().enumerate().map(|(g, c)| (g * m, g * m + c)).collect())
        }
    }
}

/// (row, group) pairs to compare: the first, middle and last row of every non-empty group.
fn rows_to_check(spans: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (g, &(a, b)) in spans.iter().enumerate() {
        for r in [a, (a + b) / 2, b.saturating_sub(1)] {
            if r >= a && r < b && !out.iter().any(|&(q, _)| q == r) {
                out.push((r, g));
            }
        }
    }
    out
}

/// |got − want| less half a bf16 unit at `want`, or 0 (`tests/fp8_gemm.rs`).
fn excess_over_rounding(got: f64, want: f64) -> f64 {
    let exponent = ((want.abs().to_bits() >> 52) as i32) - 1023; // of a normal f64 (never subnormal here)
    let half_unit = if want == 0.0 { 0.0 } else { 2f64.powi(exponent - 8) };
    ((got - want).abs() - half_unit).max(0.0)
}

fn check(lowp: &lowp::Lowp, what: &str, got: &[bf16], want: &[Vec<f64>], rows: &[usize], n: usize) {
    let (mut err2, mut ref2) = (0.0f64, 0.0f64);
    for (w, &r) in want.iter().zip(rows) {
        let row_max = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for j in 0..n {
            let v = got[r * n + j].to_f64();
            assert!(!v.is_nan(), "{what}: y[{r}, {j}] not written");
            assert!((v - w[j]).abs() <= 0.01 * row_max + 1e-30, "{what}: y[{r}, {j}] = {v}, reference {} (row max {row_max})", w[j]);
            err2 += excess_over_rounding(v, w[j]).powi(2);
            ref2 += w[j] * w[j];
        }
    }
    if ref2 > 0.0 {
        // as `excess_bound` in tests/fp8_gemm.rs: the simulator's wgmma rounds once to f32
        let (rel, bound) = ((err2 / ref2).sqrt(), common::gemm_bound(lowp));
        assert!(rel <= bound, "{what}: relative Frobenius error beyond the bf16 rounding {rel:e} (bound {bound:e})");
    }
}

/// Rows of each masked slab past its count keep the poison (the first column is enough: a tile
/// writes whole rows).
fn check_masked_rows(what: &str, got: &[bf16], spans: &[(usize, usize)], max_m: usize, n: usize) {
    for (g, &(_, b)) in spans.iter().enumerate() {
        if b < (g + 1) * max_m {
            assert_eq!(got[b * n].to_bits(), common::POISON16, "{what}: row {b} past the count of group {g} was written");
        }
    }
}

/// Row `r` (in expert `g`) of x · W[g]ᵀ from dequantized f64 rows.
fn ref_row(x: &dyn Fn(usize, usize) -> f64, w: &dyn Fn(usize, usize) -> f64, r: usize, g: usize, n: usize, k: usize) -> Vec<f64> {
    (0..n).map(|j| (0..k).map(|c| x(r, c) * w(g * n + j, c)).sum()).collect()
}

fn bf16_case(lowp: &lowp::Lowp, rng: &mut Rng, experts: usize, total: usize, n: usize, k: usize, masked: Option<usize>) {
    let stream = lowp.new_stream().expect("stream");
    let sz = sizes(rng, experts, total);
    let rows = masked.map_or(total, |m| experts * m);
    let x: Vec<bf16> = (0..rows * k).map(|_| bf16::from_f64(rng.normal())).collect();
    let w: Vec<bf16> = (0..experts * n * k).map(|_| bf16::from_f64(rng.normal() * 0.05)).collect();
    let x_d = Matrix::from_host(&stream, &x, rows, k).expect("x");
    let w_d = Matrix::from_host(&stream, &w, experts * n, k).expect("w");
    let mut y = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); rows * n], rows, n).expect("y");
    let (table, spans) = group_table(&sz, masked);
    let table_d = stream.clone_htod(&table).expect("table");
    let layout = match masked {
        None => GroupLayout::Contiguous { ends: table_d.as_view() },
        Some(m) => GroupLayout::Masked { counts: table_d.as_view(), max_m: m },
    };
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    gg::bf16_grouped_gemm(lowp, &stream, &x_d, &w_d, n, &layout, &mut y, Some(&mut flag)).expect("grouped gemm");
    let got = y.to_host(&stream).expect("y back");
    assert_eq!(flag.read(&stream).expect("flag"), 0, "valid offsets raised the flag");
    let xf = |r: usize, c: usize| x[r * k + c].to_f64();
    let wf = |r: usize, c: usize| w[r * k + c].to_f64();
    let rows_checked = rows_to_check(&spans);
    let want: Vec<Vec<f64>> = rows_checked.iter().map(|&(r, g)| ref_row(&xf, &wf, r, g, n, k)).collect();
    let rows_checked: Vec<usize> = rows_checked.iter().map(|&(r, _)| r).collect();
    let what = format!("bf16 E {experts} T {total} N {n} K {k} masked {masked:?}");
    check(lowp, &what, &got, &want, &rows_checked, n);
    // rows outside every group keep the poison (masked layout: past each count)
    if let Some(m) = masked {
        check_masked_rows(&what, &got, &spans, m, n);
    }
}

#[test]
fn bf16_grouped_gemm_matches_reference() {
    let test = "bf16_grouped_gemm_matches_reference";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let mut rng = Rng::fresh(test);
    let contiguous = common::sized(
        &lowp,
        [(8, 1000, 256, 512), (32, 777, 128, 256), (4, 3, 384, 192), (64, 4096, 512, 1024), (8, 1500, 2112, 1024)],
        [(8, 300, 256, 256), (32, 177, 128, 128), (4, 3, 384, 192), (16, 600, 256, 256), (6, 260, 200, 576)],
    );
    for (e, t, n, k) in contiguous {
        bf16_case(&lowp, &mut rng, e, t, n, k, None);
    }
    let masked = common::sized(&lowp, [(8, 400, 256, 512, 96), (16, 2000, 128, 256, 200)], [(8, 150, 256, 256, 40), (16, 400, 128, 128, 48)]);
    for (e, t, n, k, max_m) in masked {
        bf16_case(&lowp, &mut rng, e, t, n, k, Some(max_m));
    }
}

#[test]
fn fp8_grouped_gemm_matches_reference() {
    let test = "fp8_grouped_gemm_matches_reference";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let mut rng = Rng::fresh(test);
    // (experts, tokens, N, K, masked max_m, M-major activation scales, UE8M0 scales)
    let cases = common::sized(
        &lowp,
        [
            (8, 1000, 256, 512, None, false, false),
            (16, 555, 384, 256, None, true, false),
            (8, 300, 256, 384, Some(64), false, true),
            (8, 900, 2112, 1152, None, true, true),
        ],
        [
            (8, 200, 256, 256, None, false, false),
            (16, 155, 384, 128, None, true, false),
            (8, 120, 256, 256, Some(24), false, true),
            (6, 260, 200, 640, None, true, true),
        ],
    );
    for (experts, total, n, k, masked, m_major, ue8m0) in cases {
        let stream = lowp.new_stream().expect("stream");
        let sz = sizes(&mut rng, experts, total);
        let rows = masked.map_or(total, |m: usize| experts * m);
        let code = |rng: &mut Rng| loop { let c = rng.next_u64() as u8; if c & 0x7f != 0x7f { break c } };
        let x: Vec<u8> = (0..rows * k).map(|_| code(&mut rng)).collect();
        let w: Vec<u8> = (0..experts * n * k).map(|_| code(&mut rng)).collect();
        let (kb, nb) = (k / 128, n.div_ceil(128));
        // UE8M0: the scale the recipe makes for a group whose largest magnitude is 1..2
        let scale = |rng: &mut Rng| {
            let amax = 1.0 + rng.uniform() as f32;
            if ue8m0 { lowp::reference::fp8::scale(amax, true) } else { amax / 448.0 }
        };
        let sx: Vec<f32> = (0..rows * kb).map(|_| scale(&mut rng)).collect();
        let sw: Vec<f32> = (0..experts * nb * kb).map(|_| scale(&mut rng)).collect();
        let to8 = |v: &[u8]| v.iter().map(|&c| F8E4M3::from_bits(c)).collect::<Vec<_>>();
        let x_d = Matrix::from_host(&stream, &to8(&x), rows, k).expect("x");
        let w_d = Matrix::from_host(&stream, &to8(&w), experts * n, k).expect("w");
        let (sx_layout, sx_dev) = if m_major {
            // column c of the scales at c · ld, ld past the rows (padding never read)
            let ld = lowp::fp8::m_major_ld(rows + 1);
            let mut v = vec![0f32; ld * kb];
            for r in 0..rows {
                for c in 0..kb {
                    v[c * ld + r] = sx[r * kb + c];
                }
            }
            (ScaleLayout::MMajor { ld }, v)
        } else {
            (ScaleLayout::RowMajor, sx.clone())
        };
        let sx_d = stream.clone_htod(&sx_dev).expect("sx");
        let sw_d = Matrix::from_host(&stream, &sw, experts * nb, kb).expect("sw");
        let mut y = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); rows * n], rows, n).expect("y");
        let (table, spans) = group_table(&sz, masked);
        let table_d = stream.clone_htod(&table).expect("table");
        let layout = match masked {
            None => GroupLayout::Contiguous { ends: table_d.as_view() },
            Some(m) => GroupLayout::Masked { counts: table_d.as_view(), max_m: m },
        };
        let mut flag = ErrorFlag::new(&stream).expect("flag");
        gg::fp8_grouped_gemm(&lowp, &stream, &x_d, &sx_d, sx_layout, &w_d, &sw_d, n, &layout, &mut y, Some(&mut flag)).expect("gemm");
        let got = y.to_host(&stream).expect("y");
        assert_eq!(flag.read(&stream).expect("flag"), 0, "valid offsets raised the flag");
        let xf = |r: usize, c: usize| e4m3fn_to_f32(x[r * k + c]) as f64 * sx[r * kb + c / 128] as f64;
        // expert g's dequantized weights: row g·N + j, scale block (g·⌈N/128⌉ + j/128, c/128)
        let wf = |r: usize, c: usize| {
            let (g, j) = (r / n, r % n);
            e4m3fn_to_f32(w[r * k + c]) as f64 * sw[(g * nb + j / 128) * kb + c / 128] as f64
        };
        let rows_checked = rows_to_check(&spans);
        let want: Vec<Vec<f64>> = rows_checked.iter().map(|&(r, g)| ref_row(&xf, &wf, r, g, n, k)).collect();
        let rows_checked: Vec<usize> = rows_checked.iter().map(|&(r, _)| r).collect();
        let what = format!("fp8 E {experts} T {total} N {n} K {k} masked {masked:?} M-major scales {m_major} UE8M0 {ue8m0}");
        check(&lowp, &what, &got, &want, &rows_checked, n);
        if let Some(m) = masked {
            check_masked_rows(&what, &got, &spans, m, n);
        }
    }
}

#[test]
fn grouped_gemm_clamps_and_flags_bad_offsets() {
    let test = "grouped_gemm_clamps_and_flags_bad_offsets";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let stream = lowp.new_stream().expect("stream");
    let (rows, n, k, experts) = (300, 128, 128, 4);
    let x = Matrix::from_host(&stream, &vec![bf16::ONE; rows * k], rows, k).expect("x");
    let w = Matrix::from_host(&stream, &vec![bf16::ONE; experts * n * k], experts * n, k).expect("w");
    // Decreasing, past the row count, negative: each end is clamped into [previous end, rows],
    // so the groups cover rows [0, covered) and the rest keep the poison.
    for (table, covered) in [(vec![100i32, 50, 200, 300], 300), (vec![100, 200, 250, 100_000], 300), (vec![-5, 10, 20, 30], 30)] {
        let mut y = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); rows * n], rows, n).expect("y");
        let t = stream.clone_htod(&table).expect("table");
        let mut flag = ErrorFlag::new(&stream).expect("flag");
        gg::bf16_grouped_gemm(&lowp, &stream, &x, &w, n, &GroupLayout::Contiguous { ends: t.as_view() }, &mut y, Some(&mut flag)).expect("launch");
        assert_eq!(flag.read(&stream).expect("flag"), gg::GEMM_ERR_GROUP_BOUNDS, "offsets {table:?} not flagged");
        // every written value is a full dot product of ones: k
        for (i, v) in y.to_host(&stream).expect("y").into_iter().enumerate() {
            let want = if i / n < covered { bf16::from_f32(k as f32).to_bits() } else { common::POISON16 };
            assert_eq!(v.to_bits(), want, "offsets {table:?}: y[{}, {}] = {v}", i / n, i % n);
        }
    }
    // Masked counts outside [0, max_m] are clamped into it (slab g: rows g·max_m + [0, count)).
    let max_m = rows / experts;
    let x = Matrix::from_host(&stream, &vec![bf16::ONE; experts * max_m * k], experts * max_m, k).expect("x");
    let counts = [-1i32, 5, 1000, max_m as i32];
    let mut y = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); experts * max_m * n], experts * max_m, n).expect("y");
    let t = stream.clone_htod(&counts).expect("counts");
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    gg::bf16_grouped_gemm(&lowp, &stream, &x, &w, n, &GroupLayout::Masked { counts: t.as_view(), max_m }, &mut y, Some(&mut flag)).expect("launch");
    assert_eq!(flag.read(&stream).expect("flag"), gg::GEMM_ERR_GROUP_BOUNDS, "counts {counts:?} not flagged");
    for (i, v) in y.to_host(&stream).expect("y").into_iter().enumerate() {
        let (g, r) = ((i / n) / max_m, (i / n) % max_m);
        let written = (r as i32) < counts[g].clamp(0, max_m as i32);
        let want = if written { bf16::from_f32(k as f32).to_bits() } else { common::POISON16 };
        assert_eq!(v.to_bits(), want, "counts {counts:?}: y[{}, {}] = {v}", i / n, i % n);
    }
}

/// A grouped GEMM captured in a CUDA graph reads its operands and its group table on the device at
/// every replay: replayed after x, W and the offsets were rewritten in place (other group sizes),
/// and after other grouped GEMMs (other operands, other shapes) ran in between. A call under
/// capture whose operands never ran outside it is refused before anything is enqueued.
#[test]
fn bf16_grouped_gemm_replays_in_a_cuda_graph() {
    let test = "bf16_grouped_gemm_replays_in_a_cuda_graph";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let mut rng = Rng::fresh(test);
    let stream = lowp.new_stream().expect("stream");
    let (experts, total, n, k) = (6, 200, 136, 192);
    let mut x_d = Matrix::<bf16>::zeros(&stream, total, k).expect("x");
    let mut w_d = Matrix::<bf16>::zeros(&stream, experts * n, k).expect("w");
    let mut y = Matrix::<bf16>::zeros(&stream, total, n).expect("y");
    let mut ends_d = stream.alloc_zeros::<i32>(experts).expect("ends");
    // Writes new operands and group sizes in place; returns what to compare against.
    let redraw = |rng: &mut Rng, x_d: &mut Matrix<bf16>, w_d: &mut Matrix<bf16>, y: &mut Matrix<bf16>, ends_d: &mut lowp::cudarc::driver::CudaSlice<i32>| {
        let x: Vec<bf16> = (0..total * k).map(|_| bf16::from_f64(rng.normal())).collect();
        let w: Vec<bf16> = (0..experts * n * k).map(|_| bf16::from_f64(rng.normal() * 0.05)).collect();
        let (table, spans) = group_table(&sizes(rng, experts, total), None);
        stream.memcpy_htod(&x, x_d.buffer_mut()).expect("x");
        stream.memcpy_htod(&w, w_d.buffer_mut()).expect("w");
        stream.memcpy_htod(&table, ends_d).expect("ends");
        stream.memcpy_htod(&vec![bf16::from_bits(common::POISON16); total * n], y.buffer_mut()).expect("y");
        let checked = rows_to_check(&spans);
        let xf = |r: usize, c: usize| x[r * k + c].to_f64();
        let wf = |r: usize, c: usize| w[r * k + c].to_f64();
        let want: Vec<Vec<f64>> = checked.iter().map(|&(r, g)| ref_row(&xf, &wf, r, g, n, k)).collect();
        (want, checked.iter().map(|&(r, _)| r).collect::<Vec<usize>>())
    };
    let (want, rows) = redraw(&mut rng, &mut x_d, &mut w_d, &mut y, &mut ends_d);
    let gemm = |x_d: &Matrix<bf16>, w_d: &Matrix<bf16>, y: &mut Matrix<bf16>, ends_d: &lowp::cudarc::driver::CudaSlice<i32>| {
        gg::bf16_grouped_gemm(&lowp, &stream, x_d, w_d, n, &GroupLayout::Contiguous { ends: ends_d.as_view() }, y, None)
    };
    gemm(&x_d, &w_d, &mut y, &ends_d).expect("grouped gemm before capture");
    check(&lowp, "before capture", &y.to_host(&stream).expect("y back"), &want, &rows, n);

    let (other_x, other_w) = (Matrix::<bf16>::zeros(&stream, 64, k).expect("x"), Matrix::<bf16>::zeros(&stream, experts * n, k).expect("w"));
    let mut other_y = Matrix::<bf16>::zeros(&stream, 64, n).expect("y");
    let other_ends = stream.clone_htod(&[10i32, 20, 30, 40, 50, 64]).expect("ends");
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).expect("begin capture");
    let captured = gemm(&x_d, &w_d, &mut y, &ends_d);
    let refused = gemm(&other_x, &other_w, &mut other_y, &other_ends);
    let graph = stream.end_capture(lowp::cudarc::driver::sys::CUgraphInstantiate_flags(0)).expect("end capture").expect("a graph");
    captured.expect("grouped gemm under capture");
    let e = refused.expect_err("operands never seen outside capture");
    assert!(matches!(e, lowp::Error::GraphCapture { op: "bf16_grouped_gemm", .. }), "{e}");

    for replay in 0..3 {
        let (want, rows) = redraw(&mut rng, &mut x_d, &mut w_d, &mut y, &mut ends_d);
        graph.launch().expect("graph replay");
        check(&lowp, &format!("replay {replay}"), &y.to_host(&stream).expect("y back"), &want, &rows, n);
        // Another grouped GEMM between replays (its maps written now, outside capture).
        gemm(&other_x, &other_w, &mut other_y, &other_ends).expect("grouped gemm between replays");
        let zeros = other_y.to_host(&stream).expect("other y back");
        assert!(zeros.iter().all(|v| v.to_f32() == 0.0), "between replays {replay}: zero operands give zeros");
    }
}
