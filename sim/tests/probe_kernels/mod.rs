//! Hardware probes: small kernels whose raw outputs pin down what the simulator must reproduce
//! bit for bit — the wgmma accumulator fragment layout, TMA swizzling and out-of-bounds fill,
//! the `stmatrix` fragment layout and TMA stores (swizzled, clipped at the tensor), a 2-CTA
//! cluster's multicast and remote arrivals, a 2-CTA cluster's reads of the peer's shared memory
//! (`ld.shared::cluster`) after a release/acquire handshake, mbarrier phase/parity sequences, and
//! conversions and arithmetic on edge values.
//!
//! Shared by the probe program `sim/examples/goldens.rs` (which runs them on a GPU, or on the
//! simulator, through the driver API) and the tests `sim/tests/hopper.rs` and
//! `sim/tests/goldens.rs` (which run them on [`SimGpu`]). The PTX is in the `*.ptx` files next to
//! this one; [`cute`] holds the independent layout definitions the operands are built from.

#![allow(dead_code)]

pub mod cute;

use cute::{LAYOUT_B128, gmma_desc, k_major_addr};

pub const WGMMA_PTX: &str = include_str!("wgmma.ptx");
pub const TMA_PTX: &str = include_str!("tma.ptx");
pub const MBARRIER_PTX: &str = include_str!("mbarrier.ptx");
pub const CONVERT_PTX: &str = include_str!("convert.ptx");
pub const EPILOGUE_PTX: &str = include_str!("epilogue.ptx");
pub const CLUSTER_PTX: &str = include_str!("cluster.ptx");
pub const DSMEM_PTX: &str = include_str!("dsmem.ptx");

/// A 2-D tiled tensor map, as `cuTensorMapEncodeTiled` takes it (no interleave, L2 promotion
/// none, out-of-bounds fill zeros, element strides 1).
#[derive(Clone, Copy, Debug)]
pub struct MapSpec {
    /// `CUtensorMapDataType`: 0 = UINT8, 1 = UINT16.
    pub data_type: u32,
    pub addr: u64,
    /// Elements along dimensions 0 (contiguous) and 1.
    pub dims: [u64; 2],
    /// Bytes between rows (dimension 1).
    pub row_stride: u64,
    pub box_dims: [u32; 2],
    /// `CUtensorMapSwizzle`: 0 none, 1 32B, 2 64B, 3 128B.
    pub swizzle: u32,
}

/// What the probes need from a device.
pub trait Gpu {
    /// New device memory holding `data`.
    fn upload(&mut self, data: &[u8]) -> Result<u64, String>;
    /// `bytes` bytes of device memory at `ptr`.
    fn download(&mut self, ptr: u64, bytes: usize) -> Result<Vec<u8>, String>;
    /// Runs kernel `kernel` of module `ptx` on a 1-D grid to completion; every parameter is 8
    /// bytes.
    fn launch(
        &mut self,
        ptx: &str,
        kernel: &str,
        grid: u32,
        block: u32,
        smem: u32,
        params: &[u64],
    ) -> Result<(), String>;
    /// `cuTensorMapEncodeTiled`: the 128 bytes of the map.
    fn tensor_map(&mut self, spec: &MapSpec) -> Result<[u8; 128], String>;
}

/// One probe's result: its output bytes, and a fingerprint of everything that determines them
/// (PTX, inputs, launch parameters) so that stale goldens are told apart from a disagreement.
pub struct Probe {
    pub name: &'static str,
    pub output: Vec<u8>,
    pub fingerprint: u64,
}

/// FNV-1a over byte strings.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for &b in *p {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn zeros(g: &mut dyn Gpu, bytes: usize) -> Result<u64, String> {
    g.upload(&vec![0; bytes])
}

fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

// ---------------------------------------------------------------------------------------------
// wgmma

/// Where a K-major wgmma operand sits in the shared tile: `GMMA::LayoutType`, start offset,
/// leading and stride byte offsets (bytes).
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    pub layout: u64,
    pub start: u64,
    pub lbo: u64,
    pub sbo: u64,
}

impl Operand {
    /// Its descriptor (`GmmaDescriptor` fields), start address relative to the tile.
    pub fn desc(&self) -> u64 {
        gmma_desc(self.start >> 4, self.lbo >> 4, self.sbo >> 4, 0, self.layout)
    }
}

/// The probes' operands: 128-byte swizzle, stride byte offset 1024 (8 rows of 128 bytes per
/// atom, atoms stacked), leading byte offset 16 (unused by swizzled K-major layouts: "assumed to
/// be 1"); A (64 rows) at byte 0, B (128 rows) at byte 8192, 24 KiB in all.
pub const PROBE_A: Operand = Operand { layout: LAYOUT_B128, start: 0, lbo: 16, sbo: 1024 };
pub const PROBE_B: Operand = Operand { layout: LAYOUT_B128, start: 8192, lbo: 16, sbo: 1024 };
pub const PROBE_IMAGE: usize = 24576;

/// A `size`-byte operand image: A (64 rows) and B (128 rows) placed by [`cute::k_major_addr`];
/// `a(m, k)` and `b(n, k)` give the bytes of one element (`elem` bytes) at K index
/// `k` < `32 / elem`. `None` when an element falls outside the image or on another's bytes.
pub fn wgmma_image(
    size: usize,
    elem: u64,
    oa: Operand,
    ob: Operand,
    a: impl Fn(u64, u64) -> u16,
    b: impl Fn(u64, u64) -> u16,
) -> Option<Vec<u8>> {
    let mut img = vec![0u8; size];
    let mut used = vec![false; size];
    let mut put = |o: &Operand, row: u64, k: u64, v: u16| {
        for j in 0..elem {
            let addr = k_major_addr(o.layout, o.start, row, k * elem + j, o.lbo, o.sbo) as usize;
            if addr >= size || std::mem::replace(&mut used[addr], true) {
                return false;
            }
            img[addr] = (v >> (8 * j)) as u8;
        }
        true
    };
    for k in 0..32 / elem {
        for m in 0..64 {
            if !put(&oa, m, k, a(m, k)) {
                return None;
            }
        }
        for n in 0..128 {
            if !put(&ob, n, k, b(n, k)) {
                return None;
            }
        }
    }
    Some(img)
}

/// Runs wgmma kernel `kernel` (`wgmma_bf16` or `wgmma_e4m3`) on an operand image with
/// descriptors `desc_a`, `desc_b` (start addresses relative to the tile); returns the 128 × 64
/// accumulator registers (f32 bytes, thread-major).
pub fn run_wgmma(g: &mut dyn Gpu, kernel: &str, img: &[u8], desc_a: u64, desc_b: u64) -> Result<Vec<u8>, String> {
    let img_ptr = g.upload(img)?;
    let out = zeros(g, 128 * 64 * 4)?;
    g.launch(WGMMA_PTX, kernel, 1, 128, img.len() as u32 + 1024, &[img_ptr, img.len() as u64, out, desc_a, desc_b])?;
    g.download(out, 128 * 64 * 4)
}

/// bf16 operands, one-hot along K: A[m][k] = 2^(16·(m / 16)) at k = m % 16 (zero elsewhere),
/// B[n][k] = (n + 128) · 2^k, so D[m][n] = (n + 128) · 2^m: every element distinct, exact.
pub fn bf16_a(m: u64, k: u64) -> u16 {
    if k == m % 16 { cute::bf16_of(1, 16 * (m / 16) as i32) } else { 0 }
}
pub fn bf16_b(n: u64, k: u64) -> u16 {
    cute::bf16_of(n as u32 + 128, k as i32)
}
pub fn bf16_d(m: u64, n: u64) -> f32 {
    (n as f32 + 128.0) * (m as f32).exp2()
}

/// e4m3 operands, bit planes along K (E4M3 holds 4 significant bits, too few for a one-hot
/// code of (m, n)): slots 0..7 give Σ 2^k · bit_k(n) = n, slots 7..13 give
/// Σ bit_j(m) · 2^j · 128 = 128 m, slots 13..22 pair A = 1 with B = 0 and slots 22..32 A = 0
/// with B = 1 (a misplaced byte there adds a stray term). D[m][n] = n + 128 m.
pub fn e4m3_a(m: u64, k: u64) -> u16 {
    let one = cute::e4m3_pow2(0) as u16;
    match k {
        0..7 => cute::e4m3_pow2(k as i32) as u16,
        7..13 if m >> (k - 7) & 1 == 1 => cute::e4m3_pow2((k - 7) as i32) as u16,
        13..22 => one,
        _ => 0,
    }
}
pub fn e4m3_b(n: u64, k: u64) -> u16 {
    let one = cute::e4m3_pow2(0) as u16;
    match k {
        0..7 if n >> k & 1 == 1 => one,
        7..13 => cute::e4m3_pow2(7) as u16,
        22..32 => one,
        _ => 0,
    }
}
pub fn e4m3_d(m: u64, n: u64) -> f32 {
    (n + 128 * m) as f32
}

fn wgmma(
    g: &mut dyn Gpu,
    name: &'static str,
    kernel: &str,
    elem: u64,
    a: fn(u64, u64) -> u16,
    b: fn(u64, u64) -> u16,
) -> Result<Probe, String> {
    let img = wgmma_image(PROBE_IMAGE, elem, PROBE_A, PROBE_B, a, b).ok_or("the probe's operands overlap")?;
    let (da, db) = (PROBE_A.desc(), PROBE_B.desc());
    let output = run_wgmma(g, kernel, &img, da, db)?;
    Ok(Probe {
        name,
        output,
        fingerprint: fnv(&[WGMMA_PTX.as_bytes(), kernel.as_bytes(), &img, &da.to_le_bytes(), &db.to_le_bytes()]),
    })
}

/// `wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16` on [`bf16_a`] × [`bf16_b`]: thread
/// t's register i at f32 index 64 t + i.
pub fn wgmma_bf16(g: &mut dyn Gpu) -> Result<Probe, String> {
    wgmma(g, "wgmma_bf16_m64n128k16", "wgmma_bf16", 2, bf16_a, bf16_b)
}

/// `wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3` on [`e4m3_a`] × [`e4m3_b`].
pub fn wgmma_e4m3(g: &mut dyn Gpu) -> Result<Probe, String> {
    wgmma(g, "wgmma_e4m3_m64n128k32", "wgmma_e4m3", 1, e4m3_a, e4m3_b)
}

// ---------------------------------------------------------------------------------------------
// TMA

/// The global tensor of the TMA probe: u16, 100 × 50 elements, rows 208 bytes apart (the 4
/// elements past each row's end are in memory but out of bounds).
pub const TMA_DIMS: [u64; 2] = [100, 50];
pub const TMA_ROW_STRIDE: u64 = 208;

/// Element (x, y) of the global tensor: 0xYYXX with YY = y + 1 (never zero, never 0xEEEE).
pub fn tma_value(x: u64, y: u64) -> u16 {
    ((y + 1) << 8 | x) as u16
}

/// The maps of the TMA probe: (swizzle, box width in elements); every box is 16 rows. The
/// inner box is the whole swizzle span (the layouts CUTLASS uses), except the last map: a
/// 64-byte inner box under the 128-byte swizzle.
pub const TMA_MAPS: [(u32, u32); 5] = [(0, 64), (1, 16), (2, 32), (3, 64), (3, 32)];
pub const TMA_BOX_ROWS: u32 = 16;
/// Each copy lands in its own 2048-byte slot of the region.
pub const TMA_SLOT: u64 = 2048;

/// The copies: (map index, x, y, destination offset). Per map: a box inside the tensor at an odd
/// x, one hanging over the right and bottom edges, one over the left and top (negative
/// coordinates).
pub fn tma_copies() -> Vec<(u32, i32, i32, u32)> {
    let mut v = Vec::new();
    for (i, &(_, w)) in TMA_MAPS.iter().enumerate() {
        let coords = [(5, 4), (TMA_DIMS[0] as i32 - w as i32 / 2, TMA_DIMS[1] as i32 - 5), (-3, -7)];
        for (j, (x, y)) in coords.into_iter().enumerate() {
            v.push((i as u32, x, y, ((3 * i + j) as u64 * TMA_SLOT) as u32));
        }
    }
    v
}

pub fn tma_region() -> u64 {
    TMA_MAPS.len() as u64 * 3 * TMA_SLOT
}

/// Runs every copy of [`tma_copies`] into a shared region first filled with 0xEE; the output is
/// the region.
pub fn tma(g: &mut dyn Gpu) -> Result<Probe, String> {
    let mut data = vec![0u8; (TMA_ROW_STRIDE * TMA_DIMS[1]) as usize];
    for y in 0..TMA_DIMS[1] {
        for x in 0..TMA_ROW_STRIDE / 2 {
            let o = (y * TMA_ROW_STRIDE + 2 * x) as usize;
            data[o..o + 2].copy_from_slice(&tma_value(x, y).to_le_bytes());
        }
    }
    let tensor = g.upload(&data)?;
    let mut maps = Vec::new();
    for &(swizzle, w) in &TMA_MAPS {
        let spec = MapSpec {
            data_type: 1,
            addr: tensor,
            dims: TMA_DIMS,
            row_stride: TMA_ROW_STRIDE,
            box_dims: [w, TMA_BOX_ROWS],
            swizzle,
        };
        maps.extend_from_slice(&g.tensor_map(&spec)?);
    }
    let maps_ptr = g.upload(&maps)?;
    let copies = tma_copies();
    let table: Vec<u8> =
        copies.iter().flat_map(|&(m, x, y, d)| [m, x as u32, y as u32, d]).flat_map(u32::to_le_bytes).collect();
    let table_ptr = g.upload(&table)?;
    let tx: u64 = copies.iter().map(|&(m, ..)| 2 * (TMA_MAPS[m as usize].1 * TMA_BOX_ROWS) as u64).sum();
    let region = tma_region();
    let out = zeros(g, region as usize)?;
    let params = [maps_ptr, table_ptr, copies.len() as u64, tx, out, region];
    g.launch(TMA_PTX, "tma_boxes", 1, 128, region as u32 + 1040, &params)?;
    let output = g.download(out, region as usize)?;
    let specs: Vec<u8> = TMA_MAPS.iter().flat_map(|&(s, w)| [s, w]).flat_map(u32::to_le_bytes).collect();
    Ok(Probe { name: "tma_swizzle_oob", output, fingerprint: fnv(&[TMA_PTX.as_bytes(), &data, &specs, &table]) })
}

// ---------------------------------------------------------------------------------------------
// epilogue: stmatrix and TMA stores

/// The `stmatrix` forms of `stmatrix_forms`, one 512-byte slot each: (matrices, transposed).
pub const STMATRIX_FORMS: [(u32, bool); 6] = [(1, false), (2, false), (4, false), (1, true), (2, true), (4, true)];
pub const STMATRIX_SLOT: usize = 512;

/// Runs `stmatrix_forms`; the output is its six slots.
pub fn stmatrix(g: &mut dyn Gpu) -> Result<Probe, String> {
    let bytes = STMATRIX_FORMS.len() * STMATRIX_SLOT;
    let out = zeros(g, bytes)?;
    g.launch(EPILOGUE_PTX, "stmatrix_forms", 1, 32, bytes as u32, &[out])?;
    let output = g.download(out, bytes)?;
    Ok(Probe { name: "stmatrix_forms", output, fingerprint: fnv(&[EPILOGUE_PTX.as_bytes(), b"stmatrix_forms"]) })
}

/// The b16 value `stmatrix_forms` leaves at column `c` (0..8) of row `r` (0..8) of matrix `q` of a
/// form (`trans`): the fragment of `ldmatrix` (lane `l` holds row `l / 4`, columns `2 (l % 4)`
/// and `+ 1` of each matrix, register `q` for matrix `q`), transposed with `.trans`.
pub fn stmatrix_value(q: usize, r: usize, c: usize, trans: bool) -> u16 {
    let (fr, fc) = if trans { (c, r) } else { (r, c) };
    (((4 * fr + fc / 2) << 8) | (q << 4) | (fc % 2)) as u16
}

/// The tensors of the TMA-store probe: u16, [`TMA_DIMS`] with rows [`TMA_ROW_STRIDE`] bytes
/// apart like the load probe's, each first filled with 0xEE bytes; one per copy of
/// [`tma_store_copies`], written through its own map ([`TMA_MAPS`]: every swizzle mode, and a box
/// narrower than its swizzle span; [`TMA_BOX_ROWS`] rows).
pub const TMA_STORE_SLOT: u64 = 2048;

/// The copies of the TMA-store probe: (map index, x, y). Per map: a box inside the tensor, one
/// over the right and bottom edges, one over the left and top (clipped, nothing written outside).
pub fn tma_store_copies() -> Vec<(usize, i32, i32)> {
    let mut v = Vec::new();
    for (i, &(_, w)) in TMA_MAPS.iter().enumerate() {
        for (x, y) in [(5, 4), (TMA_DIMS[0] as i32 - w as i32 / 2, TMA_DIMS[1] as i32 - 5), (-3, -7)] {
            v.push((i, x, y));
        }
    }
    v
}

/// The 32-bit word the TMA-store probe writes at byte offset `o` of its shared region.
pub fn tma_store_word(o: u64) -> u32 {
    (o & !3) as u32 ^ 0x5a5a_0000
}

/// Runs `tma_store_boxes` over every copy of [`tma_store_copies`]; the output is the tensors, one
/// after the other.
pub fn tma_store(g: &mut dyn Gpu) -> Result<Probe, String> {
    let copies = tma_store_copies();
    let tensor_bytes = (TMA_ROW_STRIDE * TMA_DIMS[1]) as usize;
    let mut tensors = Vec::new();
    let mut maps = Vec::new();
    for &(i, ..) in &copies {
        let t = g.upload(&vec![0xee; tensor_bytes])?;
        let (swizzle, w) = TMA_MAPS[i];
        let spec = MapSpec {
            data_type: 1,
            addr: t,
            dims: TMA_DIMS,
            row_stride: TMA_ROW_STRIDE,
            box_dims: [w, TMA_BOX_ROWS],
            swizzle,
        };
        maps.extend_from_slice(&g.tensor_map(&spec)?);
        tensors.push(t);
    }
    let maps_ptr = g.upload(&maps)?;
    let table: Vec<u8> = copies.iter().flat_map(|&(_, x, y)| [x as u32, y as u32]).flat_map(u32::to_le_bytes).collect();
    let table_ptr = g.upload(&table)?;
    let n = copies.len() as u64;
    let smem = (n * TMA_STORE_SLOT) as u32 + 1024;
    g.launch(EPILOGUE_PTX, "tma_store_boxes", 1, 64, smem, &[maps_ptr, table_ptr, n, TMA_STORE_SLOT])?;
    let mut output = Vec::new();
    for t in tensors {
        output.extend(g.download(t, tensor_bytes)?);
    }
    let specs: Vec<u8> = TMA_MAPS.iter().flat_map(|&(s, w)| [s, w]).flat_map(u32::to_le_bytes).collect();
    Ok(Probe {
        name: "tma_store_swizzle_clip",
        output,
        fingerprint: fnv(&[EPILOGUE_PTX.as_bytes(), b"tma_store_boxes", &specs, &table]),
    })
}

// ---------------------------------------------------------------------------------------------
// clusters

/// The u8 tensor of the cluster probe: 128 bytes × 32 rows; byte (x, y) = x ^ (37 y) mod 256.
pub const CLUSTER_DIMS: [u64; 2] = [128, 32];
pub fn cluster_value(x: u64, y: u64) -> u8 {
    (x ^ (37 * y)) as u8
}
/// Bytes per CTA in the cluster probe's output: a 16-byte header, then the 4096-byte region.
pub const CLUSTER_OUT: usize = 16 + 4096;

/// Runs `cluster_multicast` (one cluster of 2 CTAs, a plain launch of a grid of 2: the cluster
/// size is the kernel's `.reqnctapercluster`); the output is both CTAs' headers and regions.
pub fn cluster(g: &mut dyn Gpu) -> Result<Probe, String> {
    let data: Vec<u8> =
        (0..CLUSTER_DIMS[1]).flat_map(|y| (0..CLUSTER_DIMS[0]).map(move |x| cluster_value(x, y))).collect();
    let tensor = g.upload(&data)?;
    let spec = MapSpec {
        data_type: 0,
        addr: tensor,
        dims: CLUSTER_DIMS,
        row_stride: CLUSTER_DIMS[0],
        box_dims: [128, 16],
        swizzle: 3,
    };
    let map_bytes = g.tensor_map(&spec)?;
    let map = g.upload(&map_bytes)?;
    let out = zeros(g, 2 * CLUSTER_OUT)?;
    g.launch(CLUSTER_PTX, "cluster_multicast", 2, 128, 4096 + 1024 + 16, &[map, out])?;
    let output = g.download(out, 2 * CLUSTER_OUT)?;
    Ok(Probe { name: "cluster_multicast", output, fingerprint: fnv(&[CLUSTER_PTX.as_bytes(), &data]) })
}

/// Word `k` (0..4) of the 16 bytes thread `t` of cluster rank `r` writes in the DSMEM probe.
pub fn dsmem_word(r: u32, t: u32, k: u32) -> u32 {
    (4 * t + k).wrapping_mul(2654435761).wrapping_add(r.wrapping_mul(40503)) ^ 0x5bd1_e995
}
/// Bytes of the DSMEM probe's output: a 16-byte header, then 48 bytes for each of 128 threads.
pub const DSMEM_OUT: usize = 16 + 128 * 48;

/// Runs `cluster_dsmem` (one cluster of 2 CTAs, a plain launch of a grid of 2); the output is
/// rank 0's header and reads.
pub fn dsmem(g: &mut dyn Gpu) -> Result<Probe, String> {
    let out = zeros(g, DSMEM_OUT)?;
    g.launch(DSMEM_PTX, "cluster_dsmem", 2, 128, 2048 + 16, &[out])?;
    let output = g.download(out, DSMEM_OUT)?;
    Ok(Probe { name: "cluster_dsmem", output, fingerprint: fnv(&[DSMEM_PTX.as_bytes()]) })
}

// ---------------------------------------------------------------------------------------------
// mbarrier

/// Thread 0's wait results, in the order of `mbarrier.ptx` (PTX ISA, mbarrier: `test_wait` /
/// `try_wait.parity P` is true once the phase of parity P has completed, which holds for the
/// phase before the current one and fails for the current one; a phase completes when its
/// pending arrivals and transaction bytes both reach zero).
pub const MBARRIER_FLAGS: [u32; 17] = [0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0];
/// The flags of `mbarrier_completions`: the ones of [`MBARRIER_FLAGS`].
pub const MBARRIER_COMPLETIONS: [u32; 7] = [1; 7];

/// Bytes of the u8 tensor the mbarrier probes' two copies read (64 × 16, box 64 × 4 at rows 0
/// and 4).
pub fn mbarrier_tensor() -> Vec<u8> {
    (0..1024u32).map(|i| (i * 7 + 3) as u8).collect()
}

fn run_mbarrier(g: &mut dyn Gpu, name: &'static str) -> Result<Probe, String> {
    let data = mbarrier_tensor();
    let tensor = g.upload(&data)?;
    let spec = MapSpec { data_type: 0, addr: tensor, dims: [64, 16], row_stride: 64, box_dims: [64, 4], swizzle: 0 };
    let map = g.tensor_map(&spec)?;
    let map_ptr = g.upload(&map)?;
    let out = zeros(g, 2560)?;
    g.launch(MBARRIER_PTX, name, 1, 64, 2048, &[map_ptr, out])?;
    let output = g.download(out, 2560)?;
    Ok(Probe { name, output, fingerprint: fnv(&[MBARRIER_PTX.as_bytes(), name.as_bytes(), &data]) })
}

/// The full sequence, polls of current (incomplete) phases included: flags [`MBARRIER_FLAGS`].
pub fn mbarrier(g: &mut dyn Gpu) -> Result<Probe, String> {
    run_mbarrier(g, "mbarrier_parity")
}

/// The same sequence with only the polls of completed phases: flags [`MBARRIER_COMPLETIONS`].
pub fn mbarrier_completions(g: &mut dyn Gpu) -> Result<Probe, String> {
    run_mbarrier(g, "mbarrier_completions")
}

// ---------------------------------------------------------------------------------------------
// Edge values

/// f32 inputs (bits): zeros, subnormals, normals, extremes, infinities, NaNs with payloads, and
/// the halfway cases of rounding to bf16, f16, E4M3 and E5M2.
pub fn f32_edges() -> Vec<u32> {
    let f = |x: f32| x.to_bits();
    let p = |e: i32| (e as f32).exp2();
    vec![
        0x0000_0000,
        0x8000_0000,
        0x0000_0001,
        0x8000_0001,
        0x007f_ffff,
        0x0080_0000,
        0x807f_ffff,
        0x0000_8000,
        0x0001_8000,
        f(1.0),
        f(-1.0),
        f(2.0),
        f(3.0),
        f(0.1),
        f(-3.5),
        f(7.0),
        f(9.0),
        f(0.5),
        f(-0.5),
        0x7f7f_ffff,
        0xff7f_ffff,
        0x7f00_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0xffc0_0000,
        0x7f80_0001,
        0x7fc1_2345,
        0xff81_2345,
        0x7fff_ffff,
        // bf16: ties to even at 1 + 2^-8 and 1 + 3·2^-8, just above, and the tie to infinity.
        0x3f80_8000,
        0x3f81_8000,
        0x3f80_8001,
        0xbf80_8000,
        0x7f7f_8000,
        0x7f7f_7fff,
        // f16: the largest finite, the overflow tie, ties at 1, subnormal ties, the boundary.
        f(65504.0),
        0x477f_efff,
        f(65520.0),
        0x3f80_1000,
        0x3f80_3000,
        f(p(-24)),
        f(p(-25)),
        f(3.0 * p(-25)),
        f(p(-14)),
        0x387f_c000,
        f(1e-8),
        f(100000.0),
        // E4M3: the largest finite (448), ties above it, saturation, ties at 1, subnormals.
        f(448.0),
        f(464.0),
        f(480.0),
        f(1e6),
        f(1.0625),
        f(1.1875),
        f(p(-9)),
        f(p(-10)),
        f(3.0 * p(-10)),
        f(p(-6)),
        f(0.875 * p(-6)),
        // E5M2: the largest finite (57344), the tie above it, ties at 1, subnormals.
        f(57344.0),
        f(61440.0),
        f(65536.0),
        f(1.125),
        f(1.375),
        f(p(-16)),
        f(p(-17)),
        f(3.0 * p(-17)),
        f(-p(-16)),
    ]
}

/// The smaller set whose pairs (all of them) feed the binary operations.
pub fn f32_pair_edges() -> Vec<u32> {
    let f = |x: f32| x.to_bits();
    vec![
        0x0000_0000,
        0x8000_0000,
        0x0000_0001,
        0x8000_0001,
        0x007f_ffff,
        0x0080_0000,
        f(1.0),
        f(-1.0),
        f(2.0),
        f(3.0),
        f(0.1),
        f(7.0),
        f(-0.5),
        0x7f7f_ffff,
        0xff7f_ffff,
        0x7f00_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0xffc0_0000,
        0x7f80_0001,
        0x7fc1_2345,
        f(1e-40),
        f(1e30),
    ]
}

/// f64 inputs (bits) of the f64 → f32 and f64 → s64 conversions.
pub fn f64_edges() -> Vec<u64> {
    let f = |x: f64| x.to_bits();
    let p = |e: i32| (e as f64).exp2();
    let f32max = f32::MAX as f64;
    let f32ulp_top = p(104);
    vec![
        0,
        0x8000_0000_0000_0000,
        1,
        0x800f_ffff_ffff_ffff,
        f(1.0),
        f(-1.0),
        f(0.1),
        f(-1e300),
        f(1e-300),
        0x7fef_ffff_ffff_ffff,
        0x7ff0_0000_0000_0000,
        0xfff0_0000_0000_0000,
        0x7ff8_0000_0000_0000,
        0xfff8_0000_0000_0000,
        0x7ff0_0000_0000_0001,
        0x7ff8_0000_1234_5678,
        // Ties of rounding to f32 at 1, and just above one.
        f(1.0 + p(-24)),
        f(1.0 + 3.0 * p(-24)),
        f(1.0 + p(-24) + p(-52)),
        // The f32 overflow boundary: the largest finite, the tie to infinity, just below it.
        f(f32max),
        f(f32max + f32ulp_top / 2.0),
        f(f32max + f32ulp_top / 2.0 - p(75)),
        f(-(f32max + f32ulp_top)),
        // Into the f32 subnormals: ties to even at 2^-150 and 1.5·2^-149, just above, the tie
        // between the largest subnormal and the smallest normal.
        f(p(-149)),
        f(p(-150)),
        f(1.5 * p(-149)),
        f(p(-150) * (1.0 + p(-52))),
        f(p(-126) - p(-150)),
        f(-p(-151)),
        // f64 → s64, rounding toward zero and saturating.
        f(2.5),
        f(-2.5),
        f(2.999_999),
        f(-0.9),
        f(p(63)),
        f(-p(63)),
        f(p(63) - 1024.0),
        f(1e19),
        f(-1e19),
        f(123_456_789.987),
        f(-(p(53) + 2.0)),
    ]
}

/// One edge-value kernel of `convert.ptx`: name, input a, input b (empty for unary kernels),
/// element count, output bytes per element.
struct EdgeCase {
    kernel: &'static str,
    a: Vec<u8>,
    b: Vec<u8>,
    n: usize,
    out_elem: usize,
}

fn edge_cases() -> Vec<EdgeCase> {
    let u32s = |v: &[u32]| le(v, u32::to_le_bytes);
    let edges = f32_edges();
    let reversed: Vec<u32> = edges.iter().rev().copied().collect();
    let pairs = f32_pair_edges();
    let pa: Vec<u32> = pairs.iter().flat_map(|&a| pairs.iter().map(move |_| a)).collect();
    let pb: Vec<u32> = pairs.iter().flat_map(|_| pairs.iter().copied()).collect();
    let f64s = le(&f64_edges(), u64::to_le_bytes);
    let n64 = f64_edges().len();
    let all_f16: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
    let packed = |kernel, out_elem| EdgeCase { kernel, a: u32s(&edges), b: u32s(&reversed), n: edges.len(), out_elem };
    let binary = |kernel| EdgeCase { kernel, a: u32s(&pa), b: u32s(&pb), n: pa.len(), out_elem: 4 };
    let unary = |kernel| EdgeCase { kernel, a: u32s(&edges), b: Vec::new(), n: edges.len(), out_elem: 4 };
    vec![
        packed("cvt_e4m3x2_f32", 2),
        packed("cvt_e5m2x2_f32", 2),
        packed("cvt_bf16x2_f32", 4),
        packed("cvt_f16x2_f32", 4),
        EdgeCase { kernel: "cvt_f32_f16", a: all_f16, b: Vec::new(), n: 65536, out_elem: 4 },
        EdgeCase { kernel: "cvt_f32_f64", a: f64s.clone(), b: Vec::new(), n: n64, out_elem: 4 },
        EdgeCase { kernel: "cvt_s64_f64", a: f64s, b: Vec::new(), n: n64, out_elem: 8 },
        binary("min_f32"),
        binary("max_f32"),
        binary("div_rn_f32"),
        unary("sqrt_rn_f32"),
        unary("rcp_rn_f32"),
    ]
}

/// The inputs of edge-value kernel `kernel` (a, b), for reading its output.
pub fn edge_inputs(kernel: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    edge_cases().into_iter().find(|c| c.kernel == kernel).map(|c| (c.a, c.b))
}

/// Runs every edge-value kernel; each output is named after its kernel.
pub fn edges(g: &mut dyn Gpu) -> Result<Vec<Probe>, String> {
    let mut out = Vec::new();
    for c in edge_cases() {
        let a = g.upload(&c.a)?;
        // Unary kernels ignore b; it still points at valid memory.
        let b = if c.b.is_empty() { a } else { g.upload(&c.b)? };
        let o = zeros(g, c.n * c.out_elem)?;
        g.launch(CONVERT_PTX, c.kernel, c.n.div_ceil(256) as u32, 256, 0, &[a, b, o, c.n as u64])?;
        let output = g.download(o, c.n * c.out_elem)?;
        out.push(Probe {
            name: c.kernel,
            output,
            fingerprint: fnv(&[CONVERT_PTX.as_bytes(), c.kernel.as_bytes(), &c.a, &c.b]),
        });
    }
    Ok(out)
}

/// Every probe, in order; one that fails does not stop the others (but a launch failure is
/// sticky on a GPU and fails the rest: `mbarrier_parity`, the probe most likely to hang a
/// simulator, runs last). Goldens are `<name>.bin`.
pub fn run_all(g: &mut dyn Gpu) -> Vec<(&'static str, Result<Probe, String>)> {
    let mut v: Vec<(&'static str, Result<Probe, String>)> = vec![
        ("wgmma_bf16_m64n128k16", wgmma_bf16(g)),
        ("wgmma_e4m3_m64n128k32", wgmma_e4m3(g)),
        ("tma_swizzle_oob", tma(g)),
        ("stmatrix_forms", stmatrix(g)),
        ("tma_store_swizzle_clip", tma_store(g)),
        ("mbarrier_completions", mbarrier_completions(g)),
    ];
    match edges(g) {
        Ok(ps) => v.extend(ps.into_iter().map(|p| (p.name, Ok(p)))),
        Err(e) => v.push(("edge values", Err(e))),
    }
    v.push(("mbarrier_parity", mbarrier(g)));
    // Last: the first launch of a kernel with a compile-time cluster size, then distributed
    // shared memory.
    v.push(("cluster_multicast", cluster(g)));
    v.push(("cluster_dsmem", dsmem(g)));
    v
}

// ---------------------------------------------------------------------------------------------
// The simulator through its Rust API

/// The probes' device on the simulator's Rust API (`lowp_sim::Sim`).
pub struct SimGpu {
    pub sim: lowp_sim::Sim,
}

impl SimGpu {
    pub fn new() -> SimGpu {
        SimGpu { sim: lowp_sim::Sim::new(lowp_sim::Config::from_env()) }
    }
}

impl Gpu for SimGpu {
    fn upload(&mut self, data: &[u8]) -> Result<u64, String> {
        let p = self.sim.alloc(data.len().max(1) as u64).map_err(|e| e.to_string())?;
        self.sim.write(p, data).map_err(|e| e.to_string())?;
        Ok(p)
    }
    fn download(&mut self, ptr: u64, bytes: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0; bytes];
        self.sim.read(ptr, &mut v).map_err(|e| e.to_string())?;
        Ok(v)
    }
    fn launch(
        &mut self,
        ptx: &str,
        kernel: &str,
        grid: u32,
        block: u32,
        smem: u32,
        params: &[u64],
    ) -> Result<(), String> {
        let m = self.sim.load_module(ptx).map_err(|e| e.to_string())?;
        let k = self.sim.kernel(&m, kernel).map_err(|e| e.to_string())?;
        let cfg = lowp_sim::LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: smem };
        let bytes: Vec<u8> = params.iter().flat_map(|p| p.to_le_bytes()).collect();
        self.sim.launch(&k, &cfg, &bytes).map(|_| ()).map_err(|e| e.to_string())
    }
    fn tensor_map(&mut self, s: &MapSpec) -> Result<[u8; 128], String> {
        lowp_sim::tma::TensorMap::tiled(
            s.data_type,
            2,
            s.addr,
            &s.dims,
            &[s.row_stride],
            &s.box_dims,
            &[1, 1],
            0,
            s.swizzle,
            0,
            0,
        )
        .map(|m| m.encode())
        .map_err(|e| e.to_string())
    }
}
