//! The Hopper GEMMs (`lowp::gemm`): the dense blockwise FP8 GEMM, then the grouped (MoE) GEMMs,
//! bf16 and blockwise FP8, contiguous and masked layouts, each against a float64 reference from
//! the dequantized inputs.
//!
//! # The dense blockwise FP8 GEMM
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
//! more k-blocks than the pipeline's 4 to 13 stages (K = 1152, 1280: stages refilled, mbarrier
//! phases flipping), more tiles than SMs (the persistent loop's later turns), both scale layouts
//! (and both ways of reading activation scales) and power-of-two (UE8M0) scales. The grid is `min(tiles, SM count)`: CI runs these tests again with
//! `LOWP_SIM_SMS=1` (one CTA walks every tile) and `LOWP_SIM_SMS=3` (tiles spread unevenly).
//!
//! Tile configurations: M ≤ 64 runs 64-row tiles (one math warpgroup, 8 stages), larger M
//! 128-row tiles (two, 5 stages for FP8), except that up to 128 rows take 64-row tiles where
//! the model rates them faster (`choose_config`: on the simulator's 4 SMs (65, 130) and
//! (100, 8), one wave of 64-row tiles, but not (100, 1024); on 132 SMs (65, 2112, 1280) in
//! split-K clusters); the sweep has both, and `blockwise_gemm_small_m_tiles_and_their_boundary`
//! the boundary (64, 65) with rings wrapping.
//! The tile width (64, 112, 128 or 192 columns) follows a model of the grid's time
//! (`blockwise_gemm_64_column_tiles_and_their_threshold` and
//! `blockwise_gemm_112_and_192_column_tiles`: each width on the simulator's 4 SMs, N tails that
//! are not multiples of the width, tiles straddling two weight-scale blocks).
//! `LOWP_GEMM_BLOCK_M=64` or `128` and `LOWP_GEMM_BLOCK_N=64`, `112`, `128` or `192` force the
//! tile rows and columns of every call: CI runs this file in each of the eight configurations.
//!
//! CUDA graphs: GEMMs captured with no call before (their tensor maps travel as kernel
//! parameters, in the graph's nodes), replayed after their operands were rewritten in place and
//! after other GEMMs ran in between (the simulator records captured work as the driver does:
//! `sim/src/capi.rs`).
//!
//! # The grouped GEMMs
//!
//! Bounds as the dense GEMM's, against a per-group reference (bf16: f32 accumulation across all
//! of K, in the tensor core). Rows outside every group keep their poison, and valid offsets never
//! raise the error flag.
//!
//! The simulator runs the GPU cases' kinds at CPU sizes: many experts with few tokens, empty,
//! single-token and uneven groups, three tokens in all, groups clamped by the masked layout's
//! `max_m`, an N that is not a multiple of the 128-wide tile (expert g's last B tile then holds
//! rows of expert g + 1, loaded but never stored), more k-blocks than pipeline stages, both
//! activation-scale layouts and power-of-two (UE8M0) scales, and bad device-side offsets (flagged
//! and clamped). Grids are `min(tiles, SM count)`: CI runs these tests again with
//! `LOWP_SIM_SMS=1` and `LOWP_SIM_SMS=3`. Both tile heights run: 64-row tiles for
//! masked `max_m` ≤ 64 and contiguous layouts of at most 64 rows per expert on average, 128-row
//! tiles above (cases just past the boundary: `max_m` = 65, 75 rows per expert), and the widths
//! the model picks for each case on 4 SMs (CI forces each of the eight configurations too).

mod common;

use std::sync::Arc;

use half::bf16;
use lowp::cudarc::driver::{CudaSlice, CudaStream, sys::CUstreamCaptureMode};
use lowp::gemm::{self, GemmConfig, GroupLayout};
use lowp::reference::convert::e4m3fn_to_f32;
use lowp::reference::fp8 as reff;
use lowp::{ErrorFlag, F8E4M3, Matrix, MatrixBatch, ScaleLayout, Scales, m_major_ld};

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
enum ScaleKind {
    /// Any positive f32 (`scale`).
    Float,
    /// Powers of two, as the UE8M0 recipe makes them (`reference::fp8::scale` rounding up).
    Ue8m0,
}

impl ScaleKind {
    fn draw(self, rng: &mut Rng) -> f32 {
        let s = scale(rng);
        match self {
            ScaleKind::Float => s,
            ScaleKind::Ue8m0 => reff::scale(s * 448.0, lowp::ScaleRounding::Ceil).expect("Ceil is a UE8M0 rounding"),
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
        let row = lowp::reference::gemm::blockwise_fp8_row(&a, r, |mm, g| sa[mm * 2 + g], &b, &sb, n, k);
        for j in [0, 1, 127, 128, 129] {
            let term = |c: usize| {
                e(a[r * k + c]) as f64
                    * sa[r * 2 + c / 128] as f64
                    * e(b[j * k + c]) as f64
                    * sb[(j / 128) * 2 + c / 128] as f64
            };
            let direct: f64 = (0..k).map(term).sum();
            // relative to the terms' magnitudes: the sum itself may cancel to almost nothing, and
            // the two summation orders then differ by more than 1e-12 of it
            let magnitude: f64 = (0..k).map(|c| term(c).abs()).sum();
            assert!(
                (row[j] - direct).abs() <= 1e-12 * magnitude,
                "row {r} col {j}: {} vs direct sum {direct} (terms' magnitude {magnitude})",
                row[j]
            );
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

/// Row-major `[m, g]` scales `rm` laid out as `layout` (row-major or M-major, any `ld`).
fn scales_in(layout: ScaleLayout, rm: &[f32], m: usize, g: usize) -> Vec<f32> {
    match layout {
        ScaleLayout::MMajor { ld } => {
            let mut v = vec![0f32; ld * g];
            for r in 0..m {
                for c in 0..g {
                    v[c * ld + r] = rm[r * g + c];
                }
            }
            v
        }
        ScaleLayout::RowMajor { ld } => {
            let mut v = vec![0f32; ld * m];
            for r in 0..m {
                v[r * ld..r * ld + g].copy_from_slice(&rm[r * g..r * g + g]);
            }
            v
        }
        other => panic!("no GEMM scale layout: {other:?}"),
    }
}

/// One GEMM's operands: host values and device buffers (redrawn in place by `redraw`).
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    layout: ScaleLayout,
    scales: ScaleKind,
    a: Vec<u8>,
    b: Vec<u8>,
    /// Row-major `[m, k/128]` whatever `layout` is.
    sa_rm: Vec<f32>,
    sb: Vec<f32>,
    a_d: Matrix<F8E4M3>,
    b_d: Matrix<F8E4M3>,
    sa_d: Scales<f32>,
    sb_d: Scales<f32>,
    d: Matrix<bf16>,
}

impl Problem {
    fn new(
        stream: &Arc<CudaStream>,
        rng: &mut Rng,
        m: usize,
        n: usize,
        k: usize,
        m_major: bool,
        scales: ScaleKind,
    ) -> Problem {
        let g = k / 128;
        let layout = if m_major { ScaleLayout::MMajor { ld: m_major_ld(m) } } else { ScaleLayout::RowMajor { ld: g } };
        let sa_len = if m_major { m_major_ld(m) * g } else { m * g };
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
            sa_d: Scales::from_buffer(stream.alloc_zeros::<f32>(sa_len).expect("sa"), m, g, layout).expect("scales_a"),
            sb_d: Scales::zeros(stream, n.div_ceil(128), g, ScaleLayout::RowMajor { ld: g }).expect("scales_b"),
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
        let sa_dev = scales_in(self.layout, &self.sa_rm, m, g);
        let to8 = |v: &[u8]| v.iter().map(|&c| F8E4M3::from_bits(c)).collect::<Vec<_>>();
        stream.memcpy_htod(&to8(&self.a), self.a_d.buffer_mut()).expect("a");
        stream.memcpy_htod(&to8(&self.b), self.b_d.buffer_mut()).expect("b");
        stream.memcpy_htod(&sa_dev, self.sa_d.buffer_mut()).expect("scales_a");
        stream.memcpy_htod(&self.sb, self.sb_d.buffer_mut()).expect("scales_b");
        stream.memcpy_htod(&vec![bf16::from_bits(common::POISON16); m * n], self.d.buffer_mut()).expect("d");
    }

    fn run(&mut self, lowp: &lowp::Lowp, stream: &Arc<CudaStream>) -> lowp::Result<()> {
        gemm::blockwise_fp8(lowp, stream, &self.a_d, &self.sa_d, &self.b_d, &self.sb_d, &mut self.d)
    }

    /// [`run`](Self::run) in the kernel configuration `config`.
    fn run_with(&mut self, lowp: &lowp::Lowp, stream: &Arc<CudaStream>, config: GemmConfig) -> lowp::Result<()> {
        gemm::blockwise_fp8_with(lowp, stream, &self.a_d, &self.sa_d, &self.b_d, &self.sb_d, config, &mut self.d)
    }

    /// Checks `d` against the float64 reference (see the module's bounds).
    fn check(&self, lowp: &lowp::Lowp, stream: &Arc<CudaStream>, rng: &mut Rng, context: &str) {
        let (m, n, k, g) = (self.m, self.n, self.k, self.k / 128);
        let got = self.d.to_host(stream).expect("d back");
        let rows: Vec<usize> = if m <= 16 {
            (0..m).collect()
        } else {
            let mut r: Vec<usize> = (0..12).map(|_| rng.below(m as u64) as usize).collect();
            r.extend([0, m - 1]);
            r
        };
        let m_major = matches!(self.layout, ScaleLayout::MMajor { .. });
        let what = format!(
            "{context}m {m} n {n} k {k} {} scales {:?}",
            if m_major { "M-major" } else { "row-major" },
            self.scales
        );
        let (mut err2, mut ref2) = (0.0f64, 0.0f64);
        for &r in &rows {
            let want = lowp::reference::gemm::blockwise_fp8_row(
                &self.a,
                r,
                |mm, gg| self.sa_rm[mm * g + gg],
                &self.b,
                &self.sb,
                n,
                k,
            );
            let row_max = want.iter().fold(0.0f64, |x, v| x.max(v.abs()));
            for j in 0..n {
                let v = got[r * n + j].to_f64();
                assert!(!v.is_nan(), "{what}: d[{r}, {j}] not written");
                assert!(
                    (v - want[j]).abs() <= 0.01 * row_max,
                    "{what}: d[{r}, {j}] = {v}, reference {} (row max {row_max})",
                    want[j]
                );
                err2 += excess_over_rounding(v, want[j]).powi(2);
                ref2 += want[j] * want[j];
            }
        }
        let (rel, bound) = ((err2 / ref2).sqrt(), excess_bound(lowp));
        assert!(rel <= bound, "{what}: relative Frobenius error beyond the bf16 rounding {rel:e} (bound {bound:e})");
    }
}

fn gemm_case(lowp: &lowp::Lowp, rng: &mut Rng, m: usize, n: usize, k: usize, layout_m_major: bool, scales: ScaleKind) {
    let stream = lowp.new_stream().expect("stream");
    let mut p = Problem::new(&stream, rng, m, n, k, layout_m_major, scales);
    p.run(lowp, &stream).expect("gemm");
    p.check(lowp, &stream, rng, "");
}

/// The device of a Hopper GEMM test and its fresh random stream, or `None` (having said why)
/// where the device is not Hopper.
fn hopper(test: &str) -> Option<(lowp::Lowp, Rng)> {
    let lowp = common::gpu(test);
    common::hopper_gemm(test, &lowp).then(|| (lowp, Rng::fresh(test)))
}

/// `gemm_case` over `cases`: float and UE8M0 scales alternating, M-major activation scales where
/// `m_major(i)` says so.
fn gemm_cases(lowp: &lowp::Lowp, rng: &mut Rng, cases: &[(usize, usize, usize)], m_major: impl Fn(usize) -> bool) {
    for (i, &(m, n, k)) in cases.iter().enumerate() {
        let scales = if i % 2 == 0 { ScaleKind::Float } else { ScaleKind::Ue8m0 };
        gemm_case(lowp, rng, m, n, k, m_major(i), scales);
    }
}

#[test]
fn blockwise_gemm_matches_reference_over_the_issue_sweep() {
    let test = "blockwise_gemm_matches_reference_over_the_issue_sweep";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let ms = common::sized(&lowp, vec![1, 7, 64, 128, 1000, 4096], vec![1, 7, 128, 200]);
    let ns = common::sized(&lowp, vec![128, 2112, 7168], vec![128, 200, 320]);
    let ks = common::sized(&lowp, vec![128, 2048, 7168], vec![128, 512, 1152]);
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                // both scale layouts and both scale kinds, alternating over the sweep
                let scales = if (m + k / 128) % 2 == 0 { ScaleKind::Float } else { ScaleKind::Ue8m0 };
                gemm_case(&lowp, &mut rng, m, n, k, (m + n + k) % 2 == 0, scales);
            }
        }
    }
}

#[test]
fn blockwise_gemm_handles_ragged_edges_and_both_scale_layouts() {
    let test = "blockwise_gemm_handles_ragged_edges";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let large = common::sized(&lowp, (257, 1000, 1152), (257, 136, 640));
    // 9 tile rows: the tile order walks bands of 8 tile rows, the last band holding one
    let tall = common::sized(&lowp, (1100, 260, 256), (1100, 130, 128));
    for (m, n, k) in [(129, 130, 256), (33, 8, 384), large, (300, 2, 128), tall] {
        gemm_case(&lowp, &mut rng, m, n, k, true, ScaleKind::Float);
        gemm_case(&lowp, &mut rng, m, n, k, false, ScaleKind::Float);
        gemm_case(&lowp, &mut rng, m, n, k, true, ScaleKind::Ue8m0);
    }
}

/// Both tile configurations at their boundary: M ≤ 64 runs 64-row tiles (one math warpgroup, 8
/// pipeline stages), M > 64 128-row tiles (two, 5 stages) unless 64-row tiles are modelled
/// faster (see the module docs: on 4 SMs (65, 130) and (100, 8), at full size (65, 2112) and
/// (100, 200)); rows just past a tile (65, 129), a partial tile of each size (33; 100 with
/// N = 1024), N tails, and more k-blocks than either ring has stages
/// (K = 1280: 10 k-blocks), so the 5- and 8-stage rings wrap (a stage count that is not a power
/// of two) within a tile and across the tiles of a persistent CTA. `LOWP_GEMM_BLOCK_M=64` or
/// `128` runs every case in one configuration.
#[test]
fn blockwise_gemm_small_m_tiles_and_their_boundary() {
    let test = "blockwise_gemm_small_m_tiles_and_their_boundary";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let cases = common::sized(
        &lowp,
        vec![
            (1, 7168, 1280),
            (33, 2112, 7168),
            (64, 4096, 1280),
            (65, 2112, 1280),
            (100, 200, 7168),
            (129, 7168, 2048),
        ],
        vec![
            (1, 136, 1280),
            (33, 200, 1280),
            (64, 520, 1280),
            (65, 130, 1280),
            (100, 8, 384),
            (100, 1024, 1280),
            (129, 384, 1280),
        ],
    );
    gemm_cases(&lowp, &mut rng, &cases, |i| i % 3 != 0);
}

/// The 64-column configurations (`*_n64`): the host picks them where the model of
/// `choose_tiles` rates them fastest (the grid's waves over the SMs times a tile's cost), so on
/// the simulator's 4 SMs small shapes take them and larger ones wider tiles. Cases on both sides
/// of that threshold, with 64- and 128-row tiles; N tails that are not multiples of 64 (8, 2, 58,
/// 36 columns in the last tile), a 64-column tile in the second 128-column weight-scale block
/// (its scale row is n0/128, not its tile index), and more k-blocks than the 8- and 13-stage
/// rings hold. `LOWP_GEMM_BLOCK_N=64`, `112`, `128` or `192` runs every case of this
/// file in one width.
#[test]
fn blockwise_gemm_64_column_tiles_and_their_threshold() {
    let test = "blockwise_gemm_64_column_tiles_and_their_threshold";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let cases = common::sized(
        &lowp,
        vec![
            (1, 7168, 1280),
            (33, 2112, 2048),
            (100, 7168, 1280),
            (129, 4000, 1280),
            (65, 2112, 1280),
            (1, 16400, 384),
            (256, 7200, 384),
        ],
        vec![
            // 64-column tiles on 4 SMs: at most one wave either way
            (1, 200, 1280),   // 64 rows: 2 tiles or 4; the last 8 columns wide
            (33, 130, 2048),  // 64 rows, 16 k-blocks (13 stages); the last tile 2 wide
            (129, 122, 1280), // 128 rows, 2 tile rows, 10 k-blocks (8 stages); the last tile 58 wide
            (129, 100, 1280), // 128 rows, 2 tile rows: 2 tiles or 4; the last 36 wide
            (65, 190, 1280),  // 64-row tiles, 2 tile rows: 4 tiles of 112, or 6 of 64 (two waves)
            // wider tiles on 4 SMs: 64 would take a second wave
            (1, 400, 384),   // 4 tiles of 112, or 7 of 64
            (129, 200, 384), // 4 tiles of 112, or 8 of 64
        ],
    );
    gemm_cases(&lowp, &mut rng, &cases, |i| i % 3 != 1);
}

/// The 112- and 192-column configurations (`*_n112`, `*_n192`; FP8 only with 64-row tiles):
/// their tiles straddle two 128-column weight-scale blocks, the tile's first `128 − n0 % 128`
/// columns scaled by block n0/128 and the others by the next, which is read only where the tile
/// has columns in it (N = 128 with 112-column tiles: the second tile's 16 columns all lie in
/// block 0, and block 1 does not exist). On the simulator's 4 SMs the host picks 112 columns for
/// (1, 300): tiles at n0 = 112 and 224 straddle, the last one 76 wide; (129, 200): 128-row
/// tiles, the second 88 wide; (200, 384): 2 × 4 tiles; and 192 columns for (33, 520): the tile
/// at n0 = 384 reaches into block 4 for 8 columns. Both scale kinds, more k-blocks than the
/// 6- and 9-stage rings hold; the full-size cases are the shapes these widths serve on 132 SMs
/// (M = 256, N = 7168: 128 tiles of 112 columns).
#[test]
fn blockwise_gemm_112_and_192_column_tiles() {
    let test = "blockwise_gemm_112_and_192_column_tiles";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let cases = common::sized(
        &lowp,
        vec![(256, 7168, 2048), (4096, 2112, 1280), (33, 7168, 1280), (1, 128, 1280)],
        vec![(1, 300, 1280), (129, 200, 1152), (200, 384, 384), (33, 520, 1536), (1, 128, 1280)],
    );
    gemm_cases(&lowp, &mut rng, &cases, |i| i % 2 == 0);
}

/// Split-K clusters (`*_k2`, `*_k4`, `*_k8`: FP8 64 × 64 tiles): where the tiles leave SMs idle
/// and K is long, 2, 4 or 8 CTAs share each tile, each computing a slice of its k-blocks, then
/// adding every CTA's partial sums of its share of the columns, read from their shared memory,
/// and storing them. On the simulator's 4 SMs the host splits (1, 128): 2 tiles, clusters of 2;
/// (33, 64): 1 tile, 4 CTAs, 4 k-blocks each; (64, 100): a 36-column tail; (17, 50): 13
/// k-blocks in slices of 6 and 7; (1, 64): 4 CTAs of 8 k-blocks each; the full-size cases are
/// the decode shapes the splits serve on 132 SMs
/// (N = 2112: 4 CTAs per tile, N = 4096: 2, N = 576 and 1024: 8) and N = 7168, which does not
/// split. With `LOWP_GEMM_SPLIT_K` forced (CI runs this file with `LOWP_GEMM_BLOCK_M=64
/// LOWP_GEMM_BLOCK_N=64 LOWP_GEMM_SPLIT_K=4`, and with `8` on 8 simulated SMs), every 64 × 64
/// call of the file splits: slices of no k-block where K is short, and one cluster walking every
/// tile (one cluster of 4 fits 4 SMs), its reduction barriers and stage rings carrying over.
#[test]
fn blockwise_gemm_split_k_clusters() {
    let test = "blockwise_gemm_split_k_clusters";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let cases = common::sized(
        &lowp,
        vec![(64, 2112, 7168), (64, 4096, 7168), (32, 1024, 7168), (1, 576, 7168), (64, 7168, 16384)],
        vec![(1, 128, 1024), (33, 64, 2048), (64, 100, 1536), (17, 50, 1664), (1, 64, 4096)],
    );
    gemm_cases(&lowp, &mut rng, &cases, |i| i % 2 == 1);
}

/// Kernels load on first use, or all at once with `Lowp::load_kernels`: on a handle of its own
/// (an empty kernel cache), every kernel of the module loads, a second call loads nothing more,
/// and GEMMs then run, their kernels' dynamic shared memory (above the default 48 KiB) allowed at
/// their first call although the kernels were loaded without it (the simulator refuses a launch
/// past a kernel's allowance, as the driver does).
#[test]
fn kernels_loaded_up_front_run() {
    let test = "kernels_loaded_up_front_run";
    let Some((shared, mut rng)) = hopper(test) else { return };
    let lowp = lowp::Lowp::from_context(shared.context().clone()).expect("a second handle");
    let loaded = lowp.load_kernels().expect("every kernel loads");
    let kernels = lowp.arch().ptx().lines().filter(|l| l.starts_with(".visible .entry ")).count();
    assert_eq!(loaded, kernels, "every kernel of the module");
    assert_eq!(lowp.load_kernels().expect("again"), loaded, "the second call loads nothing");
    let cases =
        common::sized(&lowp, vec![(64, 2112, 7168), (4096, 7168, 2048)], vec![(1, 128, 1024), (129, 200, 1280)]);
    gemm_cases(&lowp, &mut rng, &cases, |i| i % 2 == 0);
    bf16_case(&lowp, &mut rng, 4, 300, 256, 256, None);
}

/// Every kernel configuration runs on request (`*_with`), whatever the shapes would pick: each
/// FP8 configuration of `GemmConfig::all(true)` on a dense case with a partial tile in both
/// dimensions and a grouped one (masked, the last slab partial), each bf16 one on a contiguous
/// grouped case, all against the float64 reference. The op with its own pick gives the same
/// bytes as `*_with` the configuration `*_config` names. Configurations without a kernel are
/// `InvalidValue { arg: "config" }`.
#[test]
fn gemms_run_in_every_configuration_on_request() {
    let test = "gemms_run_in_every_configuration_on_request";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let stream = lowp.new_stream().expect("stream");
    let (fp8, bf16s) = (GemmConfig::all(true), GemmConfig::all(false));
    assert_eq!((fp8.len(), bf16s.len()), (12, 11), "{fp8:?} {bf16s:?}");
    let name = |c: &GemmConfig| c.to_string();
    assert!(fp8.iter().map(name).eq([
        "128x64",
        "128x112",
        "128x112c2",
        "128x128",
        "128x128c2",
        "64x64",
        "64x64k2",
        "64x64k4",
        "64x64k8",
        "64x112",
        "64x128",
        "64x192",
    ]));
    let (m, n, k) = common::sized(&lowp, (200, 520, 2048), (70, 200, 1280));
    for &config in &fp8 {
        let mut p = Problem::new(&stream, &mut rng, m, n, k, config.block_m == 64, ScaleKind::Float);
        if config.cluster * config.split_k > lowp.sm_count() as usize {
            // clusters of 8 on the simulator's 4 SMs
            let e = p.run_with(&lowp, &stream, config).expect_err("a cluster the device does not fit");
            assert!(matches!(e, lowp::Error::InvalidValue { arg: "config", .. }), "{config}: {e}");
            continue;
        }
        p.run_with(&lowp, &stream, config).expect("gemm in a given configuration");
        p.check(&lowp, &stream, &mut rng, &format!("config {config}: "));
        let grouped = common::sized(
            &lowp,
            (4, 300, 384, 2048, Some(100), true, false),
            (3, 150, 200, 1024, Some(60), false, true),
        );
        fp8_grouped_case(&lowp, &mut rng, grouped, Some(config));
    }
    for &config in bf16s.iter().filter(|c| c.cluster <= lowp.sm_count() as usize) {
        bf16_case_in(
            &lowp,
            &mut rng,
            common::sized(&lowp, (4, 700, 384, 512, None), (3, 250, 200, 256, None)),
            Some(config),
        );
    }
    // the op's own pick, named by *_config, bit for bit
    let mut p = Problem::new(&stream, &mut rng, 33, 2112, 1280, true, ScaleKind::Float);
    let picked = gemm::blockwise_fp8_config(&lowp, &stream, &p.a_d, &p.b_d).expect("config");
    assert!(fp8.contains(&picked), "{picked}");
    p.run(&lowp, &stream).expect("gemm");
    let own = p.d.to_host(&stream).expect("d");
    p.run_with(&lowp, &stream, picked).expect("gemm with its pick");
    assert!(own == p.d.to_host(&stream).expect("d"), "blockwise_fp8 and blockwise_fp8_with({picked}) differ");
    // no kernel: FP8 128 × 192, a split or a cluster where the tiles have none, both, odd sizes
    let bad = |block_m, block_n, cluster, split_k| GemmConfig { block_m, block_n, cluster, split_k };
    for config in [
        bad(128, 192, 1, 1),
        bad(128, 128, 1, 2),
        bad(64, 128, 2, 1),
        bad(64, 64, 2, 2),
        bad(96, 64, 1, 1),
        bad(64, 64, 1, 3),
    ] {
        let e = p.run_with(&lowp, &stream, config).expect_err("no such kernel");
        assert!(matches!(e, lowp::Error::InvalidValue { arg: "config", .. }), "{config}: {e}");
    }
    assert!(!bf16s.contains(&bad(64, 64, 1, 2)) && bf16s.contains(&bad(128, 192, 2, 1)));
    // the queries check K as the ops do
    let x100 = Matrix::<F8E4M3>::zeros(&stream, 4, 100).expect("x");
    let e = gemm::blockwise_fp8_config(&lowp, &stream, &x100, &p.b_d).expect_err("K of 100");
    assert!(matches!(e, lowp::Error::Shape { arg: "x", .. }), "{e}");
    // the grouped ops: their picks are configurations of their kind, and their *_with ops check
    // the configuration they are given
    let (experts, rows, n, k) = (3, 100, 200, 256);
    let ends = stream.clone_htod(&[30i32, 60, 100]).expect("ends");
    let groups = GroupLayout::Contiguous { ends: &ends };
    let mut y = Matrix::<bf16>::zeros(&stream, rows, n).expect("y");
    let (x8, w8) = (
        Matrix::<F8E4M3>::zeros(&stream, rows, k).expect("x"),
        MatrixBatch::<F8E4M3>::from_host(&stream, &vec![F8E4M3::from_bits(0); experts * n * k], experts, n, k)
            .expect("w"),
    );
    let sx = Scales::row_major(stream.clone_htod(&vec![1.0f32; rows * 2]).expect("sx"), rows, 2).expect("sx");
    let sw =
        Scales::row_major(stream.clone_htod(&vec![1.0f32; experts * 2 * 2]).expect("sw"), experts * 2, 2).expect("sw");
    let picked = gemm::grouped_fp8_config(&lowp, &stream, &x8, &w8, &groups).expect("grouped fp8 config");
    assert!(fp8.contains(&picked), "{picked}");
    let e = gemm::grouped_fp8_with(&lowp, &stream, &x8, &sx, &w8, &sw, &groups, bad(128, 192, 1, 1), &mut y, None)
        .expect_err("no FP8 128 × 192 kernel");
    assert!(matches!(e, lowp::Error::InvalidValue { arg: "config", .. }), "{e}");
    let (xb, wb) = (
        Matrix::<bf16>::zeros(&stream, rows, k).expect("x"),
        MatrixBatch::<bf16>::from_host(&stream, &vec![bf16::ZERO; experts * n * k], experts, n, k).expect("w"),
    );
    let picked = gemm::grouped_bf16_config(&lowp, &stream, &xb, &wb, &groups).expect("grouped bf16 config");
    assert!(bf16s.contains(&picked), "{picked}");
    let e = gemm::grouped_bf16_with(&lowp, &stream, &xb, &wb, &groups, bad(64, 64, 1, 2), &mut y, None)
        .expect_err("no bf16 split-K kernel");
    assert!(matches!(e, lowp::Error::InvalidValue { arg: "config", .. }), "{e}");
}

/// Shapes the clusters of 2 CTAs along N run (128-row tiles of 112 or 128 columns, where the
/// tiles fill the SMs in pairs; every shape with `LOWP_GEMM_CLUSTER=2`): an even count of tile
/// columns, odd counts (the last pair's second tile lies past N: it loads, takes part in the
/// barriers and stores nothing), a single column (forced clusters pair it with one past N),
/// grouped layouts (both tiles of a pair in one group), K of 10 k-blocks (the rings wrap).
#[test]
fn gemms_in_clusters_of_two_ctas_sharing_a_tiles() {
    let test = "gemms_in_clusters_of_two_ctas_sharing_a_tiles";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let dense = common::sized(
        &lowp,
        vec![(4096, 7168, 2048), (2048, 2112, 1280), (1024, 896, 1280), (512, 128, 1280)],
        // (512, 896): 7 columns of 128 (the model's pick on 4 SMs), the last pair's second tile
        // at n0 = 896, whose weight-scale row would be ⌈N/128⌉, past the scales
        vec![(300, 256, 1280), (512, 896, 256), (257, 1000, 384), (600, 520, 256), (129, 128, 256)],
    );
    gemm_cases(&lowp, &mut rng, &dense, |i| i % 2 == 0);
    let contiguous =
        common::sized(&lowp, [(8, 4096, 4096, 1024), (4, 2000, 896, 512)], [(4, 600, 256, 256), (3, 500, 384, 128)]);
    for (e, t, n, k) in contiguous {
        bf16_case(&lowp, &mut rng, e, t, n, k, None);
    }
    let masked = common::sized(&lowp, [(8, 2000, 4096, 1024, 400)], [(4, 400, 384, 256, 130)]);
    for (e, t, n, k, max_m) in masked {
        bf16_case(&lowp, &mut rng, e, t, n, k, Some(max_m));
    }
}

/// The activation scales reach the math threads by one of two paths: M-major scales whose `ld` is
/// a multiple of 4 and whose base is 16-byte aligned are TMA-loaded into each pipeline stage with
/// the operands; any other layout (row-major, another `ld`, a base off 16-byte alignment) is read
/// from global memory. Both do the same f32 arithmetic, so their outputs must agree bit for bit;
/// the TMA path's is also checked against the reference. Both tile configurations (M = 1 and 33:
/// 64-row tiles, scale boxes reaching past the last row; M = 129: 128-row tiles, a second tile
/// of one row), K of 10 k-blocks (the stage rings wrap).
///
/// Under CUDA-graph capture, new scales of either layout (M-major ones with a tensor map of their
/// own) are captured with no call before, and the replay gives the direct call's bits.
#[test]
fn blockwise_gemm_scale_paths_agree_bit_for_bit() {
    let test = "blockwise_gemm_scale_paths_agree_bit_for_bit";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let stream = lowp.new_stream().expect("stream");
    let poisoned = |m: usize, n: usize| {
        Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); m * n], m, n).expect("d")
    };
    let cases = common::sized(
        &lowp,
        vec![(1, 4096, 7168), (33, 2112, 1280), (129, 7168, 2048)],
        vec![(1, 128, 256), (33, 136, 1280), (129, 200, 1280)],
    );
    for (m, n, k) in cases {
        let g = k / 128;
        let mut p = Problem::new(&stream, &mut rng, m, n, k, true, ScaleKind::Float);
        p.run(&lowp, &stream).expect("gemm, TMA-loaded scales");
        p.check(&lowp, &stream, &mut rng, "TMA-loaded scales: ");
        let want = p.d.to_host(&stream).expect("d back");
        let ld = m_major_ld(m);
        // (layout, f32 before the first scale in the buffer, what it is)
        let others = [
            (ScaleLayout::MMajor { ld: ld + 1 }, 0, "M-major, ld not a multiple of 4"),
            (ScaleLayout::MMajor { ld: ld + 2 }, 0, "M-major, ld 2 past a multiple of 4"),
            (ScaleLayout::MMajor { ld }, 1, "M-major, base 4 bytes past 16-byte alignment"),
            (ScaleLayout::MMajor { ld }, 2, "M-major, base 8 bytes past 16-byte alignment"),
            (ScaleLayout::RowMajor { ld: g }, 0, "row-major"),
            (ScaleLayout::RowMajor { ld: g + 1 }, 0, "row-major, padded ld"),
        ];
        for (layout, offset, what) in others {
            let mut host = vec![0f32; offset];
            host.extend(scales_in(layout, &p.sa_rm, m, g));
            let buf = stream.clone_htod(&host).expect("scales");
            let sa = Scales::from_buffer(buf.slice(offset..), m, g, layout).expect("scales_x");
            let mut d = poisoned(m, n);
            gemm::blockwise_fp8(&lowp, &stream, &p.a_d, &sa, &p.b_d, &p.sb_d, &mut d).expect(what);
            let got = d.to_host(&stream).expect("d back");
            if let Some(i) = (0..m * n).find(|&i| got[i].to_bits() != want[i].to_bits()) {
                panic!(
                    "m {m} n {n} k {k}, {what}: d[{}, {}] = {} where the TMA-loaded scales give {}",
                    i / n,
                    i % n,
                    got[i],
                    want[i]
                );
            }
        }
    }

    // Capture with no call before: TMA-loaded scales (a map of their own) and row-major ones.
    let (m, n, k) = (70, 136, 256);
    let g = k / 128;
    let p = {
        let mut p = Problem::new(&stream, &mut rng, m, n, k, true, ScaleKind::Float);
        p.run(&lowp, &stream).expect("gemm before capture");
        p
    };
    let want = p.d.to_host(&stream).expect("d back");
    let m_major = ScaleLayout::MMajor { ld: m_major_ld(m) };
    let row_major = ScaleLayout::RowMajor { ld: g };
    let fresh = |layout| {
        let buf = stream.clone_htod(&scales_in(layout, &p.sa_rm, m, g)).expect("scales");
        Scales::from_buffer(buf, m, g, layout).expect("scales_x")
    };
    let (new_m_major, new_row_major) = (fresh(m_major), fresh(row_major));
    let (mut d_m_major, mut d_row_major) = (poisoned(m, n), poisoned(m, n));
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).expect("begin capture");
    let m_major_captured = gemm::blockwise_fp8(&lowp, &stream, &p.a_d, &new_m_major, &p.b_d, &p.sb_d, &mut d_m_major);
    let row_major_captured =
        gemm::blockwise_fp8(&lowp, &stream, &p.a_d, &new_row_major, &p.b_d, &p.sb_d, &mut d_row_major);
    let graph = stream
        .end_capture(lowp::cudarc::driver::sys::CUgraphInstantiate_flags(0))
        .expect("end capture")
        .expect("a graph");
    m_major_captured.expect("new M-major scales under capture");
    row_major_captured.expect("new row-major scales under capture");
    for (d, what) in [(&d_m_major, "M-major"), (&d_row_major, "row-major")] {
        let got = d.to_host(&stream).expect("d back");
        assert!(got.iter().all(|v| v.to_bits() == common::POISON16), "{what}: a captured call ran before the replay");
    }
    graph.launch().expect("graph replay");
    for (d, what) in [(&d_m_major, "M-major"), (&d_row_major, "row-major")] {
        let got = d.to_host(&stream).expect("d back");
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "replay with {what} scales");
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
    let sa = Scales::<f32>::zeros(&stream, 4, 2, ScaleLayout::RowMajor { ld: 2 }).expect("scales_a");
    let sb = Scales::<f32>::zeros(&stream, 1, 2, ScaleLayout::RowMajor { ld: 2 }).expect("scales_b");
    let mut d = Matrix::<bf16>::zeros(&stream, 4, 8).expect("d");
    if lowp.arch() == lowp::Arch::Sm90a {
        let mut d_bad = Matrix::<bf16>::zeros(&stream, 4, 9).expect("d");
        let e = gemm::blockwise_fp8(&lowp, &stream, &a, &sa, &b, &sb, &mut d_bad).unwrap_err();
        assert!(matches!(e, lowp::Error::Shape { arg: "out", .. }), "{e}");
        if common::on_sim(&lowp) {
            common::skip(test, "the off-Hopper check needs compute capability 8.x (LOWP_SIM_CC=8.0)");
        }
        gemm::blockwise_fp8(&lowp, &stream, &a, &sa, &b, &sb, &mut d).expect("valid small GEMM");
        stream.synchronize().expect("sync");
    } else {
        let r = gemm::blockwise_fp8(&lowp, &stream, &a, &sa, &b, &sb, &mut d);
        let e = r.unwrap_err();
        assert!(matches!(e, lowp::Error::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("9.0"), "{e}");
    }
}

/// Scale layouts a GEMM does not take are `Error::Layout` naming the argument (Hopper: off it,
/// every call is `Unsupported` before any check).
#[test]
fn gemms_reject_other_scale_layouts() {
    let test = "gemms_reject_other_scale_layouts";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let stream = lowp.new_stream().expect("stream");
    let (m, n, k) = (4, 8, 256);
    let a = Matrix::<F8E4M3>::zeros(&stream, m, k).expect("a");
    let b = Matrix::<F8E4M3>::zeros(&stream, n, k).expect("b");
    let row_major_a = Scales::<f32>::zeros(&stream, m, 2, ScaleLayout::RowMajor { ld: 2 }).expect("scales_a");
    let swizzled_a = Scales::<f32>::zeros(&stream, m, 2, ScaleLayout::Swizzled).expect("scales_a");
    let row_major_b = Scales::<f32>::zeros(&stream, 1, 2, ScaleLayout::RowMajor { ld: 2 }).expect("scales_b");
    let m_major_b = Scales::<f32>::zeros(&stream, 1, 2, ScaleLayout::MMajor { ld: 4 }).expect("scales_b");
    let mut d = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); m * n], m, n).expect("d");
    let e = gemm::blockwise_fp8(&lowp, &stream, &a, &swizzled_a, &b, &row_major_b, &mut d).unwrap_err();
    assert!(matches!(e, lowp::Error::Layout { arg: "scales_x", actual: ScaleLayout::Swizzled, .. }), "{e}");
    let e = gemm::blockwise_fp8(&lowp, &stream, &a, &row_major_a, &b, &m_major_b, &mut d).unwrap_err();
    assert!(matches!(e, lowp::Error::Layout { arg: "scales_w", .. }), "{e}");
    // grouped: 2 experts of [8, 256]
    let w = MatrixBatch::from_host(&stream, &vec![F8E4M3::from_bits(0); 2 * n * k], 2, n, k).expect("w");
    let ends = stream.clone_htod(&[2i32, 4]).expect("ends");
    let groups = GroupLayout::Contiguous { ends: &ends };
    let m_major_w = Scales::<f32>::zeros(&stream, 2, 2, ScaleLayout::MMajor { ld: 4 }).expect("scales_w");
    let row_major_w = Scales::<f32>::zeros(&stream, 2, 2, ScaleLayout::RowMajor { ld: 2 }).expect("scales_w");
    let e = gemm::grouped_fp8(&lowp, &stream, &a, &row_major_a, &w, &m_major_w, &groups, &mut d, None).unwrap_err();
    assert!(matches!(e, lowp::Error::Layout { arg: "scales_w", .. }), "{e}");
    let e = gemm::grouped_fp8(&lowp, &stream, &a, &swizzled_a, &w, &row_major_w, &groups, &mut d, None).unwrap_err();
    assert!(matches!(e, lowp::Error::Layout { arg: "scales_x", .. }), "{e}");
    // one scale row per expert short
    let short_w = Scales::<f32>::zeros(&stream, 1, 2, ScaleLayout::RowMajor { ld: 2 }).expect("scales_w");
    let e = gemm::grouped_fp8(&lowp, &stream, &a, &row_major_a, &w, &short_w, &groups, &mut d, None).unwrap_err();
    assert!(matches!(e, lowp::Error::Shape { arg: "scales_w", .. }), "{e}");
    assert!(d.to_host(&stream).expect("d").iter().all(|v| v.to_bits() == common::POISON16), "a refused call wrote out");
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
    let sa =
        Scales::row_major(stream.clone_htod(&vec![1.0f32; m * (k / 128)]).expect("sa"), m, k / 128).expect("scales_a");
    let sb = Scales::row_major(stream.clone_htod(&vec![1.0f32; (n / 128) * (k / 128)]).expect("sb"), n / 128, k / 128)
        .expect("scales_b");
    let mut d = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); m * n], m, n).expect("d");
    gemm::blockwise_fp8(&lowp, &stream, &a_d, &sa, &b_d, &sb, &mut d).expect("gemm");
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
                let from: Vec<(usize, usize)> = (0..n * k)
                    .filter(|&i| bf16::from_f32(e(b[i])).to_f32() == v)
                    .take(3)
                    .map(|i| (i / k, i % k))
                    .collect();
                wrong.push(format!(
                    "d[{r}, {j}] = {v} (want B[{j}, {}] = {}; B[n, k] holding that value: {from:?})",
                    perm(r),
                    want.to_f32()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "permutation probe failed:\n{}", wrong.join("\n"));
}

/// A GEMM captured in a CUDA graph, with no call of it before, computes the operands' contents at
/// each replay: replayed after the operands were rewritten in place (same addresses) and after
/// another GEMM ran in between (whose tensor maps must not take the captured one's place).
#[test]
fn blockwise_gemm_replays_in_a_cuda_graph() {
    let test = "blockwise_gemm_replays_in_a_cuda_graph";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let stream = lowp.new_stream().expect("stream");
    let mut p = Problem::new(&stream, &mut rng, 70, 136, 256, true, ScaleKind::Float);
    let mut other = Problem::new(&stream, &mut rng, 33, 200, 384, false, ScaleKind::Ue8m0);
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).expect("begin capture");
    let captured = p.run(&lowp, &stream);
    let graph = stream
        .end_capture(lowp::cudarc::driver::sys::CUgraphInstantiate_flags(0))
        .expect("end capture")
        .expect("a graph");
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

/// Several GEMMs captured in one graph, none of them run before, on a handle of their own (so
/// that each kernel's first use, its load, shared-memory attribute and cluster-occupancy query,
/// happens under capture): one with TMA-stored output (dense D, 16-byte aligned rows), one storing
/// from the math threads (rows of 404 bytes), one in split-K clusters. Nothing runs at capture;
/// each replay computes every one from the operands then.
#[test]
fn blockwise_gemms_capture_without_a_warm_up() {
    let test = "blockwise_gemms_capture_without_a_warm_up";
    let Some((_shared, mut rng)) = hopper(test) else { return };
    // A context object of its own: nothing loaded, no attribute set, no query made yet.
    let lowp = lowp::Lowp::new(0).expect("a second handle");
    let stream = lowp.new_stream().expect("stream");
    let mut tma_d = Problem::new(&stream, &mut rng, 70, 136, 256, true, ScaleKind::Float);
    let mut thread_d = Problem::new(&stream, &mut rng, 33, 202, 384, false, ScaleKind::Ue8m0);
    let mut split = Problem::new(&stream, &mut rng, 16, 64, 1024, true, ScaleKind::Float);
    let split_config = GemmConfig { block_m: 64, block_n: 64, cluster: 1, split_k: 2 };
    let can_split = lowp.sm_count() >= 2;
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).expect("begin capture");
    let captured = [
        tma_d.run(&lowp, &stream),
        thread_d.run(&lowp, &stream),
        if can_split { split.run_with(&lowp, &stream, split_config) } else { Ok(()) },
    ];
    let graph = stream
        .end_capture(lowp::cudarc::driver::sys::CUgraphInstantiate_flags(0))
        .expect("end capture")
        .expect("a graph");
    for (i, r) in captured.into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("GEMM {i} under capture: {e}"));
    }
    for (p, what) in [(&tma_d, "TMA-stored D"), (&thread_d, "thread-stored D"), (&split, "split-K")] {
        let d = p.d.to_host(&stream).expect("d back");
        assert!(d.iter().all(|v| v.to_bits() == common::POISON16), "{what}: a captured call ran at capture");
    }
    for replay in 0..2 {
        tma_d.redraw(&stream, &mut rng);
        thread_d.redraw(&stream, &mut rng);
        split.redraw(&stream, &mut rng);
        graph.launch().expect("graph replay");
        tma_d.check(&lowp, &stream, &mut rng, &format!("TMA-stored D, replay {replay}: "));
        thread_d.check(&lowp, &stream, &mut rng, &format!("thread-stored D, replay {replay}: "));
        if can_split {
            split.check(&lowp, &stream, &mut rng, &format!("split-K, replay {replay}: "));
        }
    }
}

/// FP8 weight scales: a CTA keeps its tiles' in shared memory when its k-blocks fit the buffer
/// (256), and reads them from global memory at every k-block when they do not. K of 256
/// k-blocks fills the buffer (both halves of each thread's share), 257 takes global memory, and
/// 300 split over 2 CTAs fits again (a slice of 150 from k-block 150); tiles inside one scale
/// block and straddling two.
#[test]
fn blockwise_gemm_weight_scales_past_the_shared_buffer() {
    let test = "blockwise_gemm_weight_scales_past_the_shared_buffer";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let stream = lowp.new_stream().expect("stream");
    let config = |block_m, block_n, split_k| GemmConfig { block_m, block_n, cluster: 1, split_k };
    for (c, m, n, k_blocks) in [
        (config(64, 112, 1), 64, 130, 256),
        (config(64, 64, 1), 64, 130, 257),
        (config(64, 112, 1), 64, 130, 257),
        (config(64, 64, 2), 64, 64, 300),
    ] {
        let k = 128 * k_blocks;
        let mut p = Problem::new(&stream, &mut rng, m, n, k, true, ScaleKind::Float);
        if c.split_k > lowp.sm_count() as usize {
            // a cluster of 2 on 1 simulated SM
            let e = p.run_with(&lowp, &stream, c).expect_err("a cluster the device does not fit");
            assert!(matches!(e, lowp::Error::InvalidValue { arg: "config", .. }), "{c}: {e}");
            continue;
        }
        p.run_with(&lowp, &stream, c).expect("gemm in a given configuration");
        p.check(&lowp, &stream, &mut rng, &format!("config {c}, K = {k}: "));
    }
}

// ---------------------------------------------------------------------------------------------
// Grouped (MoE) GEMMs

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
            let spans: Vec<(usize, usize)> = sz
                .iter()
                .map(|s| {
                    let sp = (start, start + s);
                    start += s;
                    sp
                })
                .collect();
            (spans.iter().map(|&(_, e)| e as i32).collect(), spans)
        }
        Some(m) => {
            let counts: Vec<usize> = sz.iter().map(|s| (*s).min(m)).collect();
            (
                counts.iter().map(|c| *c as i32).collect(),
                counts.iter().enumerate().map(|(g, c)| (g * m, g * m + c)).collect(),
            )
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

fn check(lowp: &lowp::Lowp, what: &str, got: &[bf16], want: &[Vec<f64>], rows: &[usize], n: usize) {
    let (mut err2, mut ref2) = (0.0f64, 0.0f64);
    for (w, &r) in want.iter().zip(rows) {
        let row_max = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for j in 0..n {
            let v = got[r * n + j].to_f64();
            assert!(!v.is_nan(), "{what}: y[{r}, {j}] not written");
            assert!(
                (v - w[j]).abs() <= 0.01 * row_max + 1e-30,
                "{what}: y[{r}, {j}] = {v}, reference {} (row max {row_max})",
                w[j]
            );
            err2 += excess_over_rounding(v, w[j]).powi(2);
            ref2 += w[j] * w[j];
        }
    }
    if ref2 > 0.0 {
        // as `excess_bound`: the simulator's wgmma rounds once to f32
        let (rel, bound) = ((err2 / ref2).sqrt(), common::gemm_bound(lowp));
        assert!(rel <= bound, "{what}: relative Frobenius error beyond the bf16 rounding {rel:e} (bound {bound:e})");
    }
}

/// The layout of a group table from `group_table`: contiguous ends, or the counts of masked slabs
/// of `max_m` rows.
fn group_layout(table: &CudaSlice<i32>, masked: Option<usize>) -> GroupLayout<'_, CudaSlice<i32>> {
    match masked {
        None => GroupLayout::Contiguous { ends: table },
        Some(max_m) => GroupLayout::Masked { counts: table, max_m },
    }
}

/// Rows of each masked slab past its count keep the poison (the first column is enough: a tile
/// writes whole rows).
fn check_masked_rows(what: &str, got: &[bf16], spans: &[(usize, usize)], max_m: usize, n: usize) {
    for (g, &(_, b)) in spans.iter().enumerate() {
        if b < (g + 1) * max_m {
            assert_eq!(
                got[b * n].to_bits(),
                common::POISON16,
                "{what}: row {b} past the count of group {g} was written"
            );
        }
    }
}

/// Row `r` (in expert `g`) of x · W[g]ᵀ from dequantized f64 rows.
fn ref_row(
    x: &dyn Fn(usize, usize) -> f64,
    w: &dyn Fn(usize, usize) -> f64,
    r: usize,
    g: usize,
    n: usize,
    k: usize,
) -> Vec<f64> {
    (0..n).map(|j| (0..k).map(|c| x(r, c) * w(g * n + j, c)).sum()).collect()
}

fn bf16_case(
    lowp: &lowp::Lowp,
    rng: &mut Rng,
    experts: usize,
    total: usize,
    n: usize,
    k: usize,
    masked: Option<usize>,
) {
    bf16_case_in(lowp, rng, (experts, total, n, k, masked), None);
}

/// A grouped bf16 case `(experts, tokens, N, K, masked max_m)` in the configuration the op picks
/// or `config`.
fn bf16_case_in(
    lowp: &lowp::Lowp,
    rng: &mut Rng,
    (experts, total, n, k, masked): (usize, usize, usize, usize, Option<usize>),
    config: Option<GemmConfig>,
) {
    let stream = lowp.new_stream().expect("stream");
    let sz = sizes(rng, experts, total);
    let rows = masked.map_or(total, |m| experts * m);
    let x: Vec<bf16> = (0..rows * k).map(|_| bf16::from_f64(rng.normal())).collect();
    let w: Vec<bf16> = (0..experts * n * k).map(|_| bf16::from_f64(rng.normal() * 0.05)).collect();
    let x_d = Matrix::from_host(&stream, &x, rows, k).expect("x");
    let w_d = MatrixBatch::from_host(&stream, &w, experts, n, k).expect("w");
    let mut y = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); rows * n], rows, n).expect("y");
    let (table, spans) = group_table(&sz, masked);
    let table_d = stream.clone_htod(&table).expect("table");
    let layout = group_layout(&table_d, masked);
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    match config {
        None => gemm::grouped_bf16(lowp, &stream, &x_d, &w_d, &layout, &mut y, Some(&mut flag)),
        Some(c) => gemm::grouped_bf16_with(lowp, &stream, &x_d, &w_d, &layout, c, &mut y, Some(&mut flag)),
    }
    .expect("grouped gemm");
    let got = y.to_host(&stream).expect("y back");
    assert_eq!(flag.read(&stream).expect("flag"), 0, "valid offsets raised the flag");
    let xf = |r: usize, c: usize| x[r * k + c].to_f64();
    let wf = |r: usize, c: usize| w[r * k + c].to_f64();
    let rows_checked = rows_to_check(&spans);
    let want: Vec<Vec<f64>> = rows_checked.iter().map(|&(r, g)| ref_row(&xf, &wf, r, g, n, k)).collect();
    let rows_checked: Vec<usize> = rows_checked.iter().map(|&(r, _)| r).collect();
    let what = format!("bf16 E {experts} T {total} N {n} K {k} masked {masked:?} config {config:?}");
    check(lowp, &what, &got, &want, &rows_checked, n);
    // rows outside every group keep the poison (masked layout: past each count)
    if let Some(m) = masked {
        check_masked_rows(&what, &got, &spans, m, n);
    }
}

#[test]
fn bf16_grouped_gemm_matches_reference() {
    let test = "bf16_grouped_gemm_matches_reference";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let contiguous = common::sized(
        &lowp,
        [
            (8, 1000, 256, 512),
            (32, 777, 128, 256),
            (4, 3, 384, 192),
            (64, 4096, 512, 1024),
            (8, 1500, 2112, 1024),
            (4, 300, 384, 512),
            (1, 100, 7000, 1024),
        ],
        [
            (8, 300, 256, 256),
            (32, 177, 128, 128),
            (4, 3, 384, 192),
            (16, 600, 256, 256),
            (6, 260, 200, 576),
            (4, 300, 256, 256),
            (1, 100, 100, 1024), // 128 × 64 tiles on 4 SMs, 16 k-blocks (8 stages)
        ],
    );
    for (e, t, n, k) in contiguous {
        bf16_case(&lowp, &mut rng, e, t, n, k, None);
    }
    let masked = common::sized(
        &lowp,
        [(8, 400, 256, 512, 96), (16, 2000, 128, 256, 200), (32, 800, 512, 1024, 32), (1, 40, 2112, 1024, 40)],
        // the last: 64 × 64 tiles on 4 SMs, 16 k-blocks (13 stages)
        [(8, 150, 256, 256, 40), (16, 400, 128, 128, 48), (4, 320, 128, 256, 80), (1, 40, 136, 1024, 40)],
    );
    for (e, t, n, k, max_m) in masked {
        bf16_case(&lowp, &mut rng, e, t, n, k, Some(max_m));
    }
}

#[test]
fn fp8_grouped_gemm_matches_reference() {
    let test = "fp8_grouped_gemm_matches_reference";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    // (experts, tokens, N, K, masked max_m, M-major activation scales, UE8M0 scales)
    let cases = common::sized(
        &lowp,
        [
            (8, 1000, 256, 512, None, false, false),
            (16, 555, 384, 256, None, true, false),
            (8, 300, 256, 384, Some(64), false, true),
            (8, 900, 2112, 1152, None, true, true),
            (4, 260, 256, 512, Some(65), true, false),
            (4, 260, 384, 512, None, false, true),
            (8, 300, 2112, 512, Some(64), true, false),
            (1, 100, 7000, 1280, None, false, true),
            (2, 90, 4000, 1280, Some(45), true, true),
            // decode shapes in split-K clusters on 132 SMs
            (1, 40, 2112, 7168, Some(40), true, false),
            (2, 60, 1024, 7168, Some(32), false, true),
            (1, 30, 576, 7168, None, true, true),
            // masked decode: 8 slabs of 32 rows, N = 512: 64 tiles of 64 × 64, clusters of 2
            (8, 200, 512, 7168, Some(32), false, false),
        ],
        [
            (8, 200, 256, 256, None, false, false),
            (16, 155, 384, 128, None, true, false),
            (8, 120, 256, 256, Some(24), false, true),
            (6, 260, 200, 640, None, true, true),
            (4, 260, 136, 256, Some(65), true, false),
            (4, 300, 256, 384, None, false, true),
            // 64-column tiles on 4 SMs: 64 × 64 (masked), 128 × 64 (contiguous, 100 rows)
            (1, 40, 200, 384, Some(40), true, false),
            (1, 100, 100, 256, None, false, true),
            (2, 90, 72, 1280, Some(45), true, true),
            // split-K clusters of 2 on 4 SMs (K of 8 to 16 k-blocks): 2 tiles of 64 × 64 (the last
            // case: the contiguous layout's bound; 1 real tile)
            (1, 40, 100, 2048, Some(40), true, false),
            (2, 60, 64, 1024, Some(32), false, true),
            (1, 30, 64, 1024, None, true, true),
            // 5 or 6 tiles (non-empty slabs) on 4 SMs: clusters of 2, the first walking 3 tiles
            // (the reduction barriers' phases and the stage rings carry over from tile to tile)
            (6, 72, 64, 2048, Some(16), false, false),
        ],
    );
    for case in cases {
        fp8_grouped_case(&lowp, &mut rng, case, None);
    }
}

/// A grouped FP8 case (experts, tokens, N, K, masked max_m, M-major activation scales, UE8M0
/// scales) in the configuration the op picks or `config`: random finite E4M3 codes and scales,
/// the float64 reference on the rows of `rows_to_check`, the masked slabs' rows past their
/// counts still poisoned.
fn fp8_grouped_case(
    lowp: &lowp::Lowp,
    rng: &mut Rng,
    (experts, total, n, k, masked, m_major, ue8m0): (usize, usize, usize, usize, Option<usize>, bool, bool),
    config: Option<GemmConfig>,
) {
    let stream = lowp.new_stream().expect("stream");
    let sz = sizes(rng, experts, total);
    let rows = masked.map_or(total, |m: usize| experts * m);
    let code = |rng: &mut Rng| loop {
        let c = rng.next_u64() as u8;
        if c & 0x7f != 0x7f {
            break c;
        }
    };
    let x: Vec<u8> = (0..rows * k).map(|_| code(rng)).collect();
    let w: Vec<u8> = (0..experts * n * k).map(|_| code(rng)).collect();
    let (kb, nb) = (k / 128, n.div_ceil(128));
    // UE8M0: the scale the recipe makes for a group whose largest magnitude is 1..2
    let scale = |rng: &mut Rng| {
        let amax = 1.0 + rng.uniform() as f32;
        if ue8m0 {
            reff::scale(amax, lowp::ScaleRounding::Ceil).expect("Ceil is a UE8M0 rounding")
        } else {
            amax / 448.0
        }
    };
    let sx: Vec<f32> = (0..rows * kb).map(|_| scale(rng)).collect();
    let sw: Vec<f32> = (0..experts * nb * kb).map(|_| scale(rng)).collect();
    let to8 = |v: &[u8]| v.iter().map(|&c| F8E4M3::from_bits(c)).collect::<Vec<_>>();
    let x_d = Matrix::from_host(&stream, &to8(&x), rows, k).expect("x");
    let w_d = MatrixBatch::from_host(&stream, &to8(&w), experts, n, k).expect("w");
    let (sx_layout, sx_dev) = if m_major {
        // column c of the scales at c · ld, ld past the rows (padding never read)
        let ld = m_major_ld(rows + 1);
        let mut v = vec![0f32; ld * kb];
        for r in 0..rows {
            for c in 0..kb {
                v[c * ld + r] = sx[r * kb + c];
            }
        }
        (ScaleLayout::MMajor { ld }, v)
    } else {
        (ScaleLayout::RowMajor { ld: kb }, sx.clone())
    };
    let sx_d = Scales::from_buffer(stream.clone_htod(&sx_dev).expect("sx"), rows, kb, sx_layout).expect("scales_x");
    let sw_d = Scales::row_major(stream.clone_htod(&sw).expect("sw"), experts * nb, kb).expect("scales_w");
    let mut y = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); rows * n], rows, n).expect("y");
    let (table, spans) = group_table(&sz, masked);
    let table_d = stream.clone_htod(&table).expect("table");
    let layout = group_layout(&table_d, masked);
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    match config {
        None => gemm::grouped_fp8(lowp, &stream, &x_d, &sx_d, &w_d, &sw_d, &layout, &mut y, Some(&mut flag)),
        Some(c) => gemm::grouped_fp8_with(lowp, &stream, &x_d, &sx_d, &w_d, &sw_d, &layout, c, &mut y, Some(&mut flag)),
    }
    .expect("gemm");
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
    let what = format!(
        "fp8 E {experts} T {total} N {n} K {k} masked {masked:?} M-major scales {m_major} UE8M0 {ue8m0} config {config:?}"
    );
    check(lowp, &what, &got, &want, &rows_checked, n);
    if let Some(m) = masked {
        check_masked_rows(&what, &got, &spans, m, n);
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
    let w = MatrixBatch::from_host(&stream, &vec![bf16::ONE; experts * n * k], experts, n, k).expect("w");
    // Decreasing, past the row count, negative: each end is clamped into [previous end, rows],
    // so the groups cover rows [0, covered) and the rest keep the poison.
    for (table, covered) in
        [(vec![100i32, 50, 200, 300], 300), (vec![100, 200, 250, 100_000], 300), (vec![-5, 10, 20, 30], 30)]
    {
        let mut y = Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); rows * n], rows, n).expect("y");
        let t = stream.clone_htod(&table).expect("table");
        let mut flag = ErrorFlag::new(&stream).expect("flag");
        gemm::grouped_bf16(&lowp, &stream, &x, &w, &GroupLayout::Contiguous { ends: &t }, &mut y, Some(&mut flag))
            .expect("launch");
        assert_eq!(flag.read(&stream).expect("flag"), gemm::ERR_GROUP_BOUNDS, "offsets {table:?} not flagged");
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
    let mut y =
        Matrix::from_host(&stream, &vec![bf16::from_bits(common::POISON16); experts * max_m * n], experts * max_m, n)
            .expect("y");
    let t = stream.clone_htod(&counts).expect("counts");
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    gemm::grouped_bf16(&lowp, &stream, &x, &w, &GroupLayout::Masked { counts: &t, max_m }, &mut y, Some(&mut flag))
        .expect("launch");
    assert_eq!(flag.read(&stream).expect("flag"), gemm::ERR_GROUP_BOUNDS, "counts {counts:?} not flagged");
    for (i, v) in y.to_host(&stream).expect("y").into_iter().enumerate() {
        let (g, r) = ((i / n) / max_m, (i / n) % max_m);
        let written = (r as i32) < counts[g].clamp(0, max_m as i32);
        let want = if written { bf16::from_f32(k as f32).to_bits() } else { common::POISON16 };
        assert_eq!(v.to_bits(), want, "counts {counts:?}: y[{}, {}] = {v}", i / n, i % n);
    }
}

/// A grouped GEMM captured in a CUDA graph reads its operands and its group table on the device at
/// every replay: replayed after x, W and the offsets were rewritten in place (other group sizes),
/// and after other grouped GEMMs (other operands, other shapes) ran in between; a second grouped
/// GEMM in the same capture, whose operands never ran before, replays too.
#[test]
fn bf16_grouped_gemm_replays_in_a_cuda_graph() {
    let test = "bf16_grouped_gemm_replays_in_a_cuda_graph";
    let Some((lowp, mut rng)) = hopper(test) else { return };
    let stream = lowp.new_stream().expect("stream");
    let (experts, total, n, k) = (6, 200, 136, 192);
    let mut x_d = Matrix::<bf16>::zeros(&stream, total, k).expect("x");
    let mut w_d = MatrixBatch::from_host(&stream, &vec![bf16::ZERO; experts * n * k], experts, n, k).expect("w");
    let mut y = Matrix::<bf16>::zeros(&stream, total, n).expect("y");
    let mut ends_d = stream.alloc_zeros::<i32>(experts).expect("ends");
    // Writes new operands and group sizes in place; returns what to compare against.
    let redraw = |rng: &mut Rng,
                  x_d: &mut Matrix<bf16>,
                  w_d: &mut MatrixBatch<bf16>,
                  y: &mut Matrix<bf16>,
                  ends_d: &mut CudaSlice<i32>| {
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
    let run = |x_d: &Matrix<bf16>, w_d: &MatrixBatch<bf16>, y: &mut Matrix<bf16>, ends_d: &CudaSlice<i32>| {
        gemm::grouped_bf16(&lowp, &stream, x_d, w_d, &GroupLayout::Contiguous { ends: ends_d }, y, None)
    };
    run(&x_d, &w_d, &mut y, &ends_d).expect("grouped gemm before capture");
    check(&lowp, "before capture", &y.to_host(&stream).expect("y back"), &want, &rows, n);

    // A second grouped GEMM (other operands, 64 rows in 6 groups), captured with no call before.
    let other_rows = 64;
    let other_x: Vec<bf16> = (0..other_rows * k).map(|_| bf16::from_f64(rng.normal())).collect();
    let other_w: Vec<bf16> = (0..experts * n * k).map(|_| bf16::from_f64(rng.normal() * 0.05)).collect();
    let (other_table, other_spans) = group_table(&[10, 10, 10, 10, 10, 14], None);
    let other_checked = rows_to_check(&other_spans);
    let other_want: Vec<Vec<f64>> = other_checked
        .iter()
        .map(|&(r, g)| ref_row(&|r, c| other_x[r * k + c].to_f64(), &|r, c| other_w[r * k + c].to_f64(), r, g, n, k))
        .collect();
    let other_rows_checked: Vec<usize> = other_checked.iter().map(|&(r, _)| r).collect();
    let other_x_d = Matrix::from_host(&stream, &other_x, other_rows, k).expect("x");
    let other_w_d = MatrixBatch::from_host(&stream, &other_w, experts, n, k).expect("w");
    let mut other_y = Matrix::<bf16>::zeros(&stream, other_rows, n).expect("y");
    let other_ends = stream.clone_htod(&other_table).expect("ends");
    let poison_other = |other_y: &mut Matrix<bf16>| {
        let poison = vec![bf16::from_bits(common::POISON16); other_rows * n];
        stream.memcpy_htod(&poison, other_y.buffer_mut()).expect("other y");
    };
    poison_other(&mut other_y);
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).expect("begin capture");
    let captured = run(&x_d, &w_d, &mut y, &ends_d);
    let cold = run(&other_x_d, &other_w_d, &mut other_y, &other_ends);
    let graph = stream
        .end_capture(lowp::cudarc::driver::sys::CUgraphInstantiate_flags(0))
        .expect("end capture")
        .expect("a graph");
    captured.expect("grouped gemm under capture");
    cold.expect("a grouped gemm whose operands never ran before, under capture");
    let untouched = other_y.to_host(&stream).expect("other y back");
    assert!(untouched.iter().all(|v| v.to_bits() == common::POISON16), "a captured call ran at capture");

    for replay in 0..3 {
        let (want, rows) = redraw(&mut rng, &mut x_d, &mut w_d, &mut y, &mut ends_d);
        poison_other(&mut other_y);
        graph.launch().expect("graph replay");
        check(&lowp, &format!("replay {replay}"), &y.to_host(&stream).expect("y back"), &want, &rows, n);
        let got = other_y.to_host(&stream).expect("other y back");
        check(&lowp, &format!("replay {replay}, the cold capture"), &got, &other_want, &other_rows_checked, n);
        // Another grouped GEMM between replays.
        poison_other(&mut other_y);
        run(&other_x_d, &other_w_d, &mut other_y, &other_ends).expect("grouped gemm between replays");
        let got = other_y.to_host(&stream).expect("other y back");
        check(&lowp, &format!("between replays {replay}"), &got, &other_want, &other_rows_checked, n);
    }
}

/// The dense epilogue's two store paths agree bit for bit: D with a 16-byte aligned base and row
/// stride (TMA stores, boxes clipped at M and N, neither a multiple of the tile), and D's the TMA
/// cannot describe (a base 4 bytes past a 16-byte boundary; a row stride of N + 2 elements, not a
/// multiple of 8), which the math threads store in 16-byte chunks, pairs and singles. The bytes
/// between the rows of a strided D and past its last row stay as they were. The split-K kernels'
/// stores from registers too, with an odd N.
#[test]
fn blockwise_gemm_stores_dense_outputs_by_tma_and_by_the_fallback_alike() {
    let test = "blockwise_gemm_stores_dense_outputs";
    let lowp = common::gpu(test);
    if !common::hopper_gemm(test, &lowp) {
        return;
    }
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh(test);
    for (m, n, k) in [(70, 136, 256), (131, 200, 128), (9, 30, 128)] {
        let mut p = Problem::new(&stream, &mut rng, m, n, k, false, ScaleKind::Float);
        p.run(&lowp, &stream).expect("gemm");
        p.check(&lowp, &stream, &mut rng, "aligned D: ");
        let want = p.d.to_host(&stream).expect("d back");
        // (element offset of D in its buffer, row stride in elements)
        for (offset, stride) in [(2, n), (0, n + 2), (2, n + 2)] {
            let len = offset + (m - 1) * stride + n + 8;
            let poison = vec![bf16::from_bits(common::POISON16); len];
            let mut buf = stream.clone_htod(&poison).expect("strided d");
            {
                let mut d = Matrix::from_buffer_strided(buf.slice_mut(offset..), m, n, stride).expect("strided d");
                gemm::blockwise_fp8(&lowp, &stream, &p.a_d, &p.sa_d, &p.b_d, &p.sb_d, &mut d).expect("gemm");
            }
            let got = stream.clone_dtoh(&buf).expect("d back");
            for (i, v) in got.iter().enumerate() {
                let (r, c) = ((i.wrapping_sub(offset)) / stride, (i.wrapping_sub(offset)) % stride);
                let inside = i >= offset && r < m && c < n;
                let w = if inside { want[r * n + c].to_bits() } else { common::POISON16 };
                assert_eq!(
                    v.to_bits(),
                    w,
                    "m {m} n {n} offset {offset} stride {stride}: element {i} (row {r}, column {c})"
                );
            }
        }
    }
    // Split-K clusters store from registers, in bf16 pairs and a single at an odd N's tail:
    // (9, 31, 1024), the first 31 rows of B of a (9, 32, 1024) problem, both in split-K clusters
    // of 2, into a D of row stride 32 whose last column stays poisoned.
    let (m, n, k) = (9, 32, 1024);
    // (on one SM, where no cluster of 2 fits, the same tile without split-K: its stores from the
    // epilogue buffer, pairs and a single at the tail too)
    let split2 = GemmConfig { block_m: 64, block_n: 64, cluster: 1, split_k: if lowp.sm_count() >= 2 { 2 } else { 1 } };
    let mut p = Problem::new(&stream, &mut rng, m, n, k, false, ScaleKind::Float);
    p.run_with(&lowp, &stream, split2).expect("gemm");
    p.check(&lowp, &stream, &mut rng, "split-K: ");
    let want = p.d.to_host(&stream).expect("d back");
    let b_odd = Matrix::from_buffer(p.b_d.buffer().slice(..(n - 1) * k), n - 1, k).expect("31 rows of b");
    let mut buf = stream.clone_htod(&vec![bf16::from_bits(common::POISON16); m * n]).expect("d");
    {
        let mut d = Matrix::from_buffer_strided(buf.slice_mut(..), m, n - 1, n).expect("d of 31 columns");
        gemm::blockwise_fp8_with(&lowp, &stream, &p.a_d, &p.sa_d, &b_odd, &p.sb_d, split2, &mut d)
            .expect("gemm, odd N");
    }
    let got = stream.clone_dtoh(&buf).expect("d back");
    for (i, v) in got.iter().enumerate() {
        let w = if i % n < n - 1 { want[i].to_bits() } else { common::POISON16 };
        assert_eq!(v.to_bits(), w, "split-K, N = 31: element {i} (row {}, column {})", i / n, i % n);
    }
}
