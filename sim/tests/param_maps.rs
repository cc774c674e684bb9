//! Tensor maps passed as kernel parameters (`__grid_constant__ const CUtensorMap`, as CUTLASS and
//! DeepGEMM pass them), against the PTX ISA: `mov` of a kernel parameter's name gives its address
//! in `.param` space, `cvta.param` / `cvta.to.param` convert it to and from a generic address,
//! and the tensor-map operand of `cp.async.bulk.tensor` and `prefetch.tensormap` is the generic
//! address of a map in `.param`, `.const` or `.global` space (64-byte aligned).
//!
//! - TMA loads (plain and `.multicast::cluster`, in a cluster of 2) and a TMA store through maps
//!   in the parameters, two maps in one 256-byte parameter among them; every element checked
//!   against the tensor;
//! - scalar parameters read through their `.param` address (`ld.param [%rd]`) and their generic
//!   address (`ld [%rd]`, vectors included);
//! - misuse reported: a generic store into the parameters, a map reaching past the parameter
//!   bytes or misaligned, a map in shared memory, a `.param`-space address used as a generic
//!   one, a generic read past the parameters; and at load, the address of a `.func`'s parameter
//!   or of a call's argument, `cvta.param` in a `.func`.

use lowp_sim::tma::TensorMap;
use lowp_sim::{Config, ErrorKind, LaunchConfig, Sim, SimError};

const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n.extern .shared .align 128 .b8 smem[];\n";

fn cfg(grid: u32, block: u32, smem: u32) -> LaunchConfig {
    LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: smem }
}

/// Tensor A: u16, 64 × 32 elements, rows 128 bytes apart; element (x, y) = 1000 y + x.
const A_DIMS: [u64; 2] = [64, 32];
fn a_value(x: u64, y: u64) -> u16 {
    (1000 * y + x) as u16
}
/// Tensor B: u8, 128 × 32, rows 128 bytes apart; byte (x, y) = x ^ 37 y.
const B_DIMS: [u64; 2] = [128, 32];
fn b_value(x: u64, y: u64) -> u8 {
    (x ^ (37 * y)) as u8
}

/// Uploads tensor A (`fill`: every byte 0xEE instead) and returns its address.
fn upload_a(sim: &Sim, fill: bool) -> u64 {
    let data: Vec<u8> = if fill {
        vec![0xee; 128 * A_DIMS[1] as usize]
    } else {
        (0..A_DIMS[1]).flat_map(|y| (0..A_DIMS[0]).flat_map(move |x| a_value(x, y).to_le_bytes())).collect()
    };
    let p = sim.alloc(data.len() as u64).unwrap();
    sim.write(p, &data).unwrap();
    p
}

fn upload_b(sim: &Sim) -> u64 {
    let data: Vec<u8> = (0..B_DIMS[1]).flat_map(|y| (0..B_DIMS[0]).map(move |x| b_value(x, y))).collect();
    let p = sim.alloc(data.len() as u64).unwrap();
    sim.write(p, &data).unwrap();
    p
}

/// The map of tensor A with boxes of 32 × 8 elements (512 bytes), no swizzle.
fn map_a(addr: u64) -> [u8; 128] {
    TensorMap::tiled(1, 2, addr, &A_DIMS, &[128], &[32, 8], &[1, 1], 0, 0, 0, 0).unwrap().encode()
}

/// The map of tensor B with boxes of 64 × 8 bytes (512 bytes), no swizzle.
fn map_b(addr: u64) -> [u8; 128] {
    TensorMap::tiled(0, 2, addr, &B_DIMS, &[128], &[64, 8], &[1, 1], 0, 0, 0, 0).unwrap().encode()
}

/// The 512 bytes of the box of tensor A at (x0, y0), as a TMA load packs it (rows of 64 bytes).
fn a_box(x0: u64, y0: u64) -> Vec<u8> {
    (y0..y0 + 8).flat_map(|y| (x0..x0 + 32).flat_map(move |x| a_value(x, y).to_le_bytes())).collect()
}

fn b_box(x0: u64, y0: u64) -> Vec<u8> {
    (y0..y0 + 8).flat_map(|y| (x0..x0 + 64).map(move |x| b_value(x, y))).collect()
}

/// The parameter buffer of `k` with `args` at the offsets its declarations give (as ptxas lays
/// them out: each aligned at its sm_90 constant-bank address, `c[0x0][0x210]` onwards).
fn pack(k: &lowp_sim::Kernel, args: &[&[u8]]) -> Vec<u8> {
    let mut params = vec![0u8; k.param_bytes() as usize];
    assert_eq!(k.params().len(), args.len());
    for (p, a) in k.params().iter().zip(args) {
        assert_eq!(p.size as usize, a.len());
        params[p.offset as usize..p.offset as usize + a.len()].copy_from_slice(a);
    }
    params
}

/// The offsets of `k`'s parameters.
fn offsets(k: &lowp_sim::Kernel) -> Vec<u32> {
    k.params().iter().map(|p| p.offset).collect()
}

fn load(sim: &Sim, ptx: &str, name: &str) -> Result<std::sync::Arc<lowp_sim::Kernel>, SimError> {
    let m = sim.load_module(&format!("{HEADER}{ptx}"))?;
    sim.kernel(&m, name)
}

fn expect_err(r: Result<(), SimError>, kind: ErrorKind, words: &[&str]) {
    let e = r.expect_err("the misuse must be caught");
    assert_eq!(e.kind, kind, "{e}");
    for w in words {
        assert!(e.message.contains(w), "message lacks {w:?}: {e}");
    }
}

/// `one_map(map, out, x, y)`: one warp; thread 0 takes the generic address of the map parameter
/// (`mov` + `cvta.param`, then `map_code`, which may change `%rd5`), prefetches it, and TMA-loads
/// the box at (x, y) onto an mbarrier; every thread waits and copies 16 of the 512 bytes out.
fn one_map_ptx(map_code: &str) -> String {
    format!(
        r#"
.visible .entry one_map(
    .param .align 64 .b8 one_map_tmap[128],
    .param .u64 one_map_out,
    .param .u32 one_map_x,
    .param .u32 one_map_y
)
{{
    .reg .pred %p<3>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<12>;
    ld.param.u64 %rd1, [one_map_out];
    ld.param.u32 %r2, [one_map_x];
    ld.param.u32 %r3, [one_map_y];
    mov.u32 %r10, %tid.x;
    mov.u32 %r1, smem;
    add.s32 %r4, %r1, 512;
    mov.b64 %rd5, one_map_tmap;
    cvta.param.u64 %rd5, %rd5;
    setp.ne.u32 %p1, %r10, 0;
    @%p1 bra $L_inited;
    {map_code}
    prefetch.tensormap [%rd5];
    mov.u32 %r5, 1;
    mbarrier.init.shared::cta.b64 [%r4], %r5;
$L_inited:
    bar.sync 0;
    @%p1 bra $L_wait;
    mov.u32 %r6, 512;
    mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r4], %r6;
    cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r1], [%rd5, {{%r2, %r3}}], [%r4];
$L_wait:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r4], 0;
    @!%p2 bra $L_wait;
    shl.b32 %r7, %r10, 4;
    add.s32 %r8, %r1, %r7;
    ld.shared.v4.u32 {{%r11, %r12, %r13, %r14}}, [%r8];
    cvt.u64.u32 %rd2, %r7;
    add.s64 %rd3, %rd1, %rd2;
    st.global.v4.u32 [%rd3], {{%r11, %r12, %r13, %r14}};
    ret;
}}
"#
    )
}

/// Runs `one_map` with the map of tensor A as its first parameter; returns the 512 bytes out.
fn run_one_map(map_code: &str, x: u32, y: u32) -> Result<Vec<u8>, SimError> {
    let sim = Sim::new(Config::default());
    let k = load(&sim, &one_map_ptx(map_code), "one_map").expect("module loads");
    let out = sim.alloc(512).unwrap();
    // The map at 48 (bank address 0x240), as ptxas 13.0 places it; then 176, 184, 188.
    assert_eq!((offsets(&k), k.param_bytes()), (vec![48, 176, 184, 188], 192));
    let params = pack(&k, &[&map_a(upload_a(&sim, false)), &out.to_le_bytes(), &x.to_le_bytes(), &y.to_le_bytes()]);
    sim.launch(&k, &cfg(1, 32, 1024), &params)?;
    let mut got = vec![0u8; 512];
    sim.read(out, &mut got).unwrap();
    Ok(got)
}

fn check_box(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: byte {i} (box row {}, byte {} of the row)", i / 64, i % 64);
    }
}

/// Entry parameters are laid out as ptxas 13.0 lays them out for sm_90 (`cuobjdump -elf`'s
/// parameter offsets): each aligned at its constant-bank address, the first at `c[0x0][0x210]`.
/// So a 16-byte aligned parameter after 112 bytes of others lands on a 64-byte boundary (as the
/// GEMMs' maps do) and one after 120 bytes does not; the generic address has the same alignment.
#[test]
fn entry_parameters_are_aligned_at_their_constant_bank_addresses() {
    let sim = Sim::new(Config::default());
    for (decls, want) in [
        (".param .align 64 .b8 k_param_0[128]", vec![48]),
        (".param .u64 k_param_0, .param .align 64 .b8 k_param_1[128]", vec![0, 48]),
        (".param .align 8 .b8 k_param_0[112], .param .align 16 .b8 k_param_1[512]", vec![0, 112]),
        (".param .align 8 .b8 k_param_0[120], .param .align 16 .b8 k_param_1[512]", vec![0, 128]),
        (".param .align 8 .b8 k_param_0[120], .param .align 64 .b8 k_param_1[512]", vec![0, 176]),
        (".param .u32 k_param_0, .param .u64 k_param_1, .param .align 16 .b8 k_param_2[16]", vec![0, 8, 16]),
    ] {
        let k = load(&sim, &format!(".visible .entry k({decls})\n{{\n    ret;\n}}\n"), "k").expect("module loads");
        assert_eq!(offsets(&k), want, "{decls}");
    }
}

#[test]
fn tma_load_reads_a_map_passed_as_a_kernel_parameter() {
    check_box(&run_one_map("", 8, 4).unwrap(), &a_box(8, 4), "map at offset 0");
    // To `.param` and back, with the `.param::entry` spelling.
    let round_trip = "cvta.to.param.u64 %rd6, %rd5;\n    cvta.param::entry.u64 %rd5, %rd6;";
    check_box(&run_one_map(round_trip, 24, 20).unwrap(), &a_box(24, 20), "map through cvta.to.param");
    // `cvta.param` of the parameter's name itself.
    check_box(&run_one_map("cvta.param.u64 %rd5, one_map_tmap;", 0, 0).unwrap(), &a_box(0, 0), "cvta of the name");
}

/// `two_maps(out, maps)`: a cluster of 2 CTAs of one warp; `maps` holds tensor A's map at offset
/// 0 and tensor B's at 128. Thread 0 of rank r loads A's box at (8, 4 + 8 r) into bytes
/// [0, 512) of its shared memory, and multicasts B's box at (32, 8 r) into bytes
/// [512 + 512 r, 1024 + 512 r) of both CTAs; each CTA's mbarrier expects its 1536 bytes. Every
/// thread copies 48 of them to out + 1536 · ctaid. `out` is read through the parameter's
/// `.param` address and its generic address, which must agree.
const TWO_MAPS: &str = r#"
.visible .entry two_maps(
    .param .u64 two_maps_out,
    .param .align 64 .b8 two_maps_maps[256]
)
.reqnctapercluster 2, 1, 1
{
    .reg .pred %p<4>;
    .reg .b16 %h<2>;
    .reg .b32 %r<32>;
    .reg .b64 %rd<16>;
    mov.u64 %rd1, two_maps_out;
    ld.param.u64 %rd2, [%rd1];
    cvta.param.u64 %rd3, %rd1;
    ld.u64 %rd4, [%rd3];
    setp.ne.u64 %p3, %rd2, %rd4;
    @%p3 trap;
    mov.b64 %rd5, two_maps_maps;
    cvta.param.u64 %rd5, %rd5;
    add.s64 %rd6, %rd5, 128;
    mov.u32 %r10, %tid.x;
    mov.u32 %r11, %cluster_ctarank;
    mov.u32 %r12, %ctaid.x;
    mov.u32 %r1, smem;
    add.s32 %r4, %r1, 1536;
    setp.ne.u32 %p1, %r10, 0;
    @%p1 bra $L_inited;
    prefetch.tensormap [%rd5];
    prefetch.tensormap [%rd6];
    mov.u32 %r5, 1;
    mbarrier.init.shared::cta.b64 [%r4], %r5;
    fence.mbarrier_init.release.cluster;
$L_inited:
    barrier.cluster.arrive.release;
    barrier.cluster.wait.acquire;
    @%p1 bra $L_wait;
    mov.u32 %r6, 1536;
    mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r4], %r6;
    shl.b32 %r7, %r11, 3;
    add.s32 %r8, %r7, 4;
    mov.u32 %r9, 8;
    cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r1], [%rd5, {%r9, %r8}], [%r4];
    shl.b32 %r13, %r11, 9;
    add.s32 %r14, %r1, 512;
    add.s32 %r14, %r14, %r13;
    mov.u32 %r15, 32;
    mov.u16 %h1, 3;
    cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%r14], [%rd6, {%r15, %r7}], [%r4], %h1;
$L_wait:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r4], 0;
    @!%p2 bra $L_wait;
    mul.wide.u32 %rd7, %r12, 1536;
    add.s64 %rd8, %rd4, %rd7;
    shl.b32 %r16, %r10, 4;
    cvt.u64.u32 %rd9, %r16;
    add.s64 %rd10, %rd8, %rd9;
    add.s32 %r17, %r1, %r16;
    ld.shared.v4.u32 {%r20, %r21, %r22, %r23}, [%r17];
    st.global.v4.u32 [%rd10], {%r20, %r21, %r22, %r23};
    ld.shared.v4.u32 {%r20, %r21, %r22, %r23}, [%r17+512];
    st.global.v4.u32 [%rd10+512], {%r20, %r21, %r22, %r23};
    ld.shared.v4.u32 {%r20, %r21, %r22, %r23}, [%r17+1024];
    st.global.v4.u32 [%rd10+1024], {%r20, %r21, %r22, %r23};
    barrier.cluster.arrive.release;
    barrier.cluster.wait.acquire;
    ret;
}
"#;

#[test]
fn two_maps_in_one_parameter_after_a_scalar_load_and_multicast() {
    let sim = Sim::new(Config::default());
    let k = load(&sim, TWO_MAPS, "two_maps").expect("module loads");
    let out = sim.alloc(2 * 1536).unwrap();
    // out at offset 0; the 256-byte maps parameter at the next 64-byte aligned bank address
    // (0x240), offset 48.
    assert_eq!((offsets(&k), k.param_bytes()), (vec![0, 48], 304));
    let maps = [map_a(upload_a(&sim, false)), map_b(upload_b(&sim))].concat();
    let params = pack(&k, &[&out.to_le_bytes(), &maps]);
    sim.launch(&k, &cfg(2, 32, 2048), &params).unwrap();
    let mut got = vec![0u8; 2 * 1536];
    sim.read(out, &mut got).unwrap();
    for r in 0..2u64 {
        let o = &got[1536 * r as usize..];
        check_box(&o[..512], &a_box(8, 4 + 8 * r), &format!("CTA {r}, map 0"));
        check_box(&o[512..1024], &b_box(32, 0), &format!("CTA {r}, map 1 multicast by rank 0"));
        check_box(&o[1024..1536], &b_box(32, 8), &format!("CTA {r}, map 1 multicast by rank 1"));
    }
}

/// `store_map(map, x, y)`: one warp fills 512 bytes of shared memory (the word at offset o holds
/// o ^ 0x5a5a0000), fences and synchronizes; thread 0 TMA-stores the box at (x, y) through the
/// map parameter's generic address (`map_code` may change `%rd5`) and waits for it.
fn store_map_ptx(map_code: &str) -> String {
    format!(
        r#"
.visible .entry store_map(
    .param .align 64 .b8 store_map_tmap[128],
    .param .u32 store_map_x,
    .param .u32 store_map_y
)
{{
    .reg .pred %p<2>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<8>;
    mov.u32 %r10, %tid.x;
    mov.u32 %r1, smem;
    shl.b32 %r5, %r10, 4;
    add.s32 %r6, %r1, %r5;
    xor.b32 %r11, %r5, 1515847680;
    add.s32 %r12, %r11, 4;
    add.s32 %r13, %r11, 8;
    add.s32 %r14, %r11, 12;
    st.shared.v4.u32 [%r6], {{%r11, %r12, %r13, %r14}};
    fence.proxy.async.shared::cta;
    bar.sync 0;
    setp.ne.u32 %p1, %r10, 0;
    @%p1 bra $L_done;
    ld.param.u32 %r2, [store_map_x];
    ld.param.u32 %r3, [store_map_y];
    mov.u64 %rd5, store_map_tmap;
    cvta.param.u64 %rd5, %rd5;
    {map_code}
    prefetch.tensormap [%rd5];
    cp.async.bulk.tensor.2d.global.shared::cta.tile.bulk_group [%rd5, {{%r2, %r3}}], [%r1];
    cp.async.bulk.commit_group;
    cp.async.bulk.wait_group 0;
$L_done:
    ret;
}}
"#
    )
}

/// Runs `store_map` over tensor A (all 0xEE bytes); returns the tensor.
fn run_store_map(map_code: &str, x: u32, y: u32) -> Result<Vec<u8>, SimError> {
    let sim = Sim::new(Config::default());
    let k = load(&sim, &store_map_ptx(map_code), "store_map").expect("module loads");
    let t = upload_a(&sim, true);
    let params = pack(&k, &[&map_a(t), &x.to_le_bytes(), &y.to_le_bytes()]);
    sim.launch(&k, &cfg(1, 32, 1024), &params)?;
    let mut got = vec![0u8; 128 * A_DIMS[1] as usize];
    sim.read(t, &mut got).unwrap();
    Ok(got)
}

#[test]
fn tma_store_writes_through_a_map_passed_as_a_kernel_parameter() {
    // Inside the tensor, and over its right and bottom edges (clipped).
    for (x0, y0) in [(16u64, 20u64), (40, 28)] {
        let got = run_store_map("", x0 as u32, y0 as u32).unwrap();
        for y in 0..A_DIMS[1] {
            for x in 0..A_DIMS[0] {
                let inside = (x0..x0 + 32).contains(&x) && (y0..y0 + 8).contains(&y);
                for j in 0..2u64 {
                    let want = if inside {
                        let o = (y - y0) * 64 + 2 * (x - x0) + j;
                        ((((o & !3) as u32) ^ 0x5a5a_0000) >> (8 * (o % 4))) as u8
                    } else {
                        0xee
                    };
                    let at = (128 * y + 2 * x + j) as usize;
                    assert_eq!(got[at], want, "box at ({x0}, {y0}): element ({x}, {y}) byte {j}");
                }
            }
        }
    }
}

#[test]
fn misuse_of_parameter_maps_is_reported() {
    let r = |code: &str| run_one_map(code, 8, 4).map(|_| ());
    // The parameters are read-only through their generic address.
    expect_err(r("st.u32 [%rd5], %r2;"), ErrorKind::LaunchFailed, &["store to kernel parameter space", "read-only"]);
    expect_err(r("atom.add.u32 %r9, [%rd5], 1;"), ErrorKind::LaunchFailed, &["store to kernel parameter space"]);
    // A map 64 bytes into the map parameter reaches past the kernel's 192 parameter bytes, as
    // does one past them all.
    expect_err(
        r("add.s64 %rd5, %rd5, 64;"),
        ErrorKind::IllegalAddress,
        &["tensor map", "past the kernel's 192 parameter bytes"],
    );
    expect_err(r("add.s64 %rd5, %rd5, 4096;"), ErrorKind::IllegalAddress, &["parameter offset 4144"]);
    expect_err(r("add.s64 %rd5, %rd5, 32;"), ErrorKind::MisalignedAddress, &["not 64-byte aligned"]);
    // A generic shared address is no place for a map.
    let shared = "mov.u64 %rd6, smem;\n    cvta.shared.u64 %rd5, %rd6;";
    expect_err(
        r(shared),
        ErrorKind::IllegalAddress,
        &["in shared memory", "must be in .param, .const or .global space"],
    );
    // The `.param` address itself (no cvta, 48) is not a generic address of the parameter: as a
    // global address it is misaligned for a map (and no allocation holds it).
    expect_err(r("mov.b64 %rd5, one_map_tmap;"), ErrorKind::MisalignedAddress, &["tensor map at 0x30"]);
    // The TMA store resolves its map the same way.
    let s = |code: &str| run_store_map(code, 0, 0).map(|_| ());
    expect_err(
        s(shared),
        ErrorKind::IllegalAddress,
        &["in shared memory", "must be in .param, .const or .global space"],
    );
    expect_err(s("add.s64 %rd5, %rd5, 64;"), ErrorKind::IllegalAddress, &["past the kernel's 184 parameter bytes"]);
}

/// `scalars(a, b, c, out)`: every lane reads a (u64), b (u32) and c (16 bytes) through their
/// `.param` addresses and their generic addresses, and stores what it read at out + 48 · lane.
const SCALARS: &str = r#"
.visible .entry scalars(
    .param .u64 scalars_a,
    .param .u32 scalars_b,
    .param .align 16 .b8 scalars_c[16],
    .param .u64 scalars_out
)
{
    .reg .b32 %r<16>;
    .reg .b64 %rd<16>;
    ld.param.u64 %rd1, [scalars_out];
    mov.u32 %r10, %tid.x;
    mul.wide.u32 %rd9, %r10, 48;
    add.s64 %rd1, %rd1, %rd9;
    mov.u64 %rd2, scalars_a;
    ld.param.u64 %rd3, [%rd2];
    cvta.param.u64 %rd4, %rd2;
    ld.u64 %rd5, [%rd4];
    cvta.param::entry.u64 %rd6, scalars_b;
    ld.u32 %r1, [%rd6];
    cvta.to.param.u64 %rd7, %rd6;
    ld.param.u32 %r2, [%rd7];
    mov.u32 %r3, scalars_b;
    ld.param.u32 %r4, [%r3];
    mov.b64 %rd8, scalars_c;
    cvta.param.u64 %rd8, %rd8;
    ld.v4.u32 {%r5, %r6, %r7, %r8}, [%rd8];
    ld.u16 %r9, [%rd8+14];
    st.global.u64 [%rd1], %rd3;
    st.global.u64 [%rd1+8], %rd5;
    st.global.v4.u32 [%rd1+16], {%r1, %r2, %r4, %r9};
    st.global.v4.u32 [%rd1+32], {%r5, %r6, %r7, %r8};
    ret;
}
"#;

#[test]
fn scalar_parameters_read_through_their_param_and_generic_addresses() {
    let sim = Sim::new(Config::default());
    let k = load(&sim, SCALARS, "scalars").expect("module loads");
    let out = sim.alloc(32 * 48).unwrap();
    let (a, b) = (0x0123_4567_89ab_cdefu64, 0xdead_beefu32);
    let c: [u32; 4] = [11, 22, 33, 0xcafe_f00d];
    assert_eq!((offsets(&k), k.param_bytes()), (vec![0, 8, 16, 32], 40));
    let c_bytes: Vec<u8> = c.iter().flat_map(|w| w.to_le_bytes()).collect();
    let params = pack(&k, &[&a.to_le_bytes(), &b.to_le_bytes(), &c_bytes, &out.to_le_bytes()]);
    sim.launch(&k, &cfg(1, 32, 0), &params).unwrap();
    let mut got = vec![0u8; 32 * 48];
    sim.read(out, &mut got).unwrap();
    let mut want = Vec::new();
    want.extend(a.to_le_bytes());
    want.extend(a.to_le_bytes());
    for w in [b, b, b, 0xcafe] {
        want.extend(w.to_le_bytes());
    }
    for w in c {
        want.extend(w.to_le_bytes());
    }
    for lane in 0..32 {
        assert_eq!(&got[48 * lane..48 * lane + 48], &want[..], "lane {lane}");
    }
    // A generic read past the parameters faults as `ld.param` past them does.
    let past = SCALARS.replace("ld.u16 %r9, [%rd8+14];", "ld.u32 %r9, [%rd8+24];");
    let k = load(&sim, &past, "scalars").expect("module loads");
    expect_err(
        sim.launch(&k, &cfg(1, 32, 0), &params).map(|_| ()),
        ErrorKind::IllegalAddress,
        &["parameter access of 4 bytes at offset 40 past the kernel's 40 parameter bytes"],
    );
}

#[test]
fn parameter_addresses_outside_a_kernel_are_refused_at_load() {
    let sim = Sim::new(Config::default());
    let refused = |body: &str, words: &[&str]| {
        let e = sim.load_module(&format!("{HEADER}{body}")).map(|_| ()).expect_err("refused at load");
        assert_eq!(e.kind, ErrorKind::InvalidPtx, "{e}");
        for w in words {
            assert!(e.message.contains(w), "message lacks {w:?}: {e}");
        }
    };
    let func = |stmt: &str| format!(".func f(.param .b64 f_p)\n{{\n    .reg .b64 %rd<4>;\n    {stmt}\n    ret;\n}}\n");
    refused(&func("mov.b64 %rd1, f_p;"), &["'f_p'", "only a kernel parameter"]);
    refused(&func("cvta.param.u64 %rd1, %rd2;"), &["cvta of .param space in a .func"]);
    // A call's argument in a kernel lives in the frame, not in the parameter buffer.
    let scratch = ".visible .entry k(.param .u64 k_p)\n{\n    .reg .b64 %rd<4>;\n    {\n    .param .b64 param0;\n    mov.b64 %rd1, param0;\n    }\n    ret;\n}\n";
    refused(scratch, &["'param0'", "only a kernel parameter"]);
    let entry = |stmt: &str| {
        format!(
            ".visible .entry k(.param .u64 k_p)\n{{\n    .reg .b64 %rd<4>;\n    .reg .b32 %r<4>;\n    {stmt}\n    ret;\n}}\n"
        )
    };
    refused(&entry("cvta.param::func.u64 %rd1, %rd2;"), &["cvta"]);
    refused(&entry("cvta.param.u32 %r1, %r2;"), &["cvta"]);
    // The same forms in a kernel load.
    for stmt in ["mov.b64 %rd1, k_p;", "cvta.param.u64 %rd1, k_p;", "cvta.to.param::entry.u64 %rd1, %rd2;"] {
        sim.load_module(&format!("{HEADER}{}", entry(stmt))).unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
}
