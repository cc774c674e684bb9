//! The simulator's thread-block clusters (`sim/src/exec/cluster.rs`) against the PTX ISA:
//!
//! - `.reqnctapercluster X, Y, Z`: the grid runs in clusters of that shape; a grid that is not a
//!   multiple of it does not launch; the special registers `%cluster_ctarank`,
//!   `%cluster_nctarank`, `%clusterid`, `%nclusterid`, `%cluster_ctaid`, `%cluster_nctaid` and
//!   `%is_explicit_cluster` (a launch without the directive is one implicit 1 × 1 × 1 cluster per
//!   CTA);
//! - `mapa.shared::cluster` maps a shared address to the same variable in another CTA of the
//!   cluster, and `mbarrier.arrive.release.cluster.shared::cluster.b64 _, [addr]` arrives on the
//!   barrier there;
//! - `cp.async.bulk.tensor...multicast::cluster` with a 16-bit `ctaMask` writes the box at the
//!   same shared offset in every CTA of the mask and completes its bytes on the mbarrier at the
//!   same offset in each;
//! - `barrier.cluster.arrive` / `barrier.cluster.wait`: the wait returns once every non-exited
//!   thread of the cluster has arrived;
//! - `ld.shared::cluster` at a `mapa` address reads the other CTA's shared memory (distributed
//!   shared memory), ordered by a release (`mbarrier.arrive.release.cluster` on the reader's
//!   barrier) that the reading warp acquired (`mbarrier.try_wait.parity.acquire.cluster`), and a
//!   write of bytes a peer read ordered likewise after the reader's release;
//! - misuse is reported: an arrive on a CTA that has exited, a CTA exiting while a peer that
//!   arrived on its barriers has not passed a cluster barrier since, a multicast outside the
//!   cluster, a read of multicast data before the wait on its phase, cluster-barrier misuse, a
//!   deadlock across the CTAs of a cluster, a missing or wrong release/acquire handshake around a
//!   remote read, a remote read of a CTA that has exited or outside the cluster, a store into
//!   another CTA.
//!
//! `cuOccupancyMaxActiveClusters` is tested with the other driver entry points (`capi.rs`).

mod probe_kernels;

use probe_kernels::{Gpu, MapSpec, SimGpu};

const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n.extern .shared .align 1024 .b8 smem[];\n";

fn sim(seed: Option<u64>) -> SimGpu {
    SimGpu { sim: lowp_sim::Sim::new(lowp_sim::Config { seed, ..lowp_sim::Config::default() }) }
}

/// Thread 0 of each CTA writes eight u32 at `out[8 · ctaid.x ..]`: the cluster registers.
fn sregs_ptx(directive: &str) -> String {
    let regs = [
        "%cluster_ctarank",
        "%cluster_nctarank",
        "%clusterid.x",
        "%nclusterid.x",
        "%cluster_ctaid.x",
        "%cluster_nctaid.x",
        "%is_explicit_cluster",
        "%cluster_ctaid.y",
    ];
    let stores: String = regs
        .iter()
        .enumerate()
        .map(|(i, r)| format!("    mov.u32 %r3, {r};\n    st.global.u32 [%rd3+{}], %r3;\n", 4 * i))
        .collect();
    format!(
        r#"{HEADER}
.visible .entry sregs(.param .u64 out) {directive}
{{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L_end;
    mov.u32 %r2, %ctaid.x;
    mul.wide.u32 %rd2, %r2, 32;
    add.s64 %rd3, %rd1, %rd2;
{stores}$L_end:
    ret;
}}
"#
    )
}

fn words(b: &[u8]) -> Vec<u32> {
    b.chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn cluster_special_registers_follow_the_ptx_isa() {
    let mut g = sim(None);
    let out = g.upload(&[0; 8 * 4 * 4]).unwrap();
    g.launch(&sregs_ptx(".reqnctapercluster 2, 1, 1"), "sregs", 4, 32, 0, &[out]).unwrap();
    let w = words(&g.download(out, 8 * 4 * 4).unwrap());
    for cta in 0..4u32 {
        let got = &w[8 * cta as usize..8 * cta as usize + 8];
        assert_eq!(got, &[cta % 2, 2, cta / 2, 2, cta % 2, 2, 1, 0], "CTA {cta}");
    }
    // No directive: each CTA is its own implicit 1 × 1 × 1 cluster.
    g.launch(&sregs_ptx(""), "sregs", 4, 32, 0, &[out]).unwrap();
    let w = words(&g.download(out, 8 * 4 * 4).unwrap());
    for cta in 0..4u32 {
        let got = &w[8 * cta as usize..8 * cta as usize + 8];
        assert_eq!(got, &[0, 1, cta, 4, 0, 1, 0, 0], "CTA {cta}");
    }
}

#[test]
fn a_grid_that_is_not_a_multiple_of_the_cluster_does_not_launch() {
    let mut g = sim(None);
    let out = g.upload(&[0; 8 * 4 * 4]).unwrap();
    let e = g.launch(&sregs_ptx(".reqnctapercluster 2, 1, 1"), "sregs", 3, 32, 0, &[out]).unwrap_err();
    assert!(e.contains("not a multiple of the kernel's .reqnctapercluster"), "{e}");
    // More CTAs per cluster than the device has SMs (4 by default) cannot run at once.
    let e = g.launch(&sregs_ptx(".reqnctapercluster 8, 1, 1"), "sregs", 8, 32, 0, &[out]).unwrap_err();
    assert!(e.contains("needs 8 SMs"), "{e}");
}

/// Two-CTA clusters: thread 0 initializes the barrier at `smem` (32 arrivals), a cluster
/// barrier publishes it, then every lane of warp 0 arrives on the *peer's* barrier (`mapa`),
/// waits for its own barrier's phase 0, and thread 0 writes `ctaid + 1` to `out[ctaid]`.
/// `final_sync`: a cluster barrier before exit.
fn remote_arrive_ptx(final_sync: bool, peer_waits: bool) -> String {
    let fin = if final_sync { "    barrier.cluster.arrive;\n    barrier.cluster.wait;\n" } else { "" };
    let wait = if peer_waits {
        "$L_wait:\n    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r5], 0;\n    @!%p2 bra $L_wait;\n"
    } else {
        ""
    };
    format!(
        r#"{HEADER}
.visible .entry remote(.param .u64 out) .reqnctapercluster 2, 1, 1
{{
    .reg .pred %p<4>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    mov.u32 %r5, smem;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L_init_done;
    mbarrier.init.shared::cta.b64 [%r5], 32;
    fence.mbarrier_init.release.cluster;
$L_init_done:
    barrier.cluster.arrive.release.aligned;
    barrier.cluster.wait.acquire.aligned;
    mov.u32 %r2, %cluster_ctarank;
    xor.b32 %r3, %r2, 1;
    mapa.shared::cluster.u32 %r4, %r5, %r3;
    mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r4];
{wait}    @%p1 bra $L_out;
    mov.u32 %r6, %ctaid.x;
    add.u32 %r7, %r6, 1;
    mul.wide.u32 %rd2, %r6, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r7;
$L_out:
{fin}    ret;
}}
"#
    )
}

#[test]
fn mapa_and_a_remote_arrive_complete_the_peers_barrier() {
    for seed in [None, Some(1), Some(2), Some(3)] {
        let mut g = sim(seed);
        let out = g.upload(&[0; 16]).unwrap();
        g.launch(&remote_arrive_ptx(true, true), "remote", 4, 32, 64, &[out]).unwrap();
        assert_eq!(words(&g.download(out, 16).unwrap()), [1, 2, 3, 4], "seed {seed:?}");
    }
}

#[test]
fn a_cta_may_not_exit_while_a_peer_may_still_arrive_on_its_barriers() {
    // No cluster barrier before exit: the first CTA to exit leaves a peer that arrived on its
    // barrier and has passed no cluster-barrier phase since.
    let mut g = sim(None);
    let out = g.upload(&[0; 16]).unwrap();
    let e = g.launch(&remote_arrive_ptx(false, true), "remote", 2, 32, 64, &[out]).unwrap_err();
    assert!(e.contains("may write into or read its shared memory"), "{e}");
    // Nobody waits: the peer's arrive may come after this CTA exited.
    let e = g.launch(&remote_arrive_ptx(false, false), "remote", 2, 32, 64, &[out]).unwrap_err();
    assert!(e.contains("which has exited") || e.contains("may write into or read its shared memory"), "{e}");
}

#[test]
fn mapa_past_the_cluster_is_an_error() {
    let ptx = remote_arrive_ptx(true, true).replace("xor.b32 %r3, %r2, 1;", "add.u32 %r3, %r2, 2;");
    let mut g = sim(None);
    let out = g.upload(&[0; 16]).unwrap();
    let e = g.launch(&ptx, "remote", 2, 32, 64, &[out]).unwrap_err();
    assert!(e.contains("mapa to CTA rank") && e.contains("of a cluster of 2 CTAs"), "{e}");
}

#[test]
fn cluster_barrier_misuse_and_deadlocks_are_reported() {
    let mut g = sim(None);
    let out = g.upload(&[0; 16]).unwrap();
    let twice = remote_arrive_ptx(true, true).replace(
        "barrier.cluster.arrive.release.aligned;",
        "barrier.cluster.arrive.release.aligned;\n    barrier.cluster.arrive;",
    );
    let e = g.launch(&twice, "remote", 2, 32, 64, &[out]).unwrap_err();
    assert!(e.contains("arrived before and has not executed barrier.cluster.wait"), "{e}");
    let no_arrive = remote_arrive_ptx(true, true).replace("barrier.cluster.arrive.release.aligned;", "");
    let e = g.launch(&no_arrive, "remote", 2, 32, 64, &[out]).unwrap_err();
    assert!(e.contains("has not executed barrier.cluster.arrive"), "{e}");
    // Rank 1 waits for an arrival that never comes (nobody arrives on its barrier) while rank 0
    // waits at the cluster barrier: no warp of the cluster can run.
    let stuck = remote_arrive_ptx(true, true).replace(
        "    mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r4];\n",
        "    setp.eq.u32 %p3, %r2, 1;\n    @%p3 mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r4];\n",
    );
    let e = g.launch(&stuck, "remote", 2, 32, 64, &[out]).unwrap_err();
    assert!(e.contains("deadlock in the cluster") && e.contains("barrier.cluster.wait"), "{e}");
}

const ROWS: u32 = 8;
const WIDTH: u32 = 64;

/// Two-CTA clusters: each CTA's thread 0 expects the whole box of `ROWS` × `WIDTH` u16 on its
/// barrier and multicasts its half of the rows (rank r: rows `r · ROWS/2 ..`) to `mask`; after
/// the wait on phase 0 (unless `skip_wait` for rank 1) every thread copies the box to
/// `out[ctaid]`. The tensor's rows start at row `4 · clusterid` (the clusters load different
/// boxes).
fn multicast_ptx(mask: u32, skip_wait: bool) -> String {
    let half_bytes = ROWS / 2 * WIDTH * 2;
    let box_bytes = ROWS * WIDTH * 2;
    let wait_guard = if skip_wait { "    setp.eq.u32 %p3, %r2, 1;\n    @%p3 bra $L_copy;\n" } else { "" };
    format!(
        r#"{HEADER}
.visible .entry mc(.param .u64 out, .param .u64 map) .reqnctapercluster 2, 1, 1
{{
    .reg .pred %p<4>;
    .reg .b16 %h<2>;
    .reg .b32 %r<20>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd1, %rd1;
    ld.param.u64 %rd4, [map];
    mov.u32 %r1, %tid.x;
    mov.u32 %r5, smem;
    add.u32 %r6, %r5, {box_bytes};
    mov.u32 %r2, %cluster_ctarank;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L_init_done;
    mbarrier.init.shared::cta.b64 [%r6], 1;
    fence.mbarrier_init.release.cluster;
$L_init_done:
    barrier.cluster.arrive.release.aligned;
    barrier.cluster.wait.acquire.aligned;
    @%p1 bra $L_issued;
    mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r6], {box_bytes};
    mul.lo.u32 %r7, %r2, {half_bytes};
    add.u32 %r8, %r5, %r7;
    mov.u32 %r9, %clusterid.x;
    shl.b32 %r9, %r9, 2;
    mul.lo.u32 %r10, %r2, {half_rows};
    add.u32 %r10, %r10, %r9;
    mov.u16 %h1, {mask};
    cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%r8], [%rd4, {{0, %r10}}], [%r6], %h1;
$L_issued:
{wait_guard}$L_wait:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r6], 0;
    @!%p2 bra $L_wait;
$L_copy:
    mov.u32 %r11, %ctaid.x;
    mul.wide.u32 %rd2, %r11, {box_bytes};
    add.s64 %rd3, %rd1, %rd2;
    mov.u32 %r12, %r1;
$L_loop:
    setp.ge.u32 %p3, %r12, {words};
    @%p3 bra $L_done;
    shl.b32 %r13, %r12, 2;
    add.u32 %r14, %r5, %r13;
    ld.shared.u32 %r15, [%r14];
    mul.wide.u32 %rd5, %r13, 1;
    add.s64 %rd6, %rd3, %rd5;
    st.global.u32 [%rd6], %r15;
    add.u32 %r12, %r12, 64;
    bra $L_loop;
$L_done:
    barrier.cluster.arrive.release.aligned;
    barrier.cluster.wait.acquire.aligned;
    ret;
}}
"#,
        half_rows = ROWS / 2,
        words = box_bytes / 4
    )
}

/// Runs the multicast kernel on `clusters` clusters; the tensor and each CTA's output.
fn run_multicast(g: &mut SimGpu, ptx: &str, clusters: u32) -> Result<(Vec<u16>, Vec<Vec<u16>>), String> {
    let rows = 4 * clusters as u64 + ROWS as u64;
    let tensor: Vec<u16> = (0..rows * WIDTH as u64).map(|i| (i * 7 + 3) as u16).collect();
    let bytes: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = g.upload(&bytes)?;
    let spec = MapSpec {
        data_type: 1,
        addr: t,
        dims: [WIDTH as u64, rows],
        row_stride: 2 * WIDTH as u64,
        box_dims: [WIDTH, ROWS / 2],
        swizzle: 0,
    };
    let map = g.tensor_map(&spec)?;
    let map_ptr = g.upload(&map)?;
    let box_bytes = (ROWS * WIDTH * 2) as usize;
    let out = g.upload(&vec![0; 2 * clusters as usize * box_bytes])?;
    g.launch(ptx, "mc", 2 * clusters, 64, box_bytes as u32 + 64, &[out, map_ptr])?;
    let o = g.download(out, 2 * clusters as usize * box_bytes)?;
    let per: Vec<Vec<u16>> =
        o.chunks(box_bytes).map(|c| c.chunks(2).map(|x| u16::from_le_bytes([x[0], x[1]])).collect()).collect();
    Ok((tensor, per))
}

#[test]
fn a_multicast_copy_lands_in_every_cta_of_the_mask() {
    for seed in [None, Some(1), Some(2), Some(3)] {
        let mut g = sim(seed);
        let (tensor, per) = run_multicast(&mut g, &multicast_ptx(3, false), 2).unwrap();
        for (cta, got) in per.iter().enumerate() {
            let first = 4 * (cta / 2) * WIDTH as usize;
            assert_eq!(got[..], tensor[first..first + (ROWS * WIDTH) as usize], "CTA {cta}, seed {seed:?}");
        }
    }
}

#[test]
fn multicast_misuse_is_reported() {
    let mut g = sim(None);
    // A CTA outside the cluster.
    let e = run_multicast(&mut g, &multicast_ptx(5, false), 1).unwrap_err();
    assert!(e.contains("multicast TMA copy into CTA rank 2 of a cluster of 2 CTAs"), "{e}");
    // Only to itself: the other half of each box never arrives, the barriers wait forever.
    let e = run_multicast(
        &mut g,
        &multicast_ptx(1, false).replace("mov.u16 %h1, 1;", "shl.b32 %r16, 1, %r2;\n    cvt.u16.u32 %h1, %r16;"),
        1,
    )
    .unwrap_err();
    assert!(e.contains("deadlock in the cluster"), "{e}");
    // Rank 1 reads the box without waiting on its barrier: the peer's multicast wrote it.
    for seed in [None, Some(1)] {
        let mut g = sim(seed);
        let e = run_multicast(&mut g, &multicast_ptx(3, true), 1).unwrap_err();
        assert!(e.contains("race with TMA") || e.contains("never written"), "{e}");
    }
}

#[test]
fn a_remote_arrive_needs_a_cluster_barrier_after_the_init() {
    // A CTA barrier orders the init before this CTA's threads only: the peer may arrive first.
    let ptx = remote_arrive_ptx(true, true)
        .replace("barrier.cluster.arrive.release.aligned;\n    barrier.cluster.wait.acquire.aligned;", "bar.sync 0;");
    for seed in [None, Some(1)] {
        let mut g = sim(seed);
        let out = g.upload(&[0; 16]).unwrap();
        let e = g.launch(&ptx, "remote", 2, 32, 64, &[out]).unwrap_err();
        assert!(e.contains("whose initialization no barrier.cluster wait") || e.contains("not initialized"), "{e}");
    }
    // The same for a multicast into the peer.
    let ptx = multicast_ptx(3, false).replace(
        "barrier.cluster.arrive.release.aligned;\n    barrier.cluster.wait.acquire.aligned;\n    @%p1 bra $L_issued;",
        "bar.sync 0;\n    @%p1 bra $L_issued;",
    );
    let mut g = sim(None);
    let e = run_multicast(&mut g, &ptx, 1).unwrap_err();
    assert!(e.contains("whose initialization no barrier.cluster wait") || e.contains("not initialized"), "{e}");
}

/// The hardware probe of clusters (`sim/tests/probe_kernels/cluster.ptx`, run on a GPU by
/// `sim/examples/goldens.rs`): a plain launch of a grid of 2 runs one cluster of 2 CTAs (ranks 0
/// and 1 by `%ctaid.x`), both bounded waits complete, and each CTA's region holds both halves of
/// the box (rows 0..16 from rank 0's multicast, 16..32 from rank 1's), 128-byte swizzled.
#[test]
fn cluster_probe_multicasts_both_halves_into_both_ctas() {
    let p = probe_kernels::cluster(&mut probe_kernels::SimGpu::new()).unwrap();
    for cta in 0..2usize {
        let out = &p.output[cta * probe_kernels::CLUSTER_OUT..(cta + 1) * probe_kernels::CLUSTER_OUT];
        let header: Vec<u32> = out[..16].chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(header, [cta as u32, 2, 1, 1], "CTA {cta}: rank, cluster size, wait flags");
        let region = &out[16..];
        for half in 0..2u64 {
            for row in 0..16u64 {
                for x in 0..128u64 {
                    let o = half * 2048 + probe_kernels::cute::swizzle(3, 4, 3, row * 128 + x);
                    let want = probe_kernels::cluster_value(x, 16 * half + row);
                    assert_eq!(region[o as usize], want, "CTA {cta}: half {half}, row {row}, byte {x}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Distributed shared memory: a split-K style reduction across the CTAs of a cluster

/// Threads per CTA of the reduction kernel (one warpgroup) and its rounds (tiles).
const RED_THREADS: u32 = 128;
const RED_ROUNDS: u32 = 2;
/// The round number of the values each CTA writes before the first cluster barrier.
const PREFILL: u32 = 255;

/// Element `k` of the 4 f32 thread `tid` of cluster CTA `rank` (of cluster `cid`) writes in
/// round `round`: an integer below 2^24 (exact in f32), scattered by a hash.
fn red_value(cid: u32, rank: u32, round: u32, tid: u32, k: u32) -> f32 {
    let mut h = tid
        .wrapping_mul(2654435761)
        .wrapping_add(rank.wrapping_mul(2246822507))
        .wrapping_add(round.wrapping_mul(3266489909))
        .wrapping_add(cid.wrapping_mul(374761393))
        .wrapping_add(k.wrapping_mul(668265263));
    h ^= h >> 15;
    (h >> 8) as f32
}

/// PTX computing `red_value` into `%f{first + k}`, k = 0..4, for the rank in `%r2`, the round in
/// `round`, the thread in `%r1` and the cluster in `%r10` (scratch `%r20`, `%r21`).
fn red_value_ptx(round: &str, first: u32) -> String {
    (0..4u32)
        .map(|k| {
            format!(
                "    mul.lo.u32 %r20, %r1, 2654435761;\n    mad.lo.u32 %r20, %r2, 2246822507, %r20;\n    mad.lo.u32 %r20, {round}, 3266489909, %r20;\n    mad.lo.u32 %r20, %r10, 374761393, %r20;\n    add.u32 %r20, %r20, {};\n    shr.u32 %r21, %r20, 15;\n    xor.b32 %r20, %r20, %r21;\n    shr.u32 %r20, %r20, 8;\n    cvt.rn.f32.u32 %f{}, %r20;\n",
                k.wrapping_mul(668265263),
                first + k
            )
        })
        .collect()
}

/// A gather through distributed shared memory: a cluster of `size` CTAs, one warpgroup each, over
/// `RED_ROUNDS` rounds, every CTA's values read by the leader (the GEMM's split-K kernels
/// exchange all to all with the same barriers; the GEMM tests and mutations check those). Each thread first writes `PREFILL` values into its 16-byte slot of `buf` (shared
/// offset 16 · tid); thread 0 initializes `red_full` (size − 1 arrivals) and `red_empty` (1);
/// a cluster barrier publishes both. Per round j:
///
/// - a peer (rank ≥ 1): every thread waits on its own `red_empty` (parity `(j & 1) ^ 1`, so the
///   first wait passes at once; `.acquire.cluster`), writes its round-j values into its slot
///   (`st.shared.v4.f32`), `bar.sync 1, 128`, then thread 0 arrives
///   (`.release.cluster`) on the leader's `red_full` through `mapa`;
/// - the leader (rank 0): every thread waits on its `red_full` (parity `j & 1`,
///   `.acquire.cluster`), reads its slot of every CTA of the cluster (itself included) with
///   `ld.shared::cluster.v4.f32` at `mapa`-mapped addresses and stores them to
///   `out[((cid · RED_ROUNDS + j) · size + p) · 128 + tid]`, `bar.sync 1, 128`, then thread 0
///   arrives (`.release.cluster`) on every peer's `red_empty`.
///
/// A cluster barrier precedes the exit.
fn reduction_ptx(size: u32) -> String {
    let prefill = red_value_ptx("%r8", 1);
    let values = red_value_ptx("%r8", 1);
    format!(
        r#"{HEADER}
.visible .entry red(.param .u64 out) .reqnctapercluster {size}, 1, 1
{{
    .reg .pred %p<8>;
    .reg .b32 %r<32>;
    .reg .f32 %f<16>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %cluster_ctarank;
    mov.u32 %r3, %cluster_nctarank;
    mov.u32 %r10, %clusterid.x;
    mov.u32 %r4, smem;
    shl.b32 %r12, %r1, 4;
    add.u32 %r5, %r4, %r12;
    add.u32 %r6, %r4, 2048;
    add.u32 %r7, %r4, 2056;
    mov.u32 %r8, {PREFILL};
{prefill}    st.shared.v4.f32 [%r5], {{%f1, %f2, %f3, %f4}};
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L_inited;
    sub.u32 %r13, %r3, 1;
    mbarrier.init.shared::cta.b64 [%r6], %r13;
    mbarrier.init.shared::cta.b64 [%r7], 1;
    fence.mbarrier_init.release.cluster;
$L_inited:
    barrier.cluster.arrive.release.aligned;
    barrier.cluster.wait.acquire.aligned;
    mov.u32 %r8, 0;
$L_round:
    setp.ge.u32 %p2, %r8, {RED_ROUNDS};
    @%p2 bra $L_end;
    and.b32 %r9, %r8, 1;
    setp.eq.u32 %p3, %r2, 0;
    @%p3 bra $L_leader;
    xor.b32 %r14, %r9, 1;
$L_empty:
    mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p4, [%r7], %r14;
    @!%p4 bra $L_empty;
{values}    st.shared.v4.f32 [%r5], {{%f1, %f2, %f3, %f4}};
    bar.sync 1, 128;
    @%p1 bra $L_next;
    mapa.shared::cluster.u32 %r15, %r6, 0;
    mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r15];
    bra $L_next;
$L_leader:
    mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p4, [%r6], %r9;
    @!%p4 bra $L_leader;
    mov.u32 %r11, 0;
$L_peer:
    setp.ge.u32 %p5, %r11, %r3;
    @%p5 bra $L_read;
    mapa.shared::cluster.u32 %r16, %r5, %r11;
    ld.shared::cluster.v4.f32 {{%f5, %f6, %f7, %f8}}, [%r16];
    mad.lo.u32 %r17, %r10, {RED_ROUNDS}, %r8;
    mad.lo.u32 %r17, %r17, %r3, %r11;
    shl.b32 %r17, %r17, 7;
    add.u32 %r17, %r17, %r1;
    mul.wide.u32 %rd2, %r17, 16;
    add.s64 %rd3, %rd1, %rd2;
    st.global.v4.f32 [%rd3], {{%f5, %f6, %f7, %f8}};
    add.u32 %r11, %r11, 1;
    bra $L_peer;
$L_read:
    bar.sync 1, 128;
    @%p1 bra $L_next;
    mov.u32 %r11, 1;
$L_release:
    setp.ge.u32 %p5, %r11, %r3;
    @%p5 bra $L_next;
    mapa.shared::cluster.u32 %r18, %r7, %r11;
    mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r18];
    add.u32 %r11, %r11, 1;
    bra $L_release;
$L_next:
    add.u32 %r8, %r8, 1;
    bra $L_round;
$L_end:
    barrier.cluster.arrive.release.aligned;
    barrier.cluster.wait.acquire.aligned;
    ret;
}}
"#
    )
}

/// Clusters per reduction launch.
const RED_CLUSTERS: u32 = 2;

/// Runs `ptx` (a variant of `reduction_ptx(size)`) on `RED_CLUSTERS` clusters; the output as f32.
fn run_reduction(seed: Option<u64>, ptx: &str, size: u32) -> Result<Vec<f32>, String> {
    let mut g = sim(seed);
    let n = (RED_CLUSTERS * RED_ROUNDS * size * RED_THREADS * 4) as usize;
    let out = g.upload(&vec![0; 4 * n])?;
    g.launch(ptx, "red", RED_CLUSTERS * size, RED_THREADS, 2112, &[out])?;
    Ok(words(&g.download(out, 4 * n)?).into_iter().map(f32::from_bits).collect())
}

/// What the leader of each cluster read, by round, CTA rank, thread and element.
fn reduction_expected(size: u32) -> Vec<f32> {
    let mut v = Vec::new();
    for cid in 0..RED_CLUSTERS {
        for j in 0..RED_ROUNDS {
            for p in 0..size {
                // The leader writes only its prefill; each peer writes round j's values.
                let round = if p == 0 { PREFILL } else { j };
                for tid in 0..RED_THREADS {
                    v.extend((0..4).map(|k| red_value(cid, p, round, tid, k)));
                }
            }
        }
    }
    v
}

#[test]
fn the_leader_reads_each_peers_shared_memory_after_the_handshake() {
    for size in [2, 4] {
        let want = reduction_expected(size);
        for seed in [None, Some(1), Some(2), Some(3)] {
            let got = run_reduction(seed, &reduction_ptx(size), size).unwrap();
            assert!(got == want, "cluster of {size}, seed {seed:?}: the leader read other values than the peers wrote");
        }
    }
    // Stores through a `.shared::cluster` address of the CTA itself are local stores.
    let own = reduction_ptx(2).replace(
        "    st.shared.v4.f32 [%r5],",
        "    mapa.shared::cluster.u32 %r19, %r5, %r2;\n    st.shared::cluster.v4.f32 [%r19],",
    );
    assert_ne!(own, reduction_ptx(2));
    assert!(run_reduction(None, &own, 2).unwrap() == reduction_expected(2));
}

/// `ptx` with the text from `from` up to and including `to` replaced by `with`.
fn replace_span(ptx: &str, from: &str, to: &str, with: &str) -> String {
    let a = ptx.find(from).unwrap_or_else(|| panic!("{from}"));
    let b = a + ptx[a..].find(to).unwrap_or_else(|| panic!("{to}")) + to.len();
    format!("{}{with}{}", &ptx[..a], &ptx[b..])
}

#[test]
fn one_warp_may_acquire_for_its_cta_through_a_bar_sync() {
    // Only warp 0 of each CTA waits (leader: on red_full, peer: on red_empty); a named barrier of
    // the warpgroup then orders the other warps' reads and writes after its acquire.
    let one_waits = |ptx: &str, label: &str, bar: &str| {
        let from = format!("{label}:\n    mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p4, [{bar}], ");
        let to = format!("bra {label};\n");
        let a = ptx.find(&from).unwrap_or_else(|| panic!("{from}"));
        let b = a + ptx[a..].find(&to).unwrap_or_else(|| panic!("{to}")) + to.len();
        let wait = ptx[a..b].replace(label, &format!("{label}_wait"));
        format!(
            "{}{label}:\n    setp.ge.u32 %p6, %r1, 32;\n    @%p6 bra {label}_sync;\n{wait}{label}_sync:\n    bar.sync 2, 128;\n{}",
            &ptx[..a],
            &ptx[b..]
        )
    };
    for size in [2, 4] {
        let ptx = one_waits(&one_waits(&reduction_ptx(size), "$L_leader", "%r6"), "$L_empty", "%r7");
        for seed in [None, Some(1), Some(2)] {
            let got =
                run_reduction(seed, &ptx, size).unwrap_or_else(|e| panic!("cluster of {size}, seed {seed:?}: {e}"));
            assert!(got == reduction_expected(size), "cluster of {size}, seed {seed:?}");
        }
        // Without the named barrier, the other warps acquired nothing.
        let ptx = ptx.replace("    bar.sync 2, 128;\n", "");
        for seed in [None, Some(1)] {
            let e = run_reduction(seed, &ptx, size).unwrap_err();
            assert!(unordered_remote_access(&e), "cluster of {size}, seed {seed:?}: {e}");
        }
    }
}

#[test]
fn cluster_barriers_order_remote_reads_too() {
    // The mbarrier handshake replaced by two cluster barriers per round: the peers' writes, then
    // barrier A, the leader's reads, then barrier B before the next writes.
    let both = "    barrier.cluster.arrive;\n    barrier.cluster.wait;\n";
    for size in [2, 4] {
        let ptx = reduction_ptx(size);
        let ptx = replace_span(&ptx, "$L_empty:\n", "bra $L_empty;\n", "");
        let ptx = replace_span(
            &ptx,
            "    @%p1 bra $L_next;\n    mapa.shared::cluster.u32 %r15",
            "    bra $L_next;\n",
            &format!("{both}{both}    bra $L_next;\n"),
        );
        let ptx = replace_span(
            &ptx,
            "    mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p4, [%r6]",
            "bra $L_leader;\n",
            both,
        );
        let ptx = replace_span(
            &ptx,
            "    @%p1 bra $L_next;\n    mov.u32 %r11, 1;",
            "bra $L_release;\n",
            &format!("{both}    bra $L_next;\n"),
        );
        for seed in [None, Some(1), Some(2)] {
            let got =
                run_reduction(seed, &ptx, size).unwrap_or_else(|e| panic!("cluster of {size}, seed {seed:?}: {e}"));
            assert!(got == reduction_expected(size), "cluster of {size}, seed {seed:?}");
        }
        // A relaxed arrive releases nothing: the peers' writes are not ordered before the reads.
        let relaxed = ptx.replacen("    barrier.cluster.arrive;\n", "    barrier.cluster.arrive.relaxed;\n", 1);
        let e = run_reduction(None, &relaxed, size).unwrap_err();
        assert!(e.contains("written after the last release of cluster CTA rank"), "cluster of {size}: {e}");
    }
}

/// Whether `e` reports a remote read and a peer's write of the same bytes in the wrong order,
/// from either side (which one depends on which of the two the interleaving runs first).
fn unordered_remote_access(e: &str) -> bool {
    e.contains("written after the last release of cluster CTA rank")
        || e.contains("read through ld.shared::cluster, and this warp has acquired no release of rank")
}

#[test]
fn a_missing_or_wrong_handshake_fails_the_launch() {
    for size in [2, 4] {
        handshake_errors(size);
    }
}

/// The handshake variants of `a_missing_or_wrong_handshake_fails_the_launch` in clusters of
/// `size` CTAs.
fn handshake_errors(size: u32) {
    let good = reduction_ptx(size);
    let variant = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        good.replace(from, to)
    };
    let leader_wait =
        "    mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p4, [%r6], %r9;\n    @!%p4 bra $L_leader;\n";
    let peer_wait =
        "    mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p4, [%r7], %r14;\n    @!%p4 bra $L_empty;\n";
    let peer_arrive = "    @%p1 bra $L_next;\n    mapa.shared::cluster.u32 %r15, %r6, 0;\n    mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r15];\n    bra $L_next;\n";
    let cases: Vec<(&str, String)> = vec![
        // The leader reads without waiting on red_full.
        ("no wait", variant(leader_wait, "")),
        // It waits, but with cta scope: the peers' releases are not acquired.
        ("cta-scope wait", variant(leader_wait, &leader_wait.replace(".acquire.cluster", ""))),
        ("relaxed wait", variant(leader_wait, &leader_wait.replace(".acquire.cluster", ".relaxed.cluster"))),
        // The peer arrives before it writes its slot.
        (
            "arrive before the write",
            variant(peer_wait, &format!("{peer_wait}    @%p1 bra $L_w;\n    mapa.shared::cluster.u32 %r15, %r6, 0;\n    mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r15];\n$L_w:\n"))
                .replace(peer_arrive, "    bra $L_next;\n"),
        ),
        // The peer's arrive has cta scope: it releases nothing to the leader.
        ("cta-scope peer arrive", variant(peer_arrive, &peer_arrive.replace(".release.cluster", ".release.cta"))),
        // The peer writes the next round without waiting on red_empty.
        ("no red_empty wait", variant(peer_wait, "")),
    ];
    for (what, ptx) in &cases {
        for seed in [None, Some(1), Some(2), Some(3)] {
            let e = run_reduction(seed, ptx, size).unwrap_err();
            assert!(
                unordered_remote_access(&e) && e.contains("kernel red") && e.contains("PTX line"),
                "{what}, cluster of {size}, seed {seed:?}: {e}"
            );
        }
    }
    // The leader's release of red_empty has cta scope: the peer's next write is not ordered after
    // the leader's reads (here always seen from the writer's side).
    let ptx = variant(
        "mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r18];",
        "mbarrier.arrive.release.cta.shared::cluster.b64 _, [%r18];",
    );
    for seed in [None, Some(1), Some(2)] {
        let e = run_reduction(seed, &ptx, size).unwrap_err();
        assert!(
            e.contains("store to shared memory overwrites shared address"),
            "cluster of {size}, seed {seed:?}: {e}"
        );
        assert!(
            e.contains("which cluster CTA rank 0 (CTA (0, 0, 0)) read through ld.shared::cluster"),
            "cluster of {size}, seed {seed:?}: {e}"
        );
    }
}

#[test]
fn dsmem_misuse_is_reported() {
    let good = reduction_ptx(2);
    // A peer exits without the final cluster barrier while the leader may still read it.
    let ptx = good.replace(
        "$L_end:\n    barrier.cluster.arrive.release.aligned;\n    barrier.cluster.wait.acquire.aligned;\n",
        "$L_end:\n",
    );
    for seed in [None, Some(1), Some(2)] {
        let e = run_reduction(seed, &ptx, 2).unwrap_err();
        assert!(
            e.contains("ld.shared::cluster from cluster CTA rank 1, which has exited")
                || e.contains("may write into or read its shared memory"),
            "seed {seed:?}: {e}"
        );
    }
    // A read of a CTA rank past the cluster (an address made without `mapa`).
    let past = 2u32 << lowp_sim::ir::layout::CLUSTER_SHIFT;
    let ptx = good.replace(
        "mapa.shared::cluster.u32 %r16, %r5, %r11;",
        &format!("mapa.shared::cluster.u32 %r16, %r5, %r11;\n    add.u32 %r16, %r16, {past};"),
    );
    let e = run_reduction(None, &ptx, 2).unwrap_err();
    assert!(e.contains("ld.shared::cluster from CTA rank 2 of a cluster of 2 CTAs"), "{e}");
    // Misaligned and out-of-bounds peer reads (the leader reads the peers only).
    let good = good.replace("mov.u32 %r11, 0;\n$L_peer:", "mov.u32 %r11, 1;\n$L_peer:");
    let ptx = good.replace(
        "ld.shared::cluster.v4.f32 {%f5, %f6, %f7, %f8}, [%r16];",
        "ld.shared::cluster.v4.f32 {%f5, %f6, %f7, %f8}, [%r16+8];",
    );
    let e = run_reduction(None, &ptx, 2).unwrap_err();
    assert!(e.contains("misaligned 16-byte access at shared address 0x408 of cluster CTA rank 1"), "{e}");
    let ptx = good.replace(
        "ld.shared::cluster.v4.f32 {%f5, %f6, %f7, %f8}, [%r16];",
        "ld.shared::cluster.v4.f32 {%f5, %f6, %f7, %f8}, [%r16+4096];",
    );
    let e = run_reduction(None, &ptx, 2).unwrap_err();
    assert!(e.contains("out-of-bounds shared::cluster access of 16 bytes"), "{e}");
    // Stores into another CTA's shared memory are not modelled, and say so.
    let ptx = good.replace(
        "    st.shared.v4.f32 [%r5], {%f1, %f2, %f3, %f4};\n    bar.sync 1, 128;",
        "    mapa.shared::cluster.u32 %r19, %r5, 0;\n    st.shared::cluster.v4.f32 [%r19], {%f1, %f2, %f3, %f4};\n    bar.sync 1, 128;",
    );
    let e = run_reduction(None, &ptx, 2).unwrap_err();
    assert!(e.contains("not stores or atomics into it"), "{e}");
}

/// The hardware probe of distributed shared memory (`sim/tests/probe_kernels/dsmem.ptx`, run on
/// a GPU by `sim/examples/goldens.rs`): rank 0's bounded wait completes, and it reads through
/// `ld.shared::cluster` what rank 1 wrote (scalar, `.v2` and `.v4` forms) and, through its own
/// rank's address, what it wrote itself.
#[test]
fn dsmem_probe_reads_what_the_peer_released() {
    let p = probe_kernels::dsmem(&mut probe_kernels::SimGpu::new()).unwrap();
    let w = words(&p.output);
    assert_eq!(w[..4], [0, 2, 1, 0], "rank, cluster size, wait flag");
    let word = probe_kernels::dsmem_word;
    for t in 0..128u32 {
        let o = 4 + 12 * t as usize;
        let got = &w[o..o + 12];
        let peer = |b: u32| word(1, b / 4, b % 4);
        let want = [
            peer(4 * t),
            peer(4 * t + 1),
            peer(4 * t + 2),
            peer(4 * t + 3),
            peer(t + 256),
            0,
            peer(2 * t + 2),
            peer(2 * t + 3),
            word(0, t, 0),
            word(0, t, 1),
            word(0, t, 2),
            word(0, t, 3),
        ];
        assert_eq!(got, want, "thread {t}");
    }
}
