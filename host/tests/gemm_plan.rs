//! Unit tests of `gemm::plan` (the dense blockwise GEMM and the grouped GEMMs): no GPU needed.
use super::plan::*;
use crate::abi::GEMM_SPLITS;
use crate::error::Error;
use crate::fp8::plan::ScaleInput;
use crate::scale::{ScaleLayout, m_major_ld};
use crate::validate::Operand;

const X: u64 = 0x7000_0000_0000;
const W: u64 = 0x7100_0000_0000;
const Y: u64 = 0x7200_0000_0000;
const SA: u64 = 0x7300_0000_0000;
const SB: u64 = 0x7400_0000_0000;

fn op(name: &'static str, rows: usize, cols: usize, stride: usize, addr: u64, elem: usize) -> Operand {
    Operand { name, rows, cols, stride, addr, elem }
}

fn dense(m: usize, n: usize, k: usize) -> DenseInput {
    let ld = m_major_ld(m);
    DenseInput {
        x: op("x", m, k, k, X, 1),
        scales_x: ScaleInput { layout: ScaleLayout::MMajor { ld }, shape: [m, k / 128], addr: SA, len: ld * (k / 128) },
        w: op("w", n, k, k, W, 1),
        scales_w: ScaleInput {
            layout: ScaleLayout::RowMajor { ld: k / 128 },
            shape: [n.div_ceil(128), k / 128],
            addr: SB,
            len: n.div_ceil(128) * (k / 128),
        },
        out: op("out", m, n, n, Y, 2),
    }
}

#[test]
fn dense_plan_accepts_deepseek_shapes_and_odd_m_n() {
    for (m, n, k) in [(4096, 7168, 2048), (1, 2112, 7168), (7, 128, 128), (1000, 2112, 7168)] {
        let p = dense_plan(&dense(m, n, k)).unwrap();
        assert_eq!((p.rows as usize, p.n as usize, p.k as usize), (m, n, k));
        assert_eq!((p.sa_row_stride, p.sa_col_stride), (1, m_major_ld(m) as u64));
        assert_eq!(p.sb_stride as usize, k / 128);
        assert_eq!(p.sa_tma, 1, "M-major scales with m_major_ld go through the TMA");
    }
    // row-major activation scales with a padded ld
    let mut g = dense(7, 128, 256);
    g.scales_x = ScaleInput { layout: ScaleLayout::RowMajor { ld: 3 }, shape: [7, 2], addr: SA, len: 20 };
    let p = dense_plan(&g).unwrap();
    assert_eq!((p.sa_row_stride, p.sa_col_stride), (3, 1));
    assert_eq!(p.sa_tma, 0);
}

#[test]
fn activation_scales_take_the_tma_only_when_aligned_m_major() {
    let with = |layout, addr, len| {
        let mut g = dense(7, 128, 256);
        g.scales_x = ScaleInput { layout, shape: [7, 2], addr, len };
        dense_plan(&g).unwrap().sa_tma
    };
    // M-major, ld a multiple of 4 f32 (16 bytes) and a 16-byte aligned base: TMA
    assert_eq!(with(ScaleLayout::MMajor { ld: 8 }, SA, 16), 1);
    assert_eq!(with(ScaleLayout::MMajor { ld: 12 }, SA + 16, 24), 1);
    // M-major with another ld or base, and row-major (any ld): global memory
    assert_eq!(with(ScaleLayout::MMajor { ld: 7 }, SA, 14), 0);
    assert_eq!(with(ScaleLayout::MMajor { ld: 9 }, SA, 18), 0);
    assert_eq!(with(ScaleLayout::MMajor { ld: 8 }, SA + 4, 16), 0);
    assert_eq!(with(ScaleLayout::MMajor { ld: 8 }, SA + 8, 16), 0);
    assert_eq!(with(ScaleLayout::RowMajor { ld: 4 }, SA, 28), 0);
    assert_eq!(with(ScaleLayout::RowMajor { ld: 2 }, SA, 14), 0);
    // grouped FP8: the same rule; bf16 has no scales
    let mut s = grouped(100, 512, 256, 4, 1);
    assert_eq!(grouped_plan(&s).unwrap().sa_tma, 0, "row-major");
    if let Some((x, _)) = &mut s.scales {
        x.layout = ScaleLayout::MMajor { ld: 104 };
        x.len = 3 * 104 + 100;
    }
    assert_eq!(grouped_plan(&s).unwrap().sa_tma, 1, "M-major, ld 104");
    if let Some((x, _)) = &mut s.scales {
        x.layout = ScaleLayout::MMajor { ld: 102 };
        x.len = 3 * 102 + 100;
    }
    assert_eq!(grouped_plan(&s).unwrap().sa_tma, 0, "M-major, ld 102");
    assert_eq!(grouped_plan(&grouped(100, 512, 256, 4, 2)).unwrap().sa_tma, 0, "bf16");
}

#[test]
fn dense_plan_rejects_bad_arguments() {
    let mut g = dense(64, 256, 200);
    g.w.cols = 200;
    assert!(matches!(dense_plan(&g), Err(Error::Shape { arg: "x", .. })));
    let mut g = dense(64, 256, 256);
    g.w.cols = 384;
    assert!(matches!(dense_plan(&g), Err(Error::Shape { arg: "w", .. })));
    let mut g = dense(64, 256, 256);
    g.out.cols = 255;
    assert!(matches!(dense_plan(&g), Err(Error::Shape { arg: "out", .. })));
    let mut g = dense(64, 256, 256);
    g.x.stride = 264; // 264 bytes: not a multiple of 16
    let e = dense_plan(&g).unwrap_err();
    assert!(matches!(e, Error::Alignment { arg: "x", required: 16, actual: 264 }), "{e}");
    let mut g = dense(64, 256, 256);
    g.w.addr += 8;
    assert!(matches!(dense_plan(&g), Err(Error::Alignment { arg: "w", required: 16, .. })));
    let mut g = dense(64, 255, 256);
    g.out.stride = 255; // odd row stride: bf16 pairs would be misaligned
    assert!(matches!(dense_plan(&g), Err(Error::Alignment { arg: "out", required: 4, .. })));
    let mut g = dense(64, 256, 256);
    g.scales_w.shape = [1, 2];
    assert!(matches!(dense_plan(&g), Err(Error::Shape { arg: "scales_w", .. })));
    let mut g = dense(64, 256, 256);
    g.scales_x.shape = [63, 2];
    assert!(matches!(dense_plan(&g), Err(Error::Shape { arg: "scales_x", .. })));
    let mut g = dense(64, 256, 256);
    g.scales_x.len -= 1;
    assert!(matches!(dense_plan(&g), Err(Error::BufferTooSmall { arg: "scales_x", .. })));
    let mut g = dense(64, 256, 256);
    g.out.addr = g.scales_x.addr;
    assert!(matches!(dense_plan(&g), Err(Error::Aliasing { arg: "out", other: "scales_x" })));
    // weight scales are row-major only; no swizzled activation scales
    let mut g = dense(64, 256, 256);
    g.scales_w.layout = ScaleLayout::MMajor { ld: 4 };
    let e = dense_plan(&g).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "scales_w", .. }), "{e}");
    let mut g = dense(64, 256, 256);
    g.scales_x.layout = ScaleLayout::Swizzled;
    assert!(matches!(dense_plan(&g), Err(Error::Layout { arg: "scales_x", actual: ScaleLayout::Swizzled, .. })));
}

/// A grouped call: `rows` of x, `e` experts of `[n, k]`, `elem` bytes per element (FP8 with
/// row-major scales when 1).
fn grouped(rows: usize, k: usize, n: usize, e: usize, elem: usize) -> GroupedInput {
    let (kb, nb) = (k / 128, n.div_ceil(128));
    let scales = (elem == 1).then_some((
        ScaleInput { layout: ScaleLayout::RowMajor { ld: kb }, shape: [rows, kb], addr: SA, len: rows * kb },
        ScaleInput { layout: ScaleLayout::RowMajor { ld: kb }, shape: [e * nb, kb], addr: SB, len: e * nb * kb },
    ));
    GroupedInput {
        x: op("x", rows, k, k, X, elem),
        w: [e, n, k],
        w_addr: W,
        out: op("out", rows, n, n, Y, 2),
        groups_len: e,
        max_m: None,
        scales,
    }
}

#[test]
fn grouped_plan_accepts_moe_shapes() {
    assert_eq!(grouped_plan(&grouped(8 * 512, 7168, 4096, 8, 2)).unwrap().groups, 8);
    let p = grouped_plan(&grouped(64 * 128, 2048, 7168, 64, 1)).unwrap();
    assert_eq!((p.groups, p.sb_stride, p.sb_group_stride), (64, 16, 56 * 16));
    let mut s = grouped(32 * 64, 512, 256, 32, 1);
    s.max_m = Some(64);
    assert_eq!(grouped_plan(&s).unwrap().max_m, 64);
    let contiguous = Rows::Contiguous { rows: 1000, experts: 4 };
    let masked = Rows::Masked { experts: 4, max_m: 100 };
    assert_eq!(tile_bound(contiguous, 256, M128_N128), (8 + 4) * 2);
    assert_eq!(tile_bound(masked, 256, M128_N128), 4 * 2); // 4 experts, 1 row tile, 2 column tiles
    assert_eq!(tile_bound(contiguous, 256, M64_N128), (16 + 4) * 2);
    assert_eq!(tile_bound(masked, 256, M64_N128), 4 * 2 * 2); // 2 row tiles of 64 per slab
    assert_eq!(tile_bound(masked, 256, M64_N64), 4 * 2 * 4); // and 4 column tiles of 64
    assert_eq!(tile_bound(contiguous, 200, M128_N64), (8 + 4) * 4); // the last column tile 8 wide
    assert_eq!(tile_bound(Rows::Dense(1000), 2112, M128_N128), 8 * 17);
    assert_eq!(tile_bound(Rows::Dense(1000), 2112, M128_N64), 8 * 33);
}

#[test]
fn grouped_plan_rejects_bad_shapes() {
    let mut s = grouped(100, 512, 256, 4, 2);
    s.w = [0, 256, 512]; // no experts
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "w", .. })));
    let mut s = grouped(100, 512, 256, 4, 2);
    s.w = [4, 256, 256]; // K unlike x
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "w", .. })));
    let s = grouped(100, 96, 256, 4, 2); // bf16 K must be a multiple of 64
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "x", .. })));
    let s = grouped(100, 192, 256, 4, 1); // FP8 K must be a multiple of 128
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "x", .. })));
    let mut s = grouped(100, 512, 256, 4, 2);
    s.groups_len = 3;
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "groups", .. })));
    let mut s = grouped(100, 512, 256, 4, 2);
    s.max_m = Some(32);
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "x", .. })));
    let mut s = grouped(100, 512, 256, 4, 2);
    s.out.cols = 255;
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "out", .. })));
    let mut s = grouped(100, 512, 256, 4, 2);
    s.x.stride = 516; // 1032-byte rows: not 16-byte aligned
    assert!(matches!(grouped_plan(&s), Err(Error::Alignment { arg: "x", required: 16, .. })));
    let mut s = grouped(100, 512, 256, 4, 2);
    s.out.addr = X + 64;
    assert!(matches!(grouped_plan(&s), Err(Error::Aliasing { arg: "out", other: "x" })));
}

#[test]
fn grouped_fp8_scales_xre_checked() {
    let mut s = grouped(100, 512, 200, 4, 1);
    if let Some((_, w)) = &mut s.scales {
        w.shape = [4, 4]; // one scale row per expert is too few for N = 200: ⌈200/128⌉ = 2
    }
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "scales_w", .. })));
    let mut s = grouped(100, 512, 256, 4, 1);
    if let Some((x, _)) = &mut s.scales {
        x.layout = ScaleLayout::Swizzled;
    }
    assert!(matches!(grouped_plan(&s), Err(Error::Layout { arg: "scales_x", .. })));
    let mut s = grouped(100, 512, 256, 4, 1);
    if let Some((_, w)) = &mut s.scales {
        w.layout = ScaleLayout::MMajor { ld: 8 };
    }
    assert!(matches!(grouped_plan(&s), Err(Error::Layout { arg: "scales_w", .. })));
    let mut s = grouped(100, 512, 256, 4, 1);
    if let Some((x, _)) = &mut s.scales {
        x.layout = ScaleLayout::MMajor { ld: 104 };
        x.len = 3 * 104 + 100;
    }
    let p = grouped_plan(&s).unwrap();
    assert_eq!((p.sa_row_stride, p.sa_col_stride), (1, 104));
    let mut s = grouped(100, 512, 256, 4, 1);
    s.out.addr = SB;
    assert!(matches!(grouped_plan(&s), Err(Error::Aliasing { arg: "out", other: "scales_w" })));
}

const M128_N128: Tiles = Tiles { m: BlockM::M128, n: BlockN::N128, cluster: 1, split: 1 };
const M64_N128: Tiles = Tiles { m: BlockM::M64, n: BlockN::N128, cluster: 1, split: 1 };
const M128_N64: Tiles = Tiles { m: BlockM::M128, n: BlockN::N64, cluster: 1, split: 1 };
const M64_N64: Tiles = Tiles { m: BlockM::M64, n: BlockN::N64, cluster: 1, split: 1 };
const M128_N112: Tiles = Tiles { m: BlockM::M128, n: BlockN::N112, cluster: 1, split: 1 };
const M64_N112: Tiles = Tiles { m: BlockM::M64, n: BlockN::N112, cluster: 1, split: 1 };
const M128_N192: Tiles = Tiles { m: BlockM::M128, n: BlockN::N192, cluster: 1, split: 1 };
const M64_N192: Tiles = Tiles { m: BlockM::M64, n: BlockN::N192, cluster: 1, split: 1 };
const ALL: [Tiles; 8] = [M128_N128, M64_N128, M128_N64, M64_N64, M128_N112, M64_N112, M128_N192, M64_N192];
const NONE: Forced = Forced { m: None, n: None, cluster: None, split: None };

/// The tile rows and columns of a configuration (its cluster size left out).
fn no_c(t: Tiles) -> Tiles {
    Tiles { cluster: 1, ..t }
}

#[test]
fn tile_rows_follow_the_rows_per_group() {
    // dense (one group): 64-row tiles up to M = 64
    for (m, want) in [(1, BlockM::M64), (7, BlockM::M64), (64, BlockM::M64), (65, BlockM::M128), (4096, BlockM::M128)] {
        assert_eq!(choose_block_m(Rows::Dense(m)), want, "dense M = {m}");
    }
    // masked: by max_m, whatever the experts
    assert_eq!(choose_block_m(Rows::Masked { experts: 8, max_m: 64 }), BlockM::M64);
    assert_eq!(choose_block_m(Rows::Masked { experts: 8, max_m: 65 }), BlockM::M128);
    assert_eq!(choose_block_m(Rows::Masked { experts: 256, max_m: 1 }), BlockM::M64);
    // contiguous: by the average rows per expert
    assert_eq!(choose_block_m(Rows::Contiguous { rows: 64 * 32, experts: 32 }), BlockM::M64);
    assert_eq!(choose_block_m(Rows::Contiguous { rows: 64 * 32 + 1, experts: 32 }), BlockM::M128);
    assert_eq!(choose_block_m(Rows::Contiguous { rows: 3, experts: 4 }), BlockM::M64);
    assert_eq!(choose_block_m(Rows::Contiguous { rows: 8 * 512, experts: 8 }), BlockM::M128);
}

/// The model's k-block costs (the table of `choose_tiles`'s documentation).
#[test]
fn k_block_costs_weigh_the_mma_and_shared_memory() {
    let costs: Vec<u64> = ALL.iter().map(|&t| k_block_cost(t)).collect();
    // M128_N128, M64_N128, M128_N64, M64_N64, M128_N112, M64_N112, M128_N192, M64_N192
    assert_eq!(costs, [512, 256, 320, 160, 448, 224, 768, 384]);
}

/// The table of `choose_tiles`'s documentation (132 SMs, an H100 SXM or H200), and the thresholds
/// around it.
#[test]
fn tile_columns_follow_the_modelled_time() {
    let pick = |m: usize, n: usize, sms: u32| no_c(choose_tiles(Rows::Dense(m), n, sms, false, NONE));
    for (m, n, want) in [
        (64, 2112, M64_N64),
        (64, 7168, M64_N64), // 112 tiles, or 64 of 112 columns: one wave either way
        (128, 2112, M128_N64),
        (128, 7168, M128_N64),
        (256, 7168, M128_N112),  // 128 tiles of 112 fit one wave, 224 of 64 take two
        (512, 2112, M128_N64),   // 132 tiles: one full wave
        (640, 2112, M128_N112),  // 95 tiles of 112: one wave; 165 of 64: two
        (4096, 2112, M128_N192), // 3 waves × 768, or 5 × 448: not 1/32 faster
        (4096, 4096, M128_N128), // 8 × 512, or 9 × 448: not 1/32 faster
        (4096, 7168, M128_N128), // 14 × 512, or 16 × 448: a tie
        (4096, 24576, M128_N192),
        (1, 64, M64_N64), // one tile of each width: the narrowest is the least work
        (1, 65, M64_N64),
    ] {
        assert_eq!(pick(m, n, 132), want, "M = {m}, N = {n}");
    }
    // the choice moves with the SMs: 4 SMs (the simulator's default), 3, 1
    assert_eq!(pick(1, 256, 4), M64_N64); // 4 tiles: one wave
    assert_eq!(pick(1, 384, 4), M64_N112); // 4 tiles of 112: one wave; 6 of 64: two
    assert_eq!(pick(129, 128, 4), M128_N64); // 4 tiles
    assert_eq!(pick(129, 256, 4), M128_N128); // 4 tiles, or 8
    assert_eq!(pick(200, 300, 4), M128_N192); // 4 tiles of 192: one wave
    assert_eq!(pick(300, 500, 3), M128_N128); // 12 tiles: 4 waves × 512
    assert_eq!(pick(1, 7168, 1), M64_N192); // one SM: the cheapest total work
    assert_eq!(pick(1, 7168, 0), M64_N192); // no SM count: as one
    // grouped: the tile bound of the layout
    let masked = Rows::Masked { experts: 8, max_m: 64 };
    assert_eq!(no_c(choose_tiles(masked, 2048, 132, false, NONE)), M64_N128); // 128 tiles, or 256: 1 wave, or 2
    assert_eq!(no_c(choose_tiles(masked, 1024, 132, false, NONE)), M64_N64); // 128 tiles: one wave
    let contiguous = Rows::Contiguous { rows: 8 * 512, experts: 8 };
    assert_eq!(no_c(choose_tiles(contiguous, 7168, 132, false, NONE)), M128_N128);
    // forced: either dimension, the other still chosen
    let m128 = Forced { m: Some(BlockM::M128), n: None, cluster: None, split: None };
    assert_eq!(no_c(choose_tiles(Rows::Dense(1), 7168, 132, false, m128)), M128_N64);
    let n128 = Forced { m: None, n: Some(BlockN::N128), cluster: None, split: None };
    assert_eq!(no_c(choose_tiles(Rows::Dense(1), 7168, 132, false, n128)), M64_N128);
    let n64 = Forced { m: None, n: Some(BlockN::N64), cluster: None, split: None };
    assert_eq!(no_c(choose_tiles(Rows::Dense(4096), 7168, 132, false, n64)), M128_N64);
    let n112 = Forced { m: None, n: Some(BlockN::N112), cluster: None, split: None };
    assert_eq!(no_c(choose_tiles(Rows::Dense(4096), 7168, 132, false, n112)), M128_N112);
    let both = Forced { m: Some(BlockM::M64), n: Some(BlockN::N192), cluster: None, split: None };
    assert_eq!(no_c(choose_tiles(Rows::Masked { experts: 8, max_m: 512 }, 64, 132, false, both)), M64_N192);
    // FP8 has no 128 × 192 configuration: never chosen, a forced 192 runs 128 there
    let fp8 = |m: usize, n: usize| no_c(choose_tiles(Rows::Dense(m), n, 132, true, NONE));
    assert_eq!(fp8(4096, 2112), M128_N112); // 5 waves × 448, or 5 × 512
    assert_eq!(fp8(4096, 24576), M128_N128);
    assert_eq!(fp8(64, 2112), M64_N64);
    assert_eq!(no_c(choose_tiles(Rows::Dense(1), 7168, 1, true, NONE)), M64_N192);
    let n192 = Forced { m: None, n: Some(BlockN::N192), cluster: None, split: None };
    assert_eq!(no_c(choose_tiles(Rows::Dense(4096), 7168, 132, true, n192)), M128_N128);
    assert_eq!(no_c(choose_tiles(Rows::Dense(64), 7168, 132, true, n192)), M64_N192);
    assert!(!M128_N192.exists(true) && M128_N192.exists(false) && M64_N192.exists(true));
}

#[test]
fn tile_configurations_name_their_kernels_and_budgets() {
    use crate::abi::{GEMM_SMEM_LIMIT, gemm_stages};
    // each configuration's kernel, block and shared memory
    assert_eq!((M128_N128.block_m(), M128_N128.block_n(), M128_N128.threads()), (128, 128, 384));
    assert_eq!((M64_N128.block_m(), M64_N128.block_n(), M64_N128.threads()), (64, 128, 256));
    assert_eq!((M128_N64.block_m(), M128_N64.block_n(), M128_N64.threads()), (128, 64, 384));
    assert_eq!((M64_N64.block_m(), M64_N64.block_n(), M64_N64.threads()), (64, 64, 256));
    assert_eq!(M64_N128.kernel(true), "fp8_blockwise_gemm_m64");
    assert_eq!(M128_N128.kernel(false), "bf16_gemm");
    assert_eq!(M128_N64.kernel(true), "fp8_blockwise_gemm_n64");
    assert_eq!(M64_N64.kernel(false), "bf16_gemm_m64_n64");
    assert_eq!((M128_N112.block_n(), M64_N192.block_n(), M64_N192.threads()), (112, 192, 256));
    assert_eq!(M128_N112.kernel(true), "fp8_blockwise_gemm_n112");
    assert_eq!(M64_N112.kernel(false), "bf16_gemm_m64_n112");
    assert_eq!(M128_N192.kernel(false), "bf16_gemm_n192");
    assert_eq!(M64_N192.kernel(true), "fp8_blockwise_gemm_m64_n192");
    // stages: A and B tiles (and, FP8, the tile rows' f32 activation scales), as many as fit
    // beside the epilogue buffer (the tile in bf16) and (FP8 but 64 × 192) 2 KiB of weight
    // scales per math warpgroup
    let stage = |t: Tiles, fp8: bool| (t.block_m() + t.block_n()) * 128 + if fp8 { 4 * t.block_m() } else { 0 };
    let weight_scales =
        |t: Tiles, fp8: bool| if fp8 && (t.block_m(), t.block_n()) != (64, 192) { 2048 * t.block_m() / 64 } else { 0 };
    for (t, fp8, stages, bytes) in [
        (M128_N128, true, 5, 204_368),
        (M64_N128, true, 8, 218_240),
        (M128_N64, true, 8, 222_336),
        (M64_N64, true, 13, 227_792),
        (M128_N128, false, 6, 230_496),
        (M64_N128, false, 8, 214_144),
        (M128_N64, false, 8, 214_144),
        (M64_N64, false, 13, 222_416),
        (M128_N112, true, 6, 221_280),
        (M64_N112, true, 9, 222_608),
        (M64_N192, true, 6, 223_840),
        (M128_N112, false, 6, 214_112),
        (M64_N112, false, 9, 218_256),
        (M128_N192, false, 4, 214_080),
        (M64_N192, false, 6, 222_304),
    ] {
        let epilogue = 2 * t.block_m() * t.block_n();
        assert_eq!(gemm_stages(t.block_m(), t.block_n(), fp8, 1), stages, "{t:?} fp8 {fp8}");
        assert_eq!(
            t.smem_bytes(fp8),
            stages * stage(t, fp8) + epilogue + weight_scales(t, fp8) + 1024 + stages * 16,
            "{t:?} fp8 {fp8}"
        );
        assert_eq!(t.smem_bytes(fp8), bytes);
        assert!(bytes <= GEMM_SMEM_LIMIT && bytes + stage(t, fp8) + 16 > GEMM_SMEM_LIMIT);
    }
    // every kernel of the family is one configuration's, and every configuration's is listed
    let c2 = |t: Tiles| Tiles { cluster: 2, ..t };
    let k = |t: Tiles, split| Tiles { split, ..t };
    for name in crate::gemm::KERNELS {
        let named = |t: Tiles, f: bool| t.exists(f) && t.kernel(f) == *name;
        let any_split = |t: Tiles, f: bool| GEMM_SPLITS.iter().any(|&s| named(k(t, s), f));
        assert!(
            [true, false].iter().any(|&f| ALL.iter().any(|&t| named(t, f) || named(c2(t), f) || any_split(t, f))),
            "{name}"
        );
    }
    // split-K: FP8 64 × 64 tiles only, one kernel per split, with the reduction buffer (16 KiB)
    // and its barriers in place of a stage and the epilogue buffer
    assert!(M64_N64.splits(true) && !M64_N64.splits(false) && !M128_N64.splits(true) && !M64_N128.splits(true));
    assert_eq!(k(M64_N64, 2).kernel(true), "fp8_blockwise_gemm_m64_n64_k2");
    assert_eq!(k(M64_N64, 4).kernel(true), "fp8_blockwise_gemm_m64_n64_k4");
    assert_eq!(k(M64_N64, 8).kernel(true), "fp8_blockwise_gemm_m64_n64_k8");
    assert_eq!((k(M64_N64, 4).ctas(), c2(M128_N128).ctas(), M64_N64.ctas()), (4, 2, 1));
    for s in GEMM_SPLITS {
        let t = k(M64_N64, s);
        assert!(crate::gemm::KERNELS.contains(&t.kernel(true)));
        assert_eq!(gemm_stages(64, 64, true, s), 12);
        assert_eq!(t.smem_bytes(true), 12 * stage(t, true) + 16384 + 2048 + 1024 + 12 * 16 + 16);
        assert!(t.smem_bytes(true) <= GEMM_SMEM_LIMIT && t.smem_bytes(true) + stage(t, true) + 16 > GEMM_SMEM_LIMIT);
    }
    for t in ALL {
        for fp8 in [true, false] {
            assert_eq!(crate::gemm::KERNELS.contains(&t.kernel(fp8)), t.exists(fp8), "{t:?} fp8 {fp8}");
            // the clustered kernels: 128-row tiles of 112 and 128 columns (and bf16's 192);
            // elsewhere the plain one
            let clustered = c2(t).kernel(fp8);
            assert_eq!(clustered.ends_with("_c2"), t.clusters(fp8), "{t:?} fp8 {fp8}");
            assert_eq!(crate::gemm::KERNELS.contains(&clustered), t.exists(fp8), "{t:?} fp8 {fp8}");
        }
    }
    assert_eq!(c2(M128_N128).kernel(true), "fp8_blockwise_gemm_c2");
    assert_eq!(c2(M128_N112).kernel(true), "fp8_blockwise_gemm_n112_c2");
    assert_eq!(c2(M128_N128).kernel(false), "bf16_gemm_c2");
    assert_eq!(c2(M128_N112).kernel(false), "bf16_gemm_n112_c2");
    assert_eq!(c2(M128_N192).kernel(false), "bf16_gemm_n192_c2");
    assert!(!M128_N192.clusters(true) && M128_N192.clusters(false) && !M128_N64.clusters(false));
    // a cluster of 2 loads half of A's rows in each CTA; the same stages and shared memory
    assert_eq!((c2(M128_N128).a_box_rows(), M128_N128.a_box_rows()), (64, 128));
    assert_eq!(c2(M128_N112).smem_bytes(true), M128_N112.smem_bytes(true));
}

#[test]
fn tile_overrides_parse_the_tile_sizes_or_nothing() {
    assert_eq!(parse_block_m(None).unwrap(), None);
    assert_eq!(parse_block_m(Some("")).unwrap(), None);
    assert_eq!(parse_block_m(Some("64")).unwrap(), Some(BlockM::M64));
    assert_eq!(parse_block_m(Some(" 128 ")).unwrap(), Some(BlockM::M128));
    assert_eq!(parse_block_n(None).unwrap(), None);
    assert_eq!(parse_block_n(Some(" ")).unwrap(), None);
    assert_eq!(parse_block_n(Some("64")).unwrap(), Some(BlockN::N64));
    assert_eq!(parse_block_n(Some("128\n")).unwrap(), Some(BlockN::N128));
    assert_eq!(parse_block_n(Some("112")).unwrap(), Some(BlockN::N112));
    assert_eq!(parse_block_n(Some("192")).unwrap(), Some(BlockN::N192));
    assert!(matches!(parse_block_m(Some("112")), Err(Error::InvalidValue { arg: "LOWP_GEMM_BLOCK_M", .. })));
    for bad in ["32", "256", "auto", "64x"] {
        assert!(matches!(parse_block_m(Some(bad)), Err(Error::InvalidValue { arg: "LOWP_GEMM_BLOCK_M", .. })), "{bad}");
        assert!(matches!(parse_block_n(Some(bad)), Err(Error::InvalidValue { arg: "LOWP_GEMM_BLOCK_N", .. })), "{bad}");
    }
}

#[test]
fn clusters_of_two_where_the_tiles_fill_the_sms_in_pairs() {
    let c = |rows: Rows, n: usize, sms: u32, fp8: bool, forced: Option<u32>| {
        let forced = Forced { cluster: forced, ..NONE };
        choose_tiles(rows, n, sms, fp8, forced).cluster
    };
    let dense = Rows::Dense;
    // compute-bound shapes on 132 SMs: 128 × 128 and 128 × 112 tiles, pairs along N
    assert_eq!(choose_tiles(dense(4096), 7168, 132, true, NONE), Tiles { cluster: 2, ..M128_N128 });
    assert_eq!(choose_tiles(dense(4096), 2112, 132, true, NONE), Tiles { cluster: 2, ..M128_N112 }); // 19 columns
    assert_eq!(c(dense(4096), 4096, 132, false, None), 2);
    // bf16 picks 192 columns at N = 2112 (11 columns: pairs) and 24576
    assert_eq!(choose_tiles(dense(4096), 2112, 132, false, NONE), Tiles { cluster: 2, ..M128_N192 });
    assert_eq!(c(dense(4096), 24576, 132, false, None), 2);
    // too few tiles to fill the SMs (M = 256, N = 7168: 128 tiles of 112 on 132 SMs), 64-row and
    // 64-column tiles
    assert_eq!(c(dense(256), 7168, 132, false, None), 1);
    assert_eq!(c(dense(64), 7168, 132, true, None), 1);
    assert_eq!(c(dense(128), 7168, 132, false, None), 1);
    // tile columns: 2 or an even count pair; an odd count below 7 does not (3 columns of 128 on
    // 4 SMs: 1; 7 columns: 2); a single column never pairs
    assert_eq!(c(dense(1000), 256, 4, false, Some(2)), 2);
    assert_eq!(c(dense(1000), 256, 4, true, None), 2);
    assert_eq!(c(dense(1000), 384, 4, true, None), 1);
    assert_eq!(c(dense(1000), 896, 4, true, None), 2);
    assert_eq!(c(dense(1000), 128, 4, true, None), 1);
    // grouped layouts: the tile bound of the layout
    assert_eq!(c(Rows::Contiguous { rows: 8 * 512, experts: 8 }, 7168, 132, false, None), 2);
    assert_eq!(c(Rows::Masked { experts: 8, max_m: 512 }, 4096, 132, true, None), 2);
    // forced: either way where a clustered kernel exists and the device has 2 SMs (a single
    // column then pairs with a tile past N); 1 SM, or no clustered kernel, runs 1
    assert_eq!(c(dense(1000), 128, 4, true, Some(2)), 2);
    assert_eq!(c(dense(4096), 7168, 132, true, Some(1)), 1);
    assert_eq!(c(dense(1000), 256, 1, true, Some(2)), 1);
    assert_eq!(c(dense(1000), 256, 1, true, None), 1);
    assert_eq!(c(dense(1), 256, 4, true, Some(2)), 1); // 64-row tiles
    // the persistent grid walks cluster tiles of 2 · BLOCK_N columns: 17 columns of 128 → 9
    let t = Tiles { cluster: 2, ..M128_N128 };
    assert_eq!((tile_bound(dense(256), 2112, t), tile_bound(dense(256), 2112, M128_N128)), (18, 34));
    assert_eq!(CLUSTER_MIN_ODD_COLUMNS, 7);
}

#[test]
fn split_k_where_the_tiles_underfill_the_sms_and_k_is_long() {
    let dense = Rows::Dense;
    // capacity: SMs / CTAs per cluster, or a GPU's fewer (a cluster's CTAs share a GPC)
    let split = |rows: Rows, n: usize, k: u64, sms: u32, fp8: bool, forced: Option<u32>, gpc: bool| {
        let tiles = choose_tiles(rows, n, sms, fp8, NONE);
        let mut cap = |t: Tiles| -> crate::error::Result<u32> {
            let s = t.split;
            Ok(if gpc && s == 4 {
                32
            } else if gpc && s == 8 {
                16
            } else {
                sms / s
            })
        };
        choose_split(rows, n, k, fp8, tiles, forced, &mut cap).unwrap()
    };
    // M = 64, N = 2112, K = 7168 on 132 SMs: 33 tiles of 64 × 64, 56 k-blocks: 4 CTAs per tile
    // (14 k-blocks each, 132 CTAs: 14 + 1); a GPU fitting 32 clusters of 4 and 16 of 8 takes 8
    // (three waves of 7 + 1: 24) before 2 (one wave of 28 + 1) and 4 (two waves of 14 + 1)
    assert_eq!(split(dense(64), 2112, 56, 132, true, None, false), 4);
    assert_eq!(split(dense(64), 2112, 56, 132, true, None, true), 8);
    // N = 4096: 64 tiles, 2 CTAs each; N = 1024: 16 tiles, 8 each (7 k-blocks + 1 for the sums)
    assert_eq!(split(dense(64), 4096, 56, 132, true, None, false), 2);
    assert_eq!(split(dense(64), 1024, 56, 132, true, None, false), 8);
    // the tiles fill the SMs (N = 7168: 112 tiles), or bf16, or 128-row tiles: no split
    assert_eq!(split(dense(64), 7168, 128, 132, true, None, false), 1);
    assert_eq!(split(dense(64), 2112, 56, 132, false, None, false), 1);
    assert_eq!(split(dense(256), 1024, 56, 132, true, None, false), 1);
    // short K: each CTA keeps at least 4 k-blocks (K = 1024: 8 k-blocks, at most 2 CTAs)
    assert_eq!(split(dense(64), 1024, 8, 132, true, None, false), 2);
    assert_eq!(split(dense(64), 1024, 7, 132, true, None, false), 1);
    // the gain must be 1/8: 2 tiles on 4 SMs with 8 k-blocks: 1 × (4 + 1) against 8: 2
    assert_eq!(split(dense(64), 128, 8, 4, true, None, false), 2);
    // grouped layouts use their tile bound: 4 masked slabs of 64 rows, N = 512: 32 tiles
    assert_eq!(split(Rows::Masked { experts: 4, max_m: 64 }, 512, 56, 132, true, None, false), 4);
    // forced: the largest split up to it with a resident cluster; 1, or no split kernel, runs 1
    assert_eq!(split(dense(64), 7168, 128, 132, true, Some(4), false), 4);
    assert_eq!(split(dense(64), 128, 8, 4, true, Some(8), false), 4);
    assert_eq!(split(dense(64), 128, 8, 1, true, Some(8), false), 1);
    assert_eq!(split(dense(64), 2112, 56, 132, true, Some(1), false), 1);
    assert_eq!(split(dense(64), 2112, 56, 132, false, Some(2), false), 1);
    assert_eq!((SPLIT_MIN_K_BLOCKS, SPLIT_REDUCE_K_BLOCKS), (4, 1));
    // the simulator's 4 SMs (capacity 4 / S): the shapes tests/gemm.rs runs in split-K clusters
    for (m, n, kb, s) in [
        (1, 128, 8, 2),
        (33, 64, 16, 4),
        (64, 100, 12, 2),
        (17, 50, 13, 2),
        (1, 64, 32, 4),
        (9, 32, 8, 2),
        (9, 31, 8, 2),
    ] {
        assert_eq!(split(dense(m), n, kb, 4, true, None, false), s, "{m} {n} {kb}");
    }
    assert_eq!(split(Rows::Masked { experts: 6, max_m: 16 }, 64, 16, 4, true, None, false), 2);
    assert_eq!(split(Rows::Masked { experts: 1, max_m: 40 }, 100, 16, 4, true, None, false), 2);
    assert_eq!(split(Rows::Masked { experts: 2, max_m: 32 }, 64, 8, 4, true, None, false), 2);
    assert_eq!(split(Rows::Contiguous { rows: 30, experts: 1 }, 64, 8, 4, true, None, false), 2);
    // a capacity query's error is the call's
    let tiles = choose_tiles(dense(64), 2112, 132, true, NONE);
    let mut failing = |_: Tiles| -> crate::error::Result<u32> {
        Err(Error::InvalidValue { arg: "x", expected: "y", actual: "z".into() })
    };
    assert!(choose_split(dense(64), 2112, 56, true, tiles, None, &mut failing).is_err());
}

#[test]
fn groups_of_up_to_128_rows_take_64_row_tiles_where_those_are_faster() {
    let dense = Rows::Dense;
    let config = |rows: Rows, n: usize, k: u64, sms: u32, fp8: bool, forced: Forced| {
        let mut cap = |t: Tiles| -> crate::error::Result<u32> { Ok(sms / t.ctas()) };
        choose_config(rows, n, k, sms, fp8, forced, &mut cap).unwrap()
    };
    let k2 = Tiles { split: 2, ..M64_N64 };
    // M = 128, N = 2112, K = 7168 on 132 SMs: 33 tiles of 128 × 64 (56 k-blocks × 320) against 66
    // of 64 × 64 in clusters of 2 (29 × 160)
    assert_eq!(config(dense(128), 2112, 56, 132, true, NONE), k2);
    assert_eq!(config(dense(65), 2112, 56, 132, true, NONE), k2);
    assert_eq!(config(Rows::Masked { experts: 2, max_m: 128 }, 1024, 56, 132, true, NONE), k2);
    // without a split, where the 64-row tiles are faster: N = 4096, 64 tiles of 128 × 64
    // (56 × 320) against 128 of 64 × 64 (56 × 160), one wave each; bf16, or FP8 with a K too
    // short to split, N = 2112: 33 tiles of 128 × 64 (320) against 66 of 64 × 64 (160)
    assert_eq!(config(dense(128), 4096, 56, 132, true, NONE), M64_N64);
    assert_eq!(config(dense(128), 2112, 112, 132, false, NONE), M64_N64);
    assert_eq!(config(dense(128), 2112, 7, 132, true, NONE), M64_N64);
    // N = 7168: 112 tiles of 128 × 64 (1 × 320) against 128 of 64 × 112 (1 × 224)
    assert_eq!(config(dense(128), 7168, 128, 132, true, NONE), M64_N112);
    // where they are not: N = 16384, 128 tiles of 128 × 128 (1 × 512) against 256 of 64 × 128
    // (2 × 256): the 128-row choice stays
    assert_eq!(config(dense(128), 16384, 56, 132, true, NONE), M128_N128);
    // more than 128 rows, a forced height: as choose_tiles and choose_split say
    assert_eq!(config(dense(129), 2112, 56, 132, true, NONE), choose_tiles(dense(129), 2112, 132, true, NONE));
    let m128 = Forced { m: Some(BlockM::M128), ..NONE };
    assert_eq!(config(dense(128), 2112, 56, 132, true, m128), M128_N64);
    // M ≤ 64: choose_tiles' 64-row tiles, split by choose_split
    assert_eq!(config(dense(64), 2112, 56, 132, true, NONE), Tiles { split: 4, ..M64_N64 });
    // the simulator's shapes of tests/gemm.rs with 65 to 128 rows: one wave of 64-row tiles on
    // 4 SMs, each half the work of a 128-row tile, except N = 1024 (8 tiles of 128 × 128 in
    // pairs, 2 × 512, against 16 of 64 × 128, 4 × 256); CI's runs with LOWP_GEMM_BLOCK_M=128 give
    // them all 128-row tiles
    for (m, n, kb) in [(65, 130, 10), (100, 8, 3), (65, 190, 10), (100, 200, 56)] {
        assert_eq!(config(dense(m), n, kb, 4, true, NONE).m, BlockM::M64, "{m} {n} {kb}");
    }
    assert_eq!(config(dense(100), 1024, 10, 4, true, NONE), Tiles { cluster: 2, ..M128_N128 });
}

#[test]
fn split_override_parses_the_splits_or_nothing() {
    assert_eq!(parse_split(None).unwrap(), None);
    assert_eq!(parse_split(Some("")).unwrap(), None);
    for (v, s) in [("1", 1), ("2", 2), (" 4 ", 4), ("8", 8)] {
        assert_eq!(parse_split(Some(v)).unwrap(), Some(s));
    }
    for bad in ["0", "3", "16", "auto"] {
        let e = parse_split(Some(bad)).unwrap_err();
        assert!(matches!(e, Error::InvalidValue { arg: "LOWP_GEMM_SPLIT_K", .. }), "{e:?}");
    }
}

#[test]
fn cluster_override_parses_one_two_or_nothing() {
    assert_eq!(parse_cluster(None).unwrap(), None);
    assert_eq!(parse_cluster(Some(" ")).unwrap(), None);
    assert_eq!(parse_cluster(Some("1")).unwrap(), Some(1));
    assert_eq!(parse_cluster(Some("2")).unwrap(), Some(2));
    for bad in ["0", "3", "4", "two"] {
        let e = parse_cluster(Some(bad)).unwrap_err();
        assert!(matches!(e, Error::InvalidValue { arg: "LOWP_GEMM_CLUSTER", .. }), "{e:?}");
    }
}

/// Whether `o`'s bytes lie in the 64-bit address space (u128 arithmetic, no overflow).
fn in_address_space(o: &Operand) -> bool {
    let span = if o.rows == 0 || o.cols == 0 { 0 } else { (o.rows as u128 - 1) * o.stride as u128 + o.cols as u128 };
    o.addr as u128 + span * o.elem as u128 <= 1 << 64
}

/// f32 elements scales of `s.shape` span in its (linear) layout, in u128.
fn scale_span(s: &ScaleInput) -> u128 {
    let [rows, cols] = s.shape;
    let (rs, cs) = match s.layout {
        ScaleLayout::RowMajor { ld } => (ld as u128, 1),
        ScaleLayout::MMajor { ld } => (1, ld as u128),
        _ => return 0,
    };
    if rows == 0 || cols == 0 { 0 } else { (rows as u128 - 1) * rs + (cols as u128 - 1) * cs + 1 }
}

/// Exact-length scales of `shape`: M-major with `ld` when `m_major`, else row-major with `ld`.
fn exact_scales(shape: [usize; 2], m_major: bool, ld: usize, addr: u64) -> ScaleInput {
    let layout = if m_major { ScaleLayout::MMajor { ld } } else { ScaleLayout::RowMajor { ld } };
    let mut s = ScaleInput { layout, shape, addr, len: 0 };
    s.len = scale_span(&s).min(usize::MAX as u128) as usize;
    s
}

/// Counts at and past every width the checks compute in.
const EXTREME_DIMS: [usize; 9] = [0, 1, 64, (1 << 31) - 1, 1 << 31, 1 << 32, 1 << 62, usize::MAX / 2 + 1, usize::MAX];

#[test]
fn dense_plan_survives_extreme_shapes_strides_and_addresses() {
    // multiples of 128 below and above 2^31, and at the top of usize
    let ks = [128, 256, (1 << 31) - 128, 1 << 32, usize::MAX - 127];
    for &m in &EXTREME_DIMS {
        for &n in &EXTREME_DIMS {
            for &k in &ks {
                for x_stride in [k, 1 << 40, 1 << 62, usize::MAX / 16 * 16] {
                    for out_stride in [n, n.saturating_add(8), 1 << 62, usize::MAX / 2 + 1] {
                        for (xa, ya, sxa, sx_ld) in [
                            (X, Y, SA, m_major_ld(m)),
                            (u64::MAX - 15, Y, SA, m_major_ld(m)),
                            (X, u64::MAX - 15, u64::MAX - 15, 1 << 62),
                            (X, Y, SA, usize::MAX / 4 * 4),
                        ] {
                            let (kb, nb) = (k / 128, n.div_ceil(128));
                            let g = DenseInput {
                                x: op("x", m, k, x_stride, xa, 1),
                                scales_x: exact_scales([m, kb], true, sx_ld, sxa),
                                w: op("w", n, k, k, W, 1),
                                scales_w: exact_scales([nb, kb], false, kb, SB),
                                out: op("out", m, n, out_stride, ya, 2),
                            };
                            let Ok(p) = dense_plan(&g) else { continue };
                            let case = format!("{g:?}");
                            assert!(m < 1 << 31 && n < 1 << 31 && k < 1 << 31, "{case}");
                            assert_eq!((p.rows as usize, p.n as usize, p.k as usize), (m, n, k), "{case}");
                            for o in [&g.x, &g.w, &g.out] {
                                assert!(in_address_space(o), "{case}: {o:?}");
                                assert!(o.stride as u128 * o.elem as u128 <= u64::MAX as u128, "{case}: {o:?}");
                            }
                            for s in [&g.scales_x, &g.scales_w] {
                                assert!(scale_span(s) <= s.len as u128, "{case}: {s:?}");
                                assert!(s.addr as u128 + 4 * scale_span(s) <= 1 << 64, "{case}: {s:?}");
                            }
                            // the TMA takes strides below 2^40 bytes
                            assert!(p.sa_tma == 0 || 4 * (p.sa_col_stride as u128) < 1 << 40, "{case}");
                            assert!(p.d_tma == 0 || 2 * (p.d_stride as u128) < 1 << 40, "{case}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn grouped_plan_survives_extreme_experts_rows_and_strides() {
    for elem in [1, 2] {
        for &e in &EXTREME_DIMS {
            for &n in &[1, 128, 200, (1 << 31) - 1, 1 << 32, usize::MAX] {
                for max_m in [None, Some(0), Some(64), Some(1 << 32), Some(usize::MAX / 2 + 1), Some(usize::MAX)] {
                    let masked_rows = max_m.map_or(0, |mm| e.wrapping_mul(mm));
                    for rows in [0, 1, 100, (1 << 31) - 1, 1 << 32, usize::MAX, masked_rows] {
                        // the tile heuristic sees the (unchecked) rows first
                        let rows_seen = match max_m {
                            Some(max_m) => Rows::Masked { experts: e, max_m },
                            None => Rows::Contiguous { rows, experts: e },
                        };
                        for (fp8, sms, k_blocks) in
                            [(true, 132, 56), (false, 1, u64::MAX), (true, u32::MAX, 1), (false, 0, 4)]
                        {
                            let mut cap = |t: Tiles| -> crate::error::Result<u32> { Ok(sms / t.split) };
                            choose_config(rows_seen, n, k_blocks, sms, fp8, NONE, &mut cap).unwrap();
                        }
                        let k = 512;
                        for x_stride in [k, 1 << 62, usize::MAX / 2 + 1, usize::MAX] {
                            for (xa, wa) in [(X, W), (X, u64::MAX - 15), (u64::MAX - 15, W)] {
                                let (kb, nb) = (k / 128, n.div_ceil(128));
                                let scales = (elem == 1).then(|| {
                                    (
                                        exact_scales([rows, kb], false, kb, SA),
                                        exact_scales([e.wrapping_mul(nb), kb], false, kb, SB),
                                    )
                                });
                                let s = GroupedInput {
                                    x: op("x", rows, k, x_stride, xa, elem),
                                    w: [e, n, k],
                                    w_addr: wa,
                                    out: op("out", rows, n, n, Y, 2),
                                    groups_len: e,
                                    max_m,
                                    scales,
                                };
                                let Ok(p) = grouped_plan(&s) else { continue };
                                let case = format!("{s:?}");
                                assert!(rows < 1 << 31 && (e as u128) * (n as u128) < 1 << 31, "{case}");
                                assert_eq!((p.rows as usize, p.n as usize, p.groups as usize), (rows, n, e), "{case}");
                                assert_eq!(p.max_m as usize, max_m.unwrap_or(0), "{case}");
                                if let Some(mm) = max_m {
                                    assert_eq!(e as u128 * mm as u128, rows as u128, "{case}");
                                }
                                let w = op("w", e * n, k, k, wa, elem);
                                for o in [&s.x, &w, &s.out] {
                                    assert!(in_address_space(o), "{case}: {o:?}");
                                    assert!(o.stride as u128 * o.elem as u128 <= u64::MAX as u128, "{case}: {o:?}");
                                }
                                for sc in s.scales.iter().flat_map(|(a, b)| [a, b]) {
                                    assert!(scale_span(sc) <= sc.len as u128, "{case}: {sc:?}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
