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
//! - misuse is reported: an arrive on a CTA that has exited, a CTA exiting while a peer that
//!   arrived on its barriers has not passed a cluster barrier since, a multicast outside the
//!   cluster, a read of multicast data before the wait on its phase, cluster-barrier misuse, a
//!   deadlock across the CTAs of a cluster.

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
    assert!(e.contains("may write into its shared memory"), "{e}");
    // Nobody waits: the peer's arrive may come after this CTA exited.
    let e = g.launch(&remote_arrive_ptx(false, false), "remote", 2, 32, 64, &[out]).unwrap_err();
    assert!(e.contains("which has exited") || e.contains("may write into its shared memory"), "{e}");
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
