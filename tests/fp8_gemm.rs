//! The blockwise FP8 GEMM against a float64 reference from the dequantized inputs (Hopper).
//!
//! Bounds, on the rows compared (all of them up to 16 rows, else 14 sampled ones with the first
//! and last):
//! - every element within 1% of its row's largest magnitude of the exact reference;
//! - the error beyond the bf16 output rounding (`excess_over_rounding`: |d − reference| less half
//!   a bf16 unit, never negative; 0 for an exact kernel) has a relative Frobenius norm ≤ 1e-3
//!   (1e-6 on the simulator: `excess_bound`).
//!
//! The rounding is taken out because it is not the kernel's error: alone it is a relative
//! Frobenius error of about 1.6e-3, over 2e-3 on a few hundred elements. The distance to the
//! reference rounded to bf16 does not work either: the kernel's f32 result (each k-block summed
//! in the tensor core, on a GPU with fewer bits than f32 for FP8 operands, then promoted,
//! `fin = fma(acc, sa · sb, fin)` in k-block order) falls on the other side of a bf16 rounding midpoint
//! for a few elements in 10^5, and one such element costs a whole bf16 unit: up to 1.7e-3 on a
//! single row of 128. Beyond the half unit only the f32 error of those elements remains: far
//! below the bound for f32 or the tensor core's FP8 accumulation, about δ for results off by a
//! relative δ above 2^-9.
//!
//! The simulator runs the GPU sweep's kinds of case at CPU sizes: one row, a partial M tile, an N
//! tail of the 128-wide tile as in N = 2112 (N = 320: 64 columns; N = 200: 72), N of a few columns
//! (2, 8), more than 8 tile rows (the tile order's bands of 8 tile rows, the last one partial),
//! more k-blocks than the pipeline's 4 stages (K = 1152: stages refilled, mbarrier phases
//! flipping), more tiles than SMs (the persistent loop's later turns), both scale layouts and
//! power-of-two (UE8M0) scales. The grid is `min(tiles, SM count)`: CI runs these tests again with
//! `LOWP_SIM_SMS=1` (one CTA walks every tile) and `LOWP_SIM_SMS=3` (tiles spread unevenly).
//!
//! CUDA graphs: a captured GEMM replayed after its operands were rewritten in place and after
//! other GEMMs ran in between, and the `Error::GraphCapture` refusal of operands whose tensor maps
//! were never written outside capture (the simulator records captured work as the driver does:
//! `sim/src/capi.rs`).

mod common;

use std::sync::Arc;

use half::bf16;
use lowp::cudarc::driver::{CudaStream, sys::CUstreamCaptureMode};
use lowp::fp8::{self, ScaleLayout};
use lowp::reference::fp8 as reff;
use lowp::{F8E4M3, Matrix};

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

/// How a case's scales are drawn.
#[derive(Clone, Copy, Debug)]
enum Scales {
    /// Any positive f32 (`scale`).
    Float,
    /// Powers of two, as the UE8M0 recipe makes them (`reference::fp8::scale` rounding up).
    Ue8m0,
}

impl Scales {
    fn draw(self, rng: &mut Rng) -> f32 {
        let s = scale(rng);
        match self {
            Scales::Float => s,
            Scales::Ue8m0 => reff::scale(s * 448.0, true),
        }
    }
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
            let term = |c: usize| e(a[r * k + c]) as f64 * sa[r * 2 + c / 128] as f64 * e(b[j * k + c]) as f64 * sb[(j / 128) * 2 + c / 128] as f64;
            let direct: f64 = (0..k).map(term).sum();
            // relative to the terms' magnitudes: the sum itself may cancel to almost nothing, and
            // the two summation orders then differ by more than 1e-12 of it
            let magnitude: f64 = (0..k).map(|c| term(c).abs()).sum();
            assert!((row[j] - direct).abs() <= 1e-12 * magnitude, "row {r} col {j}: {} vs direct sum {direct} (terms' magnitude {magnitude})", row[j]);
        }
    }
}

/// How far `got` lies beyond the bf16 rounding of `want`: |got − want| less half a bf16 unit in
/// the last place at `want`, or 0. Zero when `got` is `want` correctly rounded (or rounded to
/// the other neighbour from within f32 accuracy of a midpoint: the excess is then that tiny).
fn excess_over_rounding(got: f64, want: f64) -> f64 {
    let exponent = ((want.abs().to_bits() >> 52) as i32) - 1023; // of a normal f64 (never subnormal here)
    let half_unit = if want == 0.0 { 0.0 } else { 2f64.powi(exponent - 8) };
    ((got - want).abs() - half_unit).max(0.0)
}

/// The bound on the relative Frobenius norm of `excess_over_rounding`: 1e-3 on a GPU; 1e-6 on the
/// simulator, whose wgmma sums each instruction's products exactly and rounds once to f32, so that
/// only the kernel's own f32 arithmetic remains (it scores about 1e-9; an intermediate kept at
/// bf16 or f16 precision would not pass). With the simulator's model of Hopper's FP8
/// accumulation (`LOWP_SIM_FP8_ACC_BITS`), the GPU's bound.
fn excess_bound(lowp: &lowp::Lowp) -> f64 {
    common::gemm_bound(lowp)
}

/// One GEMM's operands: host values and device buffers (redrawn in place by `redraw`).
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    layout: ScaleLayout,
    scales: Scales,
    a: Vec<u8>,
    b: Vec<u8>,
    /// Row-major `[m, k/128]` whatever `layout` is.
    sa_rm: Vec<f32>,
    sb: Vec<f32>,
    a_d: Matrix<F8E4M3>,
    b_d: Matrix<F8E4M3>,
    sa_d: lowp::cudarc::driver::CudaSlice<f32>,
    sb_d: Matrix<f32>,
    d: Matrix<bf16>,
}

impl Problem {
    fn new(stream: &Arc<CudaStream>, rng: &mut Rng, m: usize, n: usize, k: usize, m_major: bool, scales: Scales) -> Problem {
        let g = k / 128;
        let layout = if m_major { ScaleLayout::MMajor { ld: fp8::m_major_ld(m) } } else { ScaleLayout::RowMajor };
        let sa_len = if m_major { fp8::m_major_ld(m) * g } else { m * g };
        let mut p = Problem {
            m,
            n,
            k,
            layout,
            scales,
            a: Vec::new(),
            b: Vec::new(),
            sa_rm: Vec::new(),
            sb: Vec::new(),
            a_d: Matrix::zeros(stream, m, k).expect("a"),
            b_d: Matrix::zeros(stream, n, k).expect("b"),
            sa_d: stream.alloc_zeros::<f32>(sa_len).expect("sa"),
            sb_d: Matrix::zeros(stream, n.div_ceil(128), g).expect("sb"),
            d: Matrix::zeros(stream, m, n).expect("d"),
        };
        p.redraw(stream, rng);
        p
    }

    /// New random operands in the same device buffers, and a poisoned output.
    fn redraw(&mut self, stream: &Arc<CudaStream>, rng: &mut Rng) {
        let (m, n, k, g) = (self.m, self.n, self.k, self.k / 128);
        self.a = (0..m * k).map(|_| code(rng)).collect();
        self.b = (0..n * k).map(|_| code(rng)).collect();
        self.sa_rm = (0..m * g).map(|_| self.scales.draw(rng)).collect();
        self.sb = (0..n.div_ceil(128) * g).map(|_| self.scales.draw(rng)).collect();
        let sa_dev = match self.layout {
            ScaleLayout::MMajor { ld } => {
                let mut v = vec![0f32; ld * g];
                for r in 0..m {
                    for c in 0..g {
                        v[c * ld + r] = self.sa_rm[r * g + c];
                    }
                }
                v
            }
            ScaleLayout::RowMajor => self.sa_rm.clone(),
        };
        let to8 = |v: &[u8]| v.iter().map(|&c| F8E4M3::from_bits(c)).collect::<Vec<_>>();
        stream.memcpy_htod(&to8(&self.a), self.a_d.buffer_mut()).expect("a");
        stream.memcpy_htod(&to8(&self.b), self.b_d.buffer_mut()).expect("b");
        stream.memcpy_htod(&sa_dev, &mut self.sa_d).expect("sa");
        stream.memcpy_htod(&self.sb, self.sb_d.buffer_mut()).expect("sb");
        stream.memcpy_htod(&vec![bf16::from_bits(common::POISON16); m * n], self.d.buffer_mut()).expect("d");
    }

    fn run(&mut self, lowp: &lowp::Lowp, stream: &Arc<CudaStream>) -> lowp::Result<()> {
        fp8::blockwise_gemm(lowp, stream, &self.a_d, &self.sa_d, self.layout, &self.b_d, &self.sb_d, &mut self.d)
    }

    /// Checks `d` against the float64 reference (see the module's bounds).
    fn check(&self, lowp: &lowp::Lowp, stream: &Arc<CudaStream>, rng: &mut Rng, context: &str) {
        let (m, n, k, g) = (self.m, self.n, self.k, self.k / 128);
        let got = self.d.to_host(stream).expect("d back");
        let rows: Vec<usize> = if m <= 16 { (0..m).collect() } else { let mut r: Vec<usize> = (0..12).map(|_| rng.below(m as u64) as usize).collect(); r.extend([0, m - 1]); r };
        let m_major = matches!(self.layout, ScaleLayout::MMajor { .. });
        let what = format!("{context}m {m} n {n} k {k} {} scales {:?}", if m_major { "M-major" } else { "row-major" }, self.scales);
        let (mut err2, mut ref2) = (0.0f64, 0.0f64);
        for &r in &rows {
            let want = reff::gemm_row(&self.a, r, |mm, gg| self.sa_rm[mm * g + gg], &self.b, &self.sb, n, k);
            let row_max = want.iter().fold(0.0f64, |x, v| x.max(v.abs()));
            for j in 0..n {
                let v = got[r * n + j].to_f64();
                assert!(!v.is_nan(), "{what}: d[{r}, {j}] not written");
                assert!((v - want[j]).abs() <= 0.01 * row_max, "{what}: d[{r}, {j}] = {v}, reference {} (row max {row_max})", want[j]);
                err2 += excess_over_rounding(v, want[j]).powi(2);
                ref2 += want[j] * want[j];
            }
        }
        let (rel, bound) = ((err2 / ref2).sqrt(), excess_bound(lowp));
        assert!(rel <= bound, "{what}: relative Frobenius error beyond the bf16 rounding {rel:e} (bound {bound:e})");
    }
}

fn gemm_case(lowp: &lowp::Lowp, rng: &mut Rng, m: usize, n: usize, k: usize, layout_m_major: bool, scales: Scales) {
    let stream = lowp.new_stream().expect("stream");
    let mut p = Problem::new(&stream, rng, m, n, k, layout_m_major, scales);
    p.run(lowp, &stream).expect("gemm");
    p.check(lowp, &stream, rng, "");
}

#[test]
fn blockwise_gemm_matches_reference_over_the_issue_sweep() {
    let test = "blockwise_gemm_matches_reference_over_the_issue_sweep";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let mut rng = Rng::fresh(test);
    let ms = common::sized(&lowp, vec![1, 7, 64, 128, 1000, 4096], vec![1, 7, 128, 200]);
    let ns = common::sized(&lowp, vec![128, 2112, 7168], vec![128, 200, 320]);
    let ks = common::sized(&lowp, vec![128, 2048, 7168], vec![128, 512, 1152]);
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                // both scale layouts and both scale kinds, alternating over the sweep
                let scales = if (m + k / 128) % 2 == 0 { Scales::Float } else { Scales::Ue8m0 };
                gemm_case(&lowp, &mut rng, m, n, k, (m + n + k) % 2 == 0, scales);
            }
        }
    }
}

#[test]
fn blockwise_gemm_handles_ragged_edges_and_both_scale_layouts() {
    let test = "blockwise_gemm_handles_ragged_edges";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let mut rng = Rng::fresh(test);
    let large = common::sized(&lowp, (257, 1000, 1152), (257, 136, 640));
    // 9 tile rows: the tile order walks bands of 8 tile rows, the last band holding one
    let tall = common::sized(&lowp, (1100, 260, 256), (1100, 130, 128));
    for (m, n, k) in [(129, 130, 256), (33, 8, 384), large, (300, 2, 128), tall] {
        gemm_case(&lowp, &mut rng, m, n, k, true, Scales::Float);
        gemm_case(&lowp, &mut rng, m, n, k, false, Scales::Float);
        gemm_case(&lowp, &mut rng, m, n, k, true, Scales::Ue8m0);
    }
}

/// Off Hopper (a GPU below or past 9.0, or the simulator with `LOWP_SIM_CC=8.0`) the GEMM is
/// `Unsupported`; on Hopper a valid call runs and a bad shape is refused before any launch.
#[test]
fn blockwise_gemm_is_unsupported_off_hopper_and_validates_shapes() {
    let test = "blockwise_gemm_is_unsupported_off_hopper";
    let lowp = common::gpu(test);
    let stream = lowp.new_stream().expect("stream");
    let a = Matrix::<F8E4M3>::zeros(&stream, 4, 256).expect("a");
    let b = Matrix::<F8E4M3>::zeros(&stream, 8, 256).expect("b");
    let sa = stream.alloc_zeros::<f32>(8).expect("sa");
    let sb = Matrix::<f32>::zeros(&stream, 1, 2).expect("sb");
    let mut d = Matrix::<bf16>::zeros(&stream, 4, 8).expect("d");
    if lowp.arch() == lowp::Arch::Sm90a {
        let mut d_bad = Matrix::<bf16>::zeros(&stream, 4, 9).expect("d");
        let e = fp8::blockwise_gemm(&lowp, &stream, &a, &sa, ScaleLayout::RowMajor, &b, &sb, &mut d_bad).unwrap_err();
        assert!(matches!(e, lowp::Error::Shape { arg: "d", .. }), "{e}");
        if common::on_sim(&lowp) {
            common::skip(test, "the off-Hopper check needs compute capability 8.x (LOWP_SIM_CC=8.0)");
        }
        fp8::blockwise_gemm(&lowp, &stream, &a, &sa, ScaleLayout::RowMajor, &b, &sb, &mut d).expect("valid small GEMM");
        stream.synchronize().expect("sync");
    } else {
        let r = fp8::blockwise_gemm(&lowp, &stream, &a, &sa, ScaleLayout::RowMajor, &b, &sb, &mut d);
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
    let lowp = common::gpu("blockwise_gemm_permutation_probe");
    if !common::hopper_gemm("blockwise_gemm_permutation_probe", &lowp) {
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
    let to8 = |v: &[u8]| v.iter().map(|&c| F8E4M3::from_bits(c)).collect::<Vec<_>>();
    let a_d = Matrix::from_host(&stream, &to8(&a), m, k).expect("a");
    let b_d = Matrix::from_host(&stream, &to8(&b), n, k).expect("b");
    let sa = stream.clone_htod(&vec![1.0f32; m * (k / 128)]).expect("sa");
    let sb = Matrix::from_host(&stream, &vec![1.0f32; (n / 128) * (k / 128)], n / 128, k / 128).expect("sb");
    let mut d = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); m * n], m, n).expect("d");
    fp8::blockwise_gemm(&lowp, &stream, &a_d, &sa, ScaleLayout::RowMajor, &b_d, &sb, &mut d).expect("gemm");
    let got = d.to_host(&stream).expect("d back");
    let e = lowp::reference::convert::e4m3fn_to_f32;
    let mut wrong = Vec::new();
    for r in 0..m {
        for j in 0..n {
            let want = bf16::from_f32(e(b[j * k + perm(r)]));
            // Values, not bits: B's -0 (code 0x80) comes out as +0, since the kernel promotes
            // into an accumulator that starts at +0 and +0 + -0 = +0. NaN (a skipped element's
            // poison) equals nothing, so it is still caught.
            if got[r * n + j].to_f32() != want.to_f32() && wrong.len() < 12 {
                let v = got[r * n + j].to_f32();
                let from: Vec<(usize, usize)> = (0..n * k).filter(|&i| bf16::from_f32(e(b[i])).to_f32() == v).take(3).map(|i| (i / k, i % k)).collect();
                wrong.push(format!("d[{r}, {j}] = {v} (want B[{j}, {}] = {}; B[n, k] holding that value: {from:?})", perm(r), want.to_f32()));
            }
        }
    }
    assert!(wrong.is_empty(), "permutation probe failed:\n{}", wrong.join("\n"));
}

/// A GEMM captured in a CUDA graph computes the operands' contents at each replay: replayed after
/// the operands were rewritten in place (same addresses) and after another GEMM ran in between
/// (whose tensor maps must not take the captured one's place).
#[test]
fn blockwise_gemm_replays_in_a_cuda_graph() {
    let test = "blockwise_gemm_replays_in_a_cuda_graph";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let mut rng = Rng::fresh(test);
    let stream = lowp.new_stream().expect("stream");
    let mut p = Problem::new(&stream, &mut rng, 70, 136, 256, true, Scales::Float);
    let mut other = Problem::new(&stream, &mut rng, 33, 200, 384, false, Scales::Ue8m0);
    // Once outside capture: a GEMM's tensor maps are written to the device then, never under capture.
    p.run(&lowp, &stream).expect("gemm before capture");
    p.check(&lowp, &stream, &mut rng, "before capture: ");
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).expect("begin capture");
    let captured = p.run(&lowp, &stream);
    let graph = stream.end_capture(lowp::cudarc::driver::sys::CUgraphInstantiate_flags(0)).expect("end capture").expect("a graph");
    captured.expect("gemm under capture");
    for replay in 0..3 {
        p.redraw(&stream, &mut rng);
        graph.launch().expect("graph replay");
        p.check(&lowp, &stream, &mut rng, &format!("replay {replay}: "));
        other.redraw(&stream, &mut rng);
        other.run(&lowp, &stream).expect("gemm between replays");
        other.check(&lowp, &stream, &mut rng, &format!("between replays {replay}: "));
    }
}

/// Under capture, a GEMM whose tensor maps are not on the device yet (operands never used outside
/// capture) is refused with `Error::GraphCapture` before anything is enqueued: the capture stays
/// valid, and what was captured replays.
#[test]
fn blockwise_gemm_refuses_uncached_maps_under_capture() {
    let test = "blockwise_gemm_refuses_uncached_maps_under_capture";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let mut rng = Rng::fresh(test);
    let stream = lowp.new_stream().expect("stream");
    let mut seen = Problem::new(&stream, &mut rng, 16, 128, 128, false, Scales::Float);
    let mut unseen = Problem::new(&stream, &mut rng, 16, 128, 128, false, Scales::Float);
    seen.run(&lowp, &stream).expect("gemm before capture");
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).expect("begin capture");
    let refused = unseen.run(&lowp, &stream);
    let captured = seen.run(&lowp, &stream);
    let graph = stream.end_capture(lowp::cudarc::driver::sys::CUgraphInstantiate_flags(0)).expect("end capture").expect("a graph");
    let e = refused.expect_err("maps not on the device");
    assert!(matches!(e, lowp::Error::GraphCapture { op: "blockwise_gemm", .. }), "{e}");
    assert!(e.to_string().contains("outside capture"), "{e}");
    captured.expect("gemm under capture");
    seen.redraw(&stream, &mut rng);
    graph.launch().expect("graph replay");
    seen.check(&lowp, &stream, &mut rng, "replay: ");
    // Once run outside capture, the other operands are capturable too.
    unseen.run(&lowp, &stream).expect("gemm outside capture");
    unseen.check(&lowp, &stream, &mut rng, "outside capture: ");
}
