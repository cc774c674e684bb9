//! Each check of the simulator, proven by a kernel that breaks it on purpose — and the same kernel
//! done right, which must pass (so a check that fires on everything cannot hide here).

use lowp_sim::{Config, ErrorKind, LaunchConfig, Sim};

const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n.extern .shared .align 16 .b8 smem[];\n";

fn sim() -> Sim {
    Sim::new(Config::default())
}

fn cfg(grid: u32, block: u32, smem: u32) -> LaunchConfig {
    LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: smem }
}

fn params(ptrs: &[u64]) -> Vec<u8> {
    ptrs.iter().flat_map(|p| p.to_le_bytes()).collect()
}

/// Runs kernel `name` of `body` (a PTX fragment after the header).
fn run(sim: &Sim, body: &str, name: &str, c: LaunchConfig, p: &[u64]) -> Result<(), lowp_sim::SimError> {
    let m = sim.load_module(&format!("{HEADER}{body}")).expect("module loads");
    let k = sim.kernel(&m, name).expect("kernel exists");
    sim.launch(&k, &c, &params(p)).map(|_| ())
}

fn expect_err(r: Result<(), lowp_sim::SimError>, kind: ErrorKind, words: &[&str]) {
    let e = r.expect_err("the deliberate bug must be caught");
    assert_eq!(e.kind, kind, "{e}");
    for w in words {
        assert!(e.message.contains(w), "message lacks {w:?}: {e}");
    }
    // Every report names the kernel, the CTA, the thread and the PTX line.
    for w in ["kernel", "CTA", "thread", "PTX line"] {
        assert!(e.message.contains(w), "message lacks {w:?}: {e}");
    }
}

/// y[i] = x[i] + 1 for i < n, one thread per element; `CMP` is the tail test (`ge` right, `gt`
/// off by one).
fn add_one(cmp: &str) -> String {
    format!(
        r#"
.visible .entry add_one(.param .align 8 .b8 p[24])
{{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    ld.param.b64 %rd1, [p];
    ld.param.b64 %rd2, [p+8];
    ld.param.b64 %rd3, [p+16];
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    cvt.u64.u32 %rd4, %r4;
    setp.{cmp}.u64 %p1, %rd4, %rd3;
    @%p1 bra $L_done;
    shl.b64 %rd5, %rd4, 2;
    add.s64 %rd6, %rd1, %rd5;
    ld.global.b32 %r5, [%rd6];
    add.s32 %r6, %r5, 1;
    add.s64 %rd7, %rd2, %rd5;
    st.global.b32 [%rd7], %r6;
$L_done:
    ret;
}}
"#
    )
}

fn buffers(sim: &Sim, n: u64) -> (u64, u64) {
    let x = sim.alloc(4 * n).unwrap();
    let y = sim.alloc(4 * n).unwrap();
    let data: Vec<u8> = (0..n as u32).flat_map(|v| v.to_le_bytes()).collect();
    sim.write(x, &data).unwrap();
    (x, y)
}

#[test]
fn in_bounds_tail_runs_and_computes() {
    let s = sim();
    let n = 1000;
    let (x, y) = buffers(&s, n);
    run(&s, &add_one("ge"), "add_one", cfg(8, 128, 0), &[x, y, n]).unwrap();
    let mut out = vec![0u8; 4 * n as usize];
    s.read(y, &mut out).unwrap();
    for i in 0..n as usize {
        assert_eq!(u32::from_le_bytes(out[4 * i..4 * i + 4].try_into().unwrap()), i as u32 + 1);
    }
}

#[test]
fn off_by_one_tail_is_caught() {
    let s = sim();
    let n = 1000;
    let (x, y) = buffers(&s, n);
    expect_err(
        run(&s, &add_one("gt"), "add_one", cfg(8, 128, 0), &[x, y, n]),
        ErrorKind::IllegalAddress,
        &["past the end", "thread (104, 0, 0)", "CTA (7, 0, 0)"],
    );
}

#[test]
fn use_after_free_is_caught() {
    let s = sim();
    let n = 256;
    let (x, y) = buffers(&s, n);
    s.free(x).unwrap();
    expect_err(
        run(&s, &add_one("ge"), "add_one", cfg(2, 128, 0), &[x, y, n]),
        ErrorKind::IllegalAddress,
        &["use after free"],
    );
}

#[test]
fn read_of_unwritten_memory_is_caught() {
    let s = sim();
    let n = 256;
    let x = s.alloc(4 * n).unwrap(); // never written
    let y = s.alloc(4 * n).unwrap();
    expect_err(
        run(&s, &add_one("ge"), "add_one", cfg(2, 128, 0), &[x, y, n]),
        ErrorKind::LaunchFailed,
        &["never written"],
    );
}

/// Each thread loads 16 bytes at x + 16*i + `skew`.
fn vec_load(skew: u32) -> String {
    format!(
        r#"
.visible .entry vload(.param .align 8 .b8 p[16])
{{
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    ld.param.b64 %rd1, [p];
    ld.param.b64 %rd2, [p+8];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 16;
    add.s64 %rd4, %rd1, %rd3;
    add.s64 %rd4, %rd4, {skew};
    {{ .reg .u64 g; cvta.to.global.u64 g, %rd4; ld.global.nc.v4.u32 {{%r2, %r3, %r4, %r5}}, [g]; }}
    add.s64 %rd5, %rd2, %rd3;
    {{ .reg .u64 g; cvta.to.global.u64 g, %rd5; st.global.v4.u32 [g], {{%r2, %r3, %r4, %r5}}; }}
    ret;
}}
"#
    )
}

#[test]
fn misaligned_vector_access_is_caught() {
    let s = sim();
    let (x, y) = buffers(&s, 4 * 33);
    run(&s, &vec_load(0), "vload", cfg(1, 32, 0), &[x, y]).unwrap();
    expect_err(
        run(&s, &vec_load(4), "vload", cfg(1, 32, 0), &[x, y]),
        ErrorKind::MisalignedAddress,
        &["misaligned 16-byte"],
    );
}

/// Every thread writes its tid to smem[tid], then (with `sync`) a barrier, then reads its
/// neighbour's slot smem[(tid + 32) % n] and stores it.
fn neighbours(sync: bool, smem_index_mask: &str) -> String {
    let bar = if sync { "bar.sync 0;" } else { "" };
    format!(
        r#"
.visible .entry neighbours(.param .align 8 .b8 p[8])
{{
    .reg .b32 %r<12>;
    .reg .b64 %rd<8>;
    ld.param.b64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ntid.x;
    shl.b32 %r3, %r1, 2;
    mov.u32 %r4, smem;
    add.s32 %r5, %r4, %r3;
    st.volatile.shared.b32 [%r5], %r1;
    {bar}
    add.s32 %r6, %r1, 32;
    rem.u32 %r7, %r6, %r2;
    and.b32 %r7, %r7, {smem_index_mask};
    shl.b32 %r8, %r7, 2;
    add.s32 %r9, %r4, %r8;
    ld.volatile.shared.b32 %r10, [%r9];
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.b32 [%rd3], %r10;
    ret;
}}
"#
    )
}

#[test]
fn missing_bar_sync_is_caught() {
    let s = sim();
    let y = s.alloc(4 * 128).unwrap();
    run(&s, &neighbours(true, "-1"), "neighbours", cfg(1, 128, 512), &[y]).unwrap();
    let mut out = vec![0u8; 512];
    s.read(y, &mut out).unwrap();
    for t in 0..128usize {
        assert_eq!(u32::from_le_bytes(out[4 * t..4 * t + 4].try_into().unwrap()) as usize, (t + 32) % 128);
    }
    // Without the barrier, warp 3 reads what warp 0 has not written yet (never written) or, with
    // other interleavings, what another warp wrote since the last barrier: both are caught.
    let e = run(&s, &neighbours(false, "-1"), "neighbours", cfg(1, 128, 512), &[y]).expect_err("caught");
    assert!(e.message.contains("shared-memory race") || e.message.contains("never written"), "{e}");
}

#[test]
fn shared_access_past_the_dynamic_size_is_caught() {
    let s = sim();
    let y = s.alloc(4 * 128).unwrap();
    // 128 threads, 4 bytes each, but only 256 bytes of dynamic shared memory.
    expect_err(
        run(&s, &neighbours(true, "-1"), "neighbours", cfg(1, 128, 256), &[y]),
        ErrorKind::IllegalAddress,
        &["out-of-bounds shared access", "256 bytes"],
    );
}

/// Every lane sums x over a butterfly with member mask `mask`; lanes >= `active` exit first.
fn shuffle(mask: &str, active: u32) -> String {
    format!(
        r#"
.visible .entry shuffle(.param .align 8 .b8 p[8])
{{
    .reg .pred %p<2>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<8>;
    ld.param.b64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, {active};
    @%p1 bra $L_out;
    mov.b32 %r2, %r1;
    shfl.sync.bfly.b32 %r3, %r2, 16, 0x1f, {mask};
    add.s32 %r2, %r2, %r3;
    shfl.sync.bfly.b32 %r3, %r2, 8, 0x1f, {mask};
    add.s32 %r2, %r2, %r3;
    shfl.sync.bfly.b32 %r3, %r2, 4, 0x1f, {mask};
    add.s32 %r2, %r2, %r3;
    shfl.sync.bfly.b32 %r3, %r2, 2, 0x1f, {mask};
    add.s32 %r2, %r2, %r3;
    shfl.sync.bfly.b32 %r3, %r2, 1, 0x1f, {mask};
    add.s32 %r2, %r2, %r3;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.b32 [%rd3], %r2;
$L_out:
    ret;
}}
"#
    )
}

#[test]
fn shuffle_with_the_wrong_mask_is_caught() {
    let s = sim();
    let y = s.alloc(4 * 32).unwrap();
    run(&s, &shuffle("-1", 32), "shuffle", cfg(1, 32, 0), &[y]).unwrap();
    let mut out = vec![0u8; 128];
    s.read(y, &mut out).unwrap();
    for t in 0..32usize {
        assert_eq!(u32::from_le_bytes(out[4 * t..4 * t + 4].try_into().unwrap()), (0..32).sum::<u32>());
    }
    // A full mask while half the warp has exited.
    expect_err(
        run(&s, &shuffle("-1", 16), "shuffle", cfg(1, 32, 0), &[y]),
        ErrorKind::LaunchFailed,
        &["member mask", "exits without executing it"],
    );
    // A half mask whose butterfly partner (lane ^ 16) is outside it.
    expect_err(
        run(&s, &shuffle("0xffff", 16), "shuffle", cfg(1, 32, 0), &[y]),
        ErrorKind::LaunchFailed,
        &["not in the member mask"],
    );
}

/// CTA b writes x[b*64 + tid] for tid < 64 + `overlap`: with overlap, CTAs write each other's bytes.
fn writer(overlap: u32) -> String {
    format!(
        r#"
.visible .entry writer(.param .align 8 .b8 p[8])
{{
    .reg .pred %p<2>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<8>;
    ld.param.b64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, {};
    @%p1 bra $L_out;
    mov.u32 %r2, %ctaid.x;
    mad.lo.s32 %r3, %r2, 64, %r1;
    mul.wide.u32 %rd2, %r3, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.b32 [%rd3], %r3;
$L_out:
    ret;
}}
"#,
        64 + overlap
    )
}

#[test]
fn race_between_ctas_is_caught() {
    let s = sim();
    let y = s.alloc(4 * 64 * 5).unwrap();
    run(&s, &writer(0), "writer", cfg(4, 96, 0), &[y]).unwrap();
    expect_err(
        run(&s, &writer(1), "writer", cfg(4, 96, 0), &[y]),
        ErrorKind::LaunchFailed,
        &["race between CTAs", "CTA (0, 0, 0) also wrote it"],
    );
}

#[test]
fn trap_is_reported() {
    let s = sim();
    let body = ".visible .entry t(.param .align 8 .b8 p[8])\n{\n    trap;\n    ret;\n}\n";
    expect_err(run(&s, body, "t", cfg(1, 1, 0), &[0]), ErrorKind::LaunchFailed, &["trap"]);
}

#[test]
fn deadlock_is_reported() {
    let s = sim();
    // Half the threads wait at a barrier for 64 threads; the other half wait at another.
    let body = r#"
.visible .entry d(.param .align 8 .b8 p[8])
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 32;
    @%p1 bra $L_b;
    bar.sync 1, 64;
    ret;
$L_b:
    bar.sync 2, 64;
    ret;
}
"#;
    let e = run(&s, body, "d", cfg(1, 64, 0), &[0]).expect_err("deadlock");
    assert!(e.message.contains("deadlock") && e.message.contains("Barrier 1: 32 of 64"), "{e}");
}

#[test]
fn seeded_interleaving_still_computes_the_same() {
    let c = Config { seed: Some(7), ..Config::default() };
    let s = Sim::new(c);
    let y = s.alloc(4 * 128).unwrap();
    run(&s, &neighbours(true, "-1"), "neighbours", cfg(1, 128, 512), &[y]).unwrap();
    let mut out = vec![0u8; 512];
    s.read(y, &mut out).unwrap();
    for t in 0..128usize {
        assert_eq!(u32::from_le_bytes(out[4 * t..4 * t + 4].try_into().unwrap()) as usize, (t + 32) % 128);
    }
}

/// A producer warp hands a 128-byte buffer to two consumer warps through two mbarriers, twice:
/// FULL (32 arrivals: the producer's lanes after they wrote) and EMPTY (64: the consumers' lanes
/// after they read), no `bar.sync` after the start. Round r writes `lane + 100 (r + 1)`; the
/// consumers copy it to `out[64 r + 32 (warp - 1) + lane]`. `consumer_waits`: the consumers
/// wait on FULL before reading; `second_arrives`: warp 2 arrives on EMPTY (with `false`, EMPTY
/// counts 32 arrivals, warp 1's only); `read_after_arrive`: warp 1 reads the buffer once more
/// right after its arrive on EMPTY, before it waits for the next round.
fn handoff(consumer_waits: bool, second_arrives: bool, read_after_arrive: bool) -> String {
    let wait_full = |parity: u32| {
        if consumer_waits {
            format!(
                "$L_full{parity}:\n    mbarrier.try_wait.parity.shared::cta.b64 %p1, [%r20], {parity};\n    @!%p1 bra $L_full{parity};"
            )
        } else {
            String::new()
        }
    };
    let late_read = if read_after_arrive { "@%p3 ld.shared.u32 %r10, [%r5];" } else { "" };
    let (empty_count, arrive_empty) = if second_arrives {
        (64, "mbarrier.arrive.shared::cta.b64 _, [%r21];".to_string())
    } else {
        (32, "@%p3 mbarrier.arrive.shared::cta.b64 _, [%r21];".to_string())
    };
    format!(
        r#"
.visible .entry handoff(.param .u64 out)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<32>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    shr.u32 %r2, %r1, 5;
    and.b32 %r3, %r1, 31;
    mov.u32 %r20, smem;
    add.s32 %r21, %r20, 8;
    shl.b32 %r4, %r3, 2;
    add.s32 %r5, %r20, 64;
    add.s32 %r5, %r5, %r4;
    setp.ne.u32 %p2, %r1, 0;
    @%p2 bra $L_init_done;
    mov.u32 %r6, 32;
    mbarrier.init.shared::cta.b64 [%r20], %r6;
    mov.u32 %r6, {empty_count};
    mbarrier.init.shared::cta.b64 [%r21], %r6;
    fence.mbarrier_init.release.cluster;
$L_init_done:
    bar.sync 0;
    // %p3: warp 1 (the consumer that always arrives on EMPTY)
    setp.eq.u32 %p3, %r2, 1;
    setp.ne.u32 %p2, %r2, 0;
    @%p2 bra $L_consumer;
    add.s32 %r7, %r3, 100;
    st.shared.u32 [%r5], %r7;
    mbarrier.arrive.shared::cta.b64 _, [%r20];
$L_empty:
    mbarrier.try_wait.parity.shared::cta.b64 %p1, [%r21], 0;
    @!%p1 bra $L_empty;
    add.s32 %r7, %r3, 200;
    st.shared.u32 [%r5], %r7;
    mbarrier.arrive.shared::cta.b64 _, [%r20];
    ret;
$L_consumer:
    sub.u32 %r8, %r2, 1;
    shl.b32 %r8, %r8, 5;
    add.s32 %r8, %r8, %r3;
    mul.wide.u32 %rd2, %r8, 4;
    add.s64 %rd3, %rd1, %rd2;
    {wait0}
    ld.shared.u32 %r9, [%r5];
    st.global.u32 [%rd3], %r9;
    {arrive_empty}
    {late_read}
    {wait1}
    ld.shared.u32 %r9, [%r5];
    st.global.u32 [%rd3+256], %r9;
    ret;
}}
"#,
        wait0 = wait_full(0),
        wait1 = wait_full(1),
    )
}

#[test]
fn mbarrier_phases_order_shared_memory_between_warps() {
    // Right: every read follows the write it needs through FULL, every write follows the reads
    // of the round before through EMPTY (a write after two warps' reads included), in the fixed
    // order and in random interleavings.
    for seed in [None, Some(1), Some(2), Some(3)] {
        let s = Sim::new(Config { seed, ..Config::default() });
        let y = s.alloc(4 * 128).unwrap();
        run(&s, &handoff(true, true, false), "handoff", cfg(1, 96, 256), &[y])
            .unwrap_or_else(|e| panic!("seed {seed:?}: {e}"));
        let mut out = vec![0u8; 512];
        s.read(y, &mut out).unwrap();
        for i in 0..128usize {
            let want = (i % 32) as u32 + if i < 64 { 100 } else { 200 };
            assert_eq!(u32::from_le_bytes(out[4 * i..4 * i + 4].try_into().unwrap()), want, "seed {seed:?}, out[{i}]");
        }
    }
    // A consumer that reads without waiting on FULL reads what the producer wrote with nothing
    // ordering the two (or, in another order, reads bytes never written).
    let s = sim();
    let y = s.alloc(4 * 128).unwrap();
    let e = run(&s, &handoff(false, true, false), "handoff", cfg(1, 96, 256), &[y]).expect_err("caught");
    assert!(e.message.contains("shared-memory race") && e.message.contains("warp 0 wrote it"), "{e}");
    // The producer's second write waits only for warp 1's reads (EMPTY counts warp 1's
    // arrivals): warp 2's read of the first round is not ordered before it.
    let e = run(&s, &handoff(true, false, false), "handoff", cfg(1, 96, 256), &[y]).expect_err("caught");
    expect_err(Err(e), ErrorKind::LaunchFailed, &["shared-memory race", "this thread writes", "other warps read it"]);
    // A read after the reader's own arrive is not covered by that release: the producer's next
    // write races with it.
    let e = run(&s, &handoff(true, true, true), "handoff", cfg(1, 96, 256), &[y]).expect_err("caught");
    expect_err(Err(e), ErrorKind::LaunchFailed, &["shared-memory race", "this thread writes", "other warps read it"]);
    // `.relaxed` arrives and waits order nothing.
    let relaxed = handoff(true, true, false)
        .replace("mbarrier.arrive.shared::cta", "mbarrier.arrive.relaxed.cta.shared::cta")
        .replace("mbarrier.try_wait.parity.shared::cta", "mbarrier.try_wait.parity.relaxed.cta.shared::cta");
    let e = run(&s, &relaxed, "handoff", cfg(1, 96, 256), &[y]).expect_err("caught");
    expect_err(Err(e), ErrorKind::LaunchFailed, &["shared-memory race", "warp 0 wrote it"]);
}

/// Warp 0 writes 32 words of shared memory; warps 0 and 1 meet at `bar.sync 1, 64` (a barrier of
/// two of the three warps); then warp `reader` copies the words to `out`.
fn named_barrier(reader: u32) -> String {
    format!(
        r#"
.visible .entry named(.param .u64 out)
{{
    .reg .pred %p<2>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    shr.u32 %r2, %r1, 5;
    and.b32 %r3, %r1, 31;
    mov.u32 %r4, smem;
    shl.b32 %r5, %r3, 2;
    add.s32 %r4, %r4, %r5;
    setp.ne.u32 %p1, %r2, 0;
    @%p1 bra $L_no_write;
    add.s32 %r6, %r3, 7;
    st.shared.u32 [%r4], %r6;
$L_no_write:
    setp.gt.u32 %p1, %r2, 1;
    @%p1 bra $L_no_barrier;
    bar.sync 1, 64;
$L_no_barrier:
    setp.ne.u32 %p1, %r2, {reader};
    @%p1 bra $L_done;
    ld.shared.u32 %r7, [%r4];
    mul.wide.u32 %rd2, %r3, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r7;
$L_done:
    ret;
}}
"#
    )
}

#[test]
fn a_barrier_of_some_warps_orders_theirs_only() {
    let s = sim();
    let y = s.alloc(4 * 32).unwrap();
    // warp 1 met warp 0 at the barrier: its read is ordered after the write
    run(&s, &named_barrier(1), "named", cfg(1, 96, 128), &[y]).unwrap();
    let mut out = vec![0u8; 128];
    s.read(y, &mut out).unwrap();
    for l in 0..32usize {
        assert_eq!(u32::from_le_bytes(out[4 * l..4 * l + 4].try_into().unwrap()), l as u32 + 7);
    }
    // warp 2 took no part in it: its read races with warp 0's write
    let e = run(&s, &named_barrier(2), "named", cfg(1, 96, 128), &[y]).expect_err("caught");
    expect_err(Err(e), ErrorKind::LaunchFailed, &["shared-memory race", "warp 0 wrote it"]);
}

/// One warp: each lane writes its word of shared memory, reads its partner's (lane ^ `xor`), then
/// overwrites its own word with what it read, and stores that to `out`. `first` and `second` are
/// what orders the lanes after the write and after the read: "" nothing, "full" `bar.warp.sync`
/// of all lanes, "pairs" `bar.warp.sync` of the lanes with the same bit 1 (masks 0x33333333 and
/// 0xcccccccc), "shfl" a full-mask shuffle (which orders no memory), "named" `bar.sync 1, 64` in
/// warps 0 and 1 and `bar.warp.sync` in the others (a barrier of some warps orders its lanes).
/// Thread t uses word t, its partner t ^ `xor`.
fn lane_exchange(xor: u32, first: &str, second: &str) -> String {
    let order = |how: &str, n: u32| match how {
        "" => String::new(),
        "full" => "bar.warp.sync -1;".to_string(),
        "named" => format!(
            "setp.ge.u32 %p1, %r1, 64;\n    @%p1 bra $L_other{n};\n    bar.sync 1, 64;\n    bra.uni $L_join{n};\n\
             $L_other{n}:\n    bar.warp.sync -1;\n$L_join{n}:"
        ),
        "shfl" => "shfl.sync.bfly.b32 %r12, %r3, 1, 31, -1;".to_string(),
        "pairs" => format!(
            "and.b32 %r11, %r3, 2;\n    setp.ne.u32 %p1, %r11, 0;\n    @%p1 bra $L_hi{n};\n    \
             bar.warp.sync 0x33333333;\n    bra.uni $L_join{n};\n$L_hi{n}:\n    bar.warp.sync 0xcccccccc;\n$L_join{n}:"
        ),
        _ => unreachable!("{how}"),
    };
    let (first, second) = (order(first, 1), order(second, 2));
    format!(
        r#"
.visible .entry exchange(.param .u64 out)
{{
    .reg .pred %p<2>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mov.u32 %r3, %laneid;
    mov.u32 %r4, smem;
    shl.b32 %r5, %r1, 2;
    add.s32 %r6, %r4, %r5;
    add.s32 %r7, %r1, 7;
    st.shared.u32 [%r6], %r7;
    {first}
    xor.b32 %r8, %r1, {xor};
    shl.b32 %r8, %r8, 2;
    add.s32 %r8, %r4, %r8;
    ld.shared.u32 %r9, [%r8];
    {second}
    st.shared.u32 [%r6], %r9;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r9;
    ret;
}}
"#
    )
}

#[test]
fn lanes_of_a_warp_are_ordered_by_warp_barriers_only() {
    let s = sim();
    let y = s.alloc(4 * 96).unwrap();
    // Right: a barrier of both lanes after each access, whether of all lanes, of a pair that
    // holds both, or a barrier of some warps (3 warps, 2 of them at `bar.sync 1, 64`).
    for (xor, first, second, threads) in [
        (1, "full", "full", 32),
        (1, "pairs", "pairs", 32),
        (2, "full", "full", 32),
        (1, "pairs", "full", 32),
        (1, "named", "named", 96),
    ] {
        s.memset(y, 0xff, 4 * 96).unwrap();
        run(&s, &lane_exchange(xor, first, second), "exchange", cfg(1, threads, 4 * threads), &[y])
            .unwrap_or_else(|e| panic!("xor {xor}, {first:?} then {second:?}: {e}"));
        let mut out = vec![0u8; 4 * threads as usize];
        s.read(y, &mut out).unwrap();
        for t in 0..threads as usize {
            assert_eq!(u32::from_le_bytes(out[4 * t..4 * t + 4].try_into().unwrap()), (t ^ xor as usize) as u32 + 7);
        }
    }
    // The partner's word read with no barrier between (or a shuffle, which orders no memory, or
    // a barrier of pairs that do not hold the partner): a race with the partner's write.
    for (xor, first) in [(1, ""), (1, "shfl"), (2, "pairs")] {
        let e = run(&s, &lane_exchange(xor, first, "full"), "exchange", cfg(1, 32, 128), &[y]).expect_err("caught");
        expect_err(
            Err(e),
            ErrorKind::LaunchFailed,
            &["shared-memory race", "reads", "of this warp wrote it", "bar.warp.sync"],
        );
    }
    // The own word overwritten with no barrier after the partner's read of it.
    for second in ["", "shfl"] {
        let e = run(&s, &lane_exchange(1, "full", second), "exchange", cfg(1, 32, 128), &[y]).expect_err("caught");
        expect_err(Err(e), ErrorKind::LaunchFailed, &["shared-memory race", "writes", "of this warp read it"]);
    }
}

/// One warp, every lane storing to the same shared word: `value` is the stored register
/// (`%r1`: 5 in every lane, `%r3`: the lane's own index). Then, with `relay`, lane 1 stores 9
/// over it after a barrier: of every lane (`true`) or of lanes 0 and 1 (`false`), and a barrier
/// of every lane follows. Last, lane 0 stores the word to `out`.
fn same_word(value: &str, relay: Option<bool>) -> String {
    let relay = match relay {
        None => String::new(),
        Some(all) => {
            let (every, pair) = if all { ("bar.warp.sync -1;", "") } else { ("", "bar.warp.sync 3;") };
            format!(
                "{every}\n    setp.gt.u32 %p2, %r3, 1;\n    @%p2 bra $L_skip;\n    {pair}\n    \
                 setp.ne.u32 %p1, %r3, 1;\n    @%p1 bra $L_skip;\n    mov.u32 %r6, 9;\n    \
                 st.shared.u32 [%r4], %r6;\n$L_skip:\n    bar.warp.sync -1;"
            )
        }
    };
    format!(
        r#"
.visible .entry same_word(.param .u64 out)
{{
    .reg .pred %p<3>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, 5;
    mov.u32 %r3, %laneid;
    mov.u32 %r4, smem;
    st.shared.u32 [%r4], {value};
    {relay}
    setp.ne.u32 %p1, %r3, 0;
    @%p1 bra $L_done;
    ld.shared.u32 %r5, [%r4];
    st.global.u32 [%rd1], %r5;
$L_done:
    ret;
}}
"#
    )
}

#[test]
fn lanes_storing_the_same_value_do_not_race() {
    let s = sim();
    let y = s.alloc(4).unwrap();
    let word = |kernel: &str| {
        run(&s, kernel, "same_word", cfg(1, 32, 16), &[y]).unwrap_or_else(|e| panic!("{e}"));
        let mut out = [0u8; 4];
        s.read(y, &mut out).unwrap();
        u32::from_le_bytes(out)
    };
    // Whichever lane's store lands, the word is the same: no race (a common idiom), and lane 0
    // reads it back with no barrier after its own store.
    assert_eq!(word(&same_word("%r1", None)), 5);
    // A store of another value after a barrier of every lane.
    assert_eq!(word(&same_word("%r1", Some(true))), 9);
    // Each lane its own value: which one lands is not defined.
    let e = run(&s, &same_word("%r3", None), "same_word", cfg(1, 32, 16), &[y]).expect_err("caught");
    expect_err(Err(e), ErrorKind::LaunchFailed, &["shared-memory race", "writes", "lane 0 of this warp wrote it"]);
    // Another value stored after a barrier of lanes 0 and 1 only: lanes 2 to 31's stores of 5
    // may still land after it.
    let e = run(&s, &same_word("%r1", Some(false)), "same_word", cfg(1, 32, 16), &[y]).expect_err("caught");
    expect_err(Err(e), ErrorKind::LaunchFailed, &["shared-memory race", "writes", "other lanes of this warp wrote it"]);
}

/// One warp: lane 0 stores 42 to a shared word and arrives (`arrive`: the arrive's qualifiers,
/// `late`: lane 0 stores 43 after its arrive), lane 1 waits for the phase and reads the word into
/// `out` (the other lanes do nothing).
fn lane_handoff(arrive: &str, late: bool) -> String {
    let late = if late { "mov.u32 %r6, 43;\n    st.shared.u32 [%r5], %r6;" } else { "" };
    format!(
        r#"
.visible .entry lane_handoff(.param .u64 out)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<32>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r3, %laneid;
    mov.u32 %r20, smem;
    add.s32 %r5, %r20, 64;
    setp.ne.u32 %p2, %r3, 0;
    @%p2 bra $L_init_done;
    mov.u32 %r6, 1;
    mbarrier.init.shared::cta.b64 [%r20], %r6;
$L_init_done:
    bar.warp.sync -1;
    @%p2 bra $L_other;
    mov.u32 %r6, 42;
    st.shared.u32 [%r5], %r6;
    mbarrier.arrive{arrive}.shared::cta.b64 _, [%r20];
    {late}
    ret;
$L_other:
    setp.ne.u32 %p3, %r3, 1;
    @%p3 bra $L_done;
$L_wait:
    mbarrier.try_wait.parity.shared::cta.b64 %p1, [%r20], 0;
    @!%p1 bra $L_wait;
    ld.shared.u32 %r9, [%r5];
    st.global.u32 [%rd1], %r9;
$L_done:
    ret;
}}
"#
    )
}

#[test]
fn an_mbarrier_phase_orders_lanes_of_one_warp() {
    let s = sim();
    let y = s.alloc(4).unwrap();
    // Lane 0's store, then its arrive (a release); lane 1 sees the phase complete (an acquire)
    // and reads: ordered, as between warps.
    s.memset(y, 0, 4).unwrap();
    run(&s, &lane_handoff("", false), "lane_handoff", cfg(1, 32, 128), &[y]).unwrap();
    let mut out = [0u8; 4];
    s.read(y, &mut out).unwrap();
    assert_eq!(u32::from_le_bytes(out), 42);
    // A relaxed arrive orders nothing; a store after the arrive is not released by it.
    for (arrive, late) in [(".relaxed.cta", false), ("", true)] {
        let e = run(&s, &lane_handoff(arrive, late), "lane_handoff", cfg(1, 32, 128), &[y]).expect_err("caught");
        expect_err(Err(e), ErrorKind::LaunchFailed, &["shared-memory race", "lane 0 of this warp wrote it"]);
    }
}

/// One warp: every lane stores its word, arrives on an mbarrier of 32 arrivals, waits for the
/// phase and reads its partner's word (lane ^ `xor`) into `out`.
fn all_lanes_handoff(xor: u32) -> String {
    format!(
        r#"
.visible .entry all_lanes(.param .u64 out)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<32>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r3, %laneid;
    mov.u32 %r20, smem;
    setp.ne.u32 %p2, %r3, 0;
    @%p2 bra $L_init_done;
    mov.u32 %r6, 32;
    mbarrier.init.shared::cta.b64 [%r20], %r6;
$L_init_done:
    bar.warp.sync -1;
    shl.b32 %r4, %r3, 2;
    add.s32 %r5, %r20, 64;
    add.s32 %r7, %r5, %r4;
    add.s32 %r6, %r3, 7;
    st.shared.u32 [%r7], %r6;
    mbarrier.arrive.shared::cta.b64 _, [%r20];
$L_wait:
    mbarrier.try_wait.parity.shared::cta.b64 %p1, [%r20], 0;
    @!%p1 bra $L_wait;
    xor.b32 %r8, %r3, {xor};
    shl.b32 %r8, %r8, 2;
    add.s32 %r8, %r5, %r8;
    ld.shared.u32 %r9, [%r8];
    mul.wide.u32 %rd2, %r3, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r9;
    ret;
}}
"#
    )
}

#[test]
fn an_mbarrier_phase_that_every_lane_arrives_on_orders_them_all() {
    let s = sim();
    let y = s.alloc(4 * 32).unwrap();
    for xor in [1, 2, 16, 31] {
        s.memset(y, 0xff, 4 * 32).unwrap();
        run(&s, &all_lanes_handoff(xor), "all_lanes", cfg(1, 32, 256), &[y])
            .unwrap_or_else(|e| panic!("xor {xor}: {e}"));
        let mut out = vec![0u8; 4 * 32];
        s.read(y, &mut out).unwrap();
        for l in 0..32usize {
            assert_eq!(u32::from_le_bytes(out[4 * l..4 * l + 4].try_into().unwrap()), (l ^ xor as usize) as u32 + 7);
        }
    }
}
