//! Unit tests of `gemm::plan` (the dense blockwise GEMM and the grouped GEMMs): no GPU needed.
use super::plan::*;
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
    assert_eq!(tile_bound(1000, 4, 256, None, 128), (8 + 4) * 2);
    assert_eq!(tile_bound(0, 4, 256, Some(100), 128), 4 * 2); // 4 experts, 1 row tile, 2 column tiles
    assert_eq!(tile_bound(1000, 4, 256, None, 64), (16 + 4) * 2);
    assert_eq!(tile_bound(0, 4, 256, Some(100), 64), 4 * 2 * 2); // 2 row tiles of 64 per slab
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

#[test]
fn tile_configuration_follows_the_rows_per_group() {
    use crate::abi::{
        GEMM_SMEM_BYTES_BF16, GEMM_SMEM_BYTES_BF16_SMALL, GEMM_SMEM_BYTES_FP8, GEMM_SMEM_BYTES_FP8_SMALL,
    };
    // dense (one group): 64-row tiles up to M = 64
    for (m, want) in [(1, Tiles::M64), (7, Tiles::M64), (64, Tiles::M64), (65, Tiles::M128), (4096, Tiles::M128)] {
        assert_eq!(choose_tiles(m, 1, None, None), want, "dense M = {m}");
    }
    // masked: by max_m, whatever the experts
    assert_eq!(choose_tiles(8 * 64, 8, Some(64), None), Tiles::M64);
    assert_eq!(choose_tiles(8 * 65, 8, Some(65), None), Tiles::M128);
    assert_eq!(choose_tiles(256, 256, Some(1), None), Tiles::M64);
    // contiguous: by the average rows per expert
    assert_eq!(choose_tiles(64 * 32, 32, None, None), Tiles::M64);
    assert_eq!(choose_tiles(64 * 32 + 1, 32, None, None), Tiles::M128);
    assert_eq!(choose_tiles(3, 4, None, None), Tiles::M64);
    assert_eq!(choose_tiles(8 * 512, 8, None, None), Tiles::M128);
    // forced
    assert_eq!(choose_tiles(1, 1, None, Some(Tiles::M128)), Tiles::M128);
    assert_eq!(choose_tiles(4096, 8, Some(512), Some(Tiles::M64)), Tiles::M64);
    // each configuration's kernel, block and shared memory
    assert_eq!((Tiles::M128.block_m(), Tiles::M128.threads()), (128, 384));
    assert_eq!((Tiles::M64.block_m(), Tiles::M64.threads()), (64, 256));
    assert_eq!(Tiles::M64.kernel(true), "fp8_blockwise_gemm_m64");
    assert_eq!(Tiles::M128.kernel(false), "bf16_gemm");
    assert_eq!(
        (Tiles::M128.smem_bytes(true), Tiles::M64.smem_bytes(true)),
        (GEMM_SMEM_BYTES_FP8, GEMM_SMEM_BYTES_FP8_SMALL)
    );
    assert_eq!(
        (Tiles::M128.smem_bytes(false), Tiles::M64.smem_bytes(false)),
        (GEMM_SMEM_BYTES_BF16, GEMM_SMEM_BYTES_BF16_SMALL)
    );
    // FP8 stages: A and B tiles and the tile rows' f32 activation scales
    assert_eq!(GEMM_SMEM_BYTES_FP8, 6 * (32768 + 512) + 1024 + 6 * 16);
    assert_eq!(GEMM_SMEM_BYTES_FP8_SMALL, 9 * (24576 + 256) + 1024 + 9 * 16);
    assert_eq!(GEMM_SMEM_BYTES_BF16, 7 * 32768 + 1024 + 7 * 16);
    assert_eq!(GEMM_SMEM_BYTES_BF16_SMALL, 9 * 24576 + 1024 + 9 * 16);
    for k in crate::gemm::KERNELS {
        assert!([true, false].iter().any(|&f| [Tiles::M128, Tiles::M64].iter().any(|t| t.kernel(f) == *k)));
    }
}

#[test]
fn tile_override_parses_64_128_or_nothing() {
    assert_eq!(parse_tiles(None).unwrap(), None);
    assert_eq!(parse_tiles(Some("")).unwrap(), None);
    assert_eq!(parse_tiles(Some("64")).unwrap(), Some(Tiles::M64));
    assert_eq!(parse_tiles(Some(" 128 ")).unwrap(), Some(Tiles::M128));
    for bad in ["32", "256", "auto", "64x"] {
        assert!(matches!(parse_tiles(Some(bad)), Err(Error::InvalidValue { arg: "LOWP_GEMM_BLOCK_M", .. })), "{bad}");
    }
}
