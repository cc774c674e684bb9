//! The launcher every Hopper GEMM shares: the tensor maps ([`super::tma`]) and a persistent
//! launch.

use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaFunction, CudaStream, LaunchConfig, PushKernelArg};

use super::GemmConfig;
use super::plan::{
    BLOCK_M_VAR, BLOCK_N_VAR, CLUSTER_VAR, Forced, Rows, SPLIT_VAR, Tiles, choose_config, parse_block_m, parse_block_n,
    parse_cluster, parse_split,
};
use super::tma::{Map2d, MapKind};
use crate::abi::{
    GEMM_BLOCK_K, GEMM_D_BOX_M, GEMM_MAX_MAPS, GemmParams, GemmTensorMaps, gemm_d_box_n, gemm_d_swizzle_bytes,
};
use crate::context::Lowp;
use crate::error::{CudaResultExt, Error, Result};

crate::abi::device_repr!(GemmParams, GemmTensorMaps);

/// A row-major operand: (address, bytes per row used, rows, row stride in bytes).
pub(crate) type ByteMatrix = (u64, usize, usize, usize);

/// The tile rows and columns, the cluster size and the split-K clusters `LOWP_GEMM_BLOCK_M`,
/// `LOWP_GEMM_BLOCK_N`, `LOWP_GEMM_CLUSTER` and `LOWP_GEMM_SPLIT_K` force on every GEMM of the
/// process (each read once), if any.
pub(crate) fn forced_tiles() -> Result<Forced> {
    static M: OnceLock<Option<String>> = OnceLock::new();
    static N: OnceLock<Option<String>> = OnceLock::new();
    static C: OnceLock<Option<String>> = OnceLock::new();
    static S: OnceLock<Option<String>> = OnceLock::new();
    Ok(Forced {
        m: parse_block_m(M.get_or_init(|| std::env::var(BLOCK_M_VAR).ok()).as_deref())?,
        n: parse_block_n(N.get_or_init(|| std::env::var(BLOCK_N_VAR).ok()).as_deref())?,
        cluster: parse_cluster(C.get_or_init(|| std::env::var(CLUSTER_VAR).ok()).as_deref())?,
        split: parse_split(S.get_or_init(|| std::env::var(SPLIT_VAR).ok()).as_deref())?,
    })
}

/// How many clusters of the kernel of `tiles` (FP8 when `fp8`) can be resident at once: the SM
/// count without clusters, else the driver's `cuOccupancyMaxActiveClusters` (a cluster's CTAs
/// share a GPC, so a GPU may fit fewer than `SMs / CTAs per cluster`), asked once per kernel. A
/// driver that cannot answer (the query fails) gives `SMs / CTAs per cluster`: the value sizes
/// the persistent grid and ranks the splits, and a launch of a configuration with none is
/// refused ([`launch_gemm`]). Errors: resolving the kernel.
pub(crate) fn cluster_capacity(
    lowp: &Lowp,
    stream: &CudaStream,
    op: &'static str,
    tiles: Tiles,
    fp8: bool,
) -> Result<u32> {
    if tiles.ctas() == 1 {
        return Ok(lowp.sm_count());
    }
    let name = tiles.kernel(fp8);
    lowp.cluster_capacity(name, || {
        let f = gemm_function(lowp, op, tiles, fp8)?;
        let cfg = LaunchConfig {
            grid_dim: (tiles.ctas(), 1, 1),
            block_dim: (tiles.threads(), 1, 1),
            shared_mem_bytes: tiles.smem_bytes(fp8),
        };
        Ok(f.occupancy_max_active_clusters(cfg, stream).unwrap_or(lowp.sm_count() / tiles.ctas()))
    })
}

/// The configuration of a call of `rows` rows, `n` columns and `k_blocks` k-blocks on `stream`
/// ([`choose_config`]: tile rows and columns, clusters along N, split-K clusters), with the
/// overrides of [`forced_tiles`].
pub(crate) fn configure(
    lowp: &Lowp,
    stream: &CudaStream,
    op: &'static str,
    rows: Rows,
    n: usize,
    k_blocks: u64,
    fp8: bool,
) -> Result<Tiles> {
    let forced = forced_tiles()?;
    let mut capacity = |t| cluster_capacity(lowp, stream, op, t, fp8);
    choose_config(rows, n, k_blocks, lowp.sm_count(), fp8, forced, &mut capacity)
}

/// The kernel of `tiles` for an FP8 (`fp8`) or bf16 GEMM, its shared memory set when first
/// resolved.
pub(crate) fn gemm_function(lowp: &Lowp, op: &'static str, tiles: Tiles, fp8: bool) -> Result<CudaFunction> {
    lowp.function_with_smem(op, tiles.kernel(fp8), super::NEEDS, tiles.smem_bytes(fp8))
}

/// Encodes the tensor maps of A (boxes of `config.a_box_rows()` rows), B (boxes of
/// `config.block_n()` rows), when `p.sa_tma` is set the activation scales (boxes of
/// `config.block_m()` rows × 1 k-block) and when `p.d_tma` is set D (boxes of `GEMM_D_BOX_M` rows
/// × `gemm_d_box_n` columns) into the kernel's map parameter, and launches `f`, the FP8 (`fp8`)
/// or bf16 kernel of `config`, persistently (one CTA per SM at most, `tiles` an upper bound of the output
/// tiles, or of the cluster tiles with clusters along N: the grid is then `config.ctas()` times
/// the clusters, at most as many as can be resident ([`cluster_capacity`]), so that a plain
/// launch runs the kernel's compile-time clusters).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_gemm(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    f: &CudaFunction,
    config: Tiles,
    fp8: bool,
    mut p: GemmParams,
    a: ByteMatrix,
    b: ByteMatrix,
    tiles: u64,
) -> Result<()> {
    let capacity = cluster_capacity(lowp, stream, op, config, fp8)?;
    if capacity == 0 {
        // Only a configuration given by the caller (`*_with`) can get here: the heuristic and
        // the `LOWP_GEMM_*` overrides take split-K clusters the device holds at least one of,
        // and clusters of 2 only on 2 SMs or more (a Hopper GPU holds 2-CTA clusters).
        return Err(Error::InvalidValue {
            arg: "config",
            expected: "a configuration whose clusters the device fits",
            actual: format!("{} ({} CTAs per cluster)", GemmConfig::from(config), config.ctas()),
        });
    }
    let (bk, bm, bn) = (GEMM_BLOCK_K, config.block_m(), config.block_n());
    let map = |arg, m: ByteMatrix, box_rows| Map2d {
        arg,
        kind: MapKind::U8Swizzle128,
        addr: m.0,
        inner: m.1 as u64,
        rows: m.2 as u64,
        stride: m.3 as u64,
        box_inner: bk,
        box_rows,
    };
    // The kernel's map parameter, slot by slot (A, B, then the scales' and D's where used; the
    // others stay zero and are never read).
    let mut map_param = GemmTensorMaps { maps: [[0; 128]; GEMM_MAX_MAPS] };
    map_param.maps[0] = map("x", a, config.a_box_rows()).encode()?;
    map_param.maps[1] = map("w", b, bn).encode()?;
    let mut next = 2;
    if p.sa_tma != 0 {
        // M-major scales: the rows are the inner dimension (elements past the last row read
        // zeros), one k-block per outer step of `ld` f32.
        map_param.maps[next] = Map2d {
            arg: "scales_x",
            kind: MapKind::F32,
            addr: p.sa,
            inner: p.rows as u64,
            rows: (p.k / GEMM_BLOCK_K) as u64,
            stride: 4 * p.sa_col_stride,
            box_inner: bm,
            box_rows: 1,
        }
        .encode()?;
        next += 1;
    }
    if config.split > 1 {
        // The split-K kernels store their columns of each tile from registers: no D map.
        p.d_tma = 0;
    }
    if p.d_tma != 0 {
        // D, bf16 `[rows, N]`: boxes of one math warpgroup's rows × a column block of the
        // epilogue buffer, swizzled as the buffer is; the TMA clips rows ≥ M and columns ≥ N.
        map_param.maps[next] = Map2d {
            arg: "out",
            kind: MapKind::Bf16Swizzle(gemm_d_swizzle_bytes(bn)),
            addr: p.d,
            inner: p.n as u64,
            rows: p.rows as u64,
            stride: 2 * p.d_stride,
            box_inner: gemm_d_box_n(bn),
            box_rows: GEMM_D_BOX_M,
        }
        .encode()?;
    }

    let clusters = tiles.clamp(1, capacity as u64) as u32;
    let cfg = LaunchConfig {
        grid_dim: (clusters * config.ctas(), 1, 1),
        block_dim: (config.threads(), 1, 1),
        shared_mem_bytes: config.smem_bytes(fp8),
    };
    let mut builder = stream.launch_builder(f);
    builder.arg(&p);
    builder.arg(&map_param);
    // SAFETY: the caller's plan validated the shapes, alignments, scale extents, group tables and
    // overlaps of the live buffers whose addresses `p` holds, and the tensor maps describe exactly
    // A, B and, where `p` asks for them, the scales and D; the kernel runs with its launch bounds'
    // thread count and the shared memory set on the function when it was first resolved.
    unsafe { builder.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}
