//! Independent thread scheduling: when a warp's lanes diverge, every group of lanes makes
//! progress, even while another group of the same warp polls an mbarrier (`try_wait` or
//! `test_wait`) or waits at a `bar.sync`, as on Volta and later GPUs. The kernels place the code
//! of lane 0 after the code of the other lanes (as a compiler lays out a rarely taken branch), so
//! the other lanes, at the lower program counters, reach their wait first. Each runs in the
//! default order and under several seeds. A genuine deadlock of diverged lanes is still reported,
//! with the position of every group.

use lowp_sim::{Config, ErrorKind, LaunchConfig, Sim, SimError};

const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n.extern .shared .align 16 .b8 smem[];\n";

/// Rounds of the hand-off loops.
const ROUNDS: u32 = 5;

const SEEDS: [Option<u64>; 6] = [None, Some(1), Some(2), Some(3), Some(4), Some(5)];

/// The two forms of an mbarrier poll.
const POLLS: [&str; 2] = ["try_wait", "test_wait"];

/// Runs kernel `name` of `body` (PTX after the header) with `threads` threads in one CTA and one
/// parameter, a buffer of `words` u32 (zeroed); its contents afterwards.
fn run(seed: Option<u64>, body: &str, name: &str, threads: u32, words: usize) -> Result<Vec<u32>, SimError> {
    let sim = Sim::new(Config { seed, ..Config::default() });
    let m = sim.load_module(&format!("{HEADER}{body}")).expect("module loads");
    let k = sim.kernel(&m, name).expect("kernel exists");
    let out = sim.alloc(4 * words as u64).expect("alloc");
    sim.write(out, &vec![0; 4 * words]).expect("write");
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [threads, 1, 1], dynamic_smem: 64 };
    sim.launch(&k, &cfg, &out.to_le_bytes())?;
    let mut bytes = vec![0u8; 4 * words];
    sim.read(out, &mut bytes).expect("read");
    Ok(bytes.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect())
}

/// One warp. Lane 0 produces `ROUNDS` values (value k = 7k + 1 at `out[k]`), arriving on `full`
/// (count 1) after each and waiting on `empty` (count 31) before the next; lanes 1..31 wait on
/// `full` with `POLL`, add the value up and arrive on `empty`. Each thread writes its sum at
/// `out[32 + tid]`.
fn handoff(poll: &str) -> String {
    format!(
        r#"
.visible .entry handoff(.param .u64 out)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, smem;
    add.u32 %r3, %r2, 8;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L_init_done;
    mov.u32 %r4, 1;
    mbarrier.init.shared::cta.b64 [%r2], %r4;
    mov.u32 %r4, 31;
    mbarrier.init.shared::cta.b64 [%r3], %r4;
$L_init_done:
    bar.sync 0;
    mov.u32 %r5, 0;
    mov.u32 %r6, 0;
    @!%p1 bra $L_produce;
$L_consume:
    and.b32 %r7, %r5, 1;
$L_wait_full:
    mbarrier.{poll}.parity.shared::cta.b64 %p2, [%r2], %r7;
    @!%p2 bra $L_wait_full;
    mul.wide.u32 %rd2, %r5, 4;
    add.s64 %rd3, %rd1, %rd2;
    ld.global.u32 %r8, [%rd3];
    add.u32 %r6, %r6, %r8;
    mbarrier.arrive.shared::cta.b64 _, [%r3];
    add.u32 %r5, %r5, 1;
    setp.lt.u32 %p3, %r5, {ROUNDS};
    @%p3 bra $L_consume;
$L_done:
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3+128], %r6;
    ret;
$L_produce:
    setp.eq.u32 %p2, %r5, 0;
    @%p2 bra $L_fill;
    add.u32 %r7, %r5, 1;
    and.b32 %r7, %r7, 1;
$L_wait_empty:
    mbarrier.{poll}.parity.shared::cta.b64 %p2, [%r3], %r7;
    @!%p2 bra $L_wait_empty;
$L_fill:
    mul.lo.u32 %r8, %r5, 7;
    add.u32 %r8, %r8, 1;
    mul.wide.u32 %rd2, %r5, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r8;
    add.u32 %r6, %r6, %r8;
    mbarrier.arrive.shared::cta.b64 _, [%r2];
    add.u32 %r5, %r5, 1;
    setp.lt.u32 %p3, %r5, {ROUNDS};
    @%p3 bra $L_produce;
    bra $L_done;
}}
"#
    )
}

#[test]
fn lane_0_feeds_the_lanes_of_its_warp_that_poll_its_mbarrier() {
    let want: u32 = (0..ROUNDS).map(|k| 7 * k + 1).sum();
    for poll in POLLS {
        for seed in SEEDS {
            let out =
                run(seed, &handoff(poll), "handoff", 32, 64).unwrap_or_else(|e| panic!("{poll}, seed {seed:?}: {e}"));
            let values: Vec<u32> = (0..ROUNDS).map(|k| 7 * k + 1).collect();
            assert_eq!(out[..ROUNDS as usize], values[..], "{poll}, seed {seed:?}");
            assert_eq!(out[32..], [want; 32], "{poll}, seed {seed:?}: every thread's sum");
        }
    }
}

/// Two warps, mbarriers A and B (count 1 each), `ROUNDS` rounds. Warp 0: every lane waits on A
/// (phase k) and adds `out[k]` up, then lane 0 arrives on B. Warp 1: every lane waits on B (phase
/// k - 1, from round 1), then lane 0 alone writes `out[k] = 3k + 2` and arrives on A, in a block
/// after the loop; lanes 1..31 go straight to the next round's wait on B, which only that arrival
/// (through warp 0) lets complete. Each thread writes its sum (warp 0) or its rounds (warp 1) at
/// `out[32 + tid]`.
fn two_warps(poll: &str) -> String {
    format!(
        r#"
.visible .entry two_warps(.param .u64 out)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    and.b32 %r9, %r1, 31;
    shr.u32 %r10, %r1, 5;
    mov.u32 %r2, smem;
    add.u32 %r3, %r2, 8;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L_init_done;
    mov.u32 %r4, 1;
    mbarrier.init.shared::cta.b64 [%r2], %r4;
    mbarrier.init.shared::cta.b64 [%r3], %r4;
$L_init_done:
    bar.sync 0;
    mov.u32 %r5, 0;
    mov.u32 %r6, 0;
    setp.eq.u32 %p1, %r9, 0;
    setp.ne.u32 %p2, %r10, 0;
    @%p2 bra $L_w1;
$L_w0:
    and.b32 %r7, %r5, 1;
$L_wait_a:
    mbarrier.{poll}.parity.shared::cta.b64 %p3, [%r2], %r7;
    @!%p3 bra $L_wait_a;
    mul.wide.u32 %rd2, %r5, 4;
    add.s64 %rd3, %rd1, %rd2;
    ld.global.u32 %r8, [%rd3];
    add.u32 %r6, %r6, %r8;
    @%p1 mbarrier.arrive.shared::cta.b64 _, [%r3];
    add.u32 %r5, %r5, 1;
    setp.lt.u32 %p3, %r5, {ROUNDS};
    @%p3 bra $L_w0;
    bra $L_done;
$L_w1:
    setp.eq.u32 %p3, %r5, 0;
    @%p3 bra $L_w1_body;
    add.u32 %r7, %r5, 1;
    and.b32 %r7, %r7, 1;
$L_wait_b:
    mbarrier.{poll}.parity.shared::cta.b64 %p3, [%r3], %r7;
    @!%p3 bra $L_wait_b;
$L_w1_body:
    @%p1 bra $L_w1_arrive;
$L_w1_next:
    add.u32 %r5, %r5, 1;
    setp.lt.u32 %p3, %r5, {ROUNDS};
    @%p3 bra $L_w1;
    mov.u32 %r6, %r5;
$L_done:
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3+128], %r6;
    ret;
$L_w1_arrive:
    mul.lo.u32 %r8, %r5, 3;
    add.u32 %r8, %r8, 2;
    mul.wide.u32 %rd2, %r5, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r8;
    mbarrier.arrive.shared::cta.b64 _, [%r2];
    bra $L_w1_next;
}}
"#
    )
}

#[test]
fn lane_0_arrives_while_the_rest_of_its_warp_polls_the_next_rounds_barrier() {
    let sum: u32 = (0..ROUNDS).map(|k| 3 * k + 2).sum();
    for poll in POLLS {
        for seed in SEEDS {
            let out = run(seed, &two_warps(poll), "two_warps", 64, 96)
                .unwrap_or_else(|e| panic!("{poll}, seed {seed:?}: {e}"));
            let values: Vec<u32> = (0..ROUNDS).map(|k| 3 * k + 2).collect();
            assert_eq!(out[..ROUNDS as usize], values[..], "{poll}, seed {seed:?}");
            assert_eq!(out[32..64], [sum; 32], "{poll}, seed {seed:?}: warp 0's sums");
            assert_eq!(out[64..], [ROUNDS; 32], "{poll}, seed {seed:?}: warp 1's rounds");
        }
    }
}

/// Lanes 1..31 of warp 0 wait at `bar.sync 1, 64` while lane 0 writes `out[0] = 41` and arrives
/// on an mbarrier that warp 1 polls before it reaches the barrier; after it, every thread copies
/// `out[0]` to `out[32 + tid]`.
#[test]
fn lane_0_runs_while_the_rest_of_its_warp_waits_at_a_named_barrier() {
    let body = r#"
.visible .entry named(.param .u64 out)
{
    .reg .pred %p<4>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, smem;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L_init_done;
    mov.u32 %r4, 1;
    mbarrier.init.shared::cta.b64 [%r2], %r4;
$L_init_done:
    bar.sync 0;
    setp.ge.u32 %p2, %r1, 32;
    @%p2 bra $L_w1;
    @!%p1 bra $L_lane0;
$L_meet:
    bar.sync 1, 64;
    ld.global.u32 %r8, [%rd1];
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3+128], %r8;
    ret;
$L_w1:
    mov.u32 %r7, 0;
$L_wait:
    mbarrier.try_wait.parity.shared::cta.b64 %p3, [%r2], %r7;
    @!%p3 bra $L_wait;
    bra $L_meet;
$L_lane0:
    mov.u32 %r8, 41;
    st.global.u32 [%rd1], %r8;
    mbarrier.arrive.shared::cta.b64 _, [%r2];
    bar.sync 1, 64;
    bra $L_meet_after;
$L_meet_after:
    ld.global.u32 %r8, [%rd1];
    st.global.u32 [%rd1+128], %r8;
    ret;
}
"#;
    for seed in SEEDS {
        let out = run(seed, body, "named", 64, 96).unwrap_or_else(|e| panic!("seed {seed:?}: {e}"));
        assert_eq!(out[32..], [41; 64], "seed {seed:?}");
    }
}

/// Lane 0 polls mbarrier X (count 1), on which nobody arrives; lanes 1..31 either exit or poll
/// mbarrier Y, on which lane 0 would arrive after its wait. Both are deadlocks, reported with
/// every group's position.
fn stuck(others_exit: bool) -> String {
    let others = if others_exit {
        "    ret;\n".to_string()
    } else {
        "$L_wait_y:\n    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], 0;\n    @!%p2 bra $L_wait_y;\n    ret;\n"
            .to_string()
    };
    format!(
        r#"
.visible .entry stuck(.param .u64 out)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<16>;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, smem;
    add.u32 %r3, %r2, 8;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $L_init_done;
    mov.u32 %r4, 1;
    mbarrier.init.shared::cta.b64 [%r2], %r4;
    mbarrier.init.shared::cta.b64 [%r3], %r4;
$L_init_done:
    bar.sync 0;
    @!%p1 bra $L_lane0;
{others}$L_lane0:
$L_wait_x:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r2], 0;
    @!%p2 bra $L_wait_x;
    mbarrier.arrive.shared::cta.b64 _, [%r3];
    ret;
}}
"#
    )
}

#[test]
fn a_deadlock_of_diverged_lanes_is_still_reported() {
    for (others_exit, others) in
        [(true, "lanes 0xfffffffe have exited"), (false, "Warp 0 lanes 0xfffffffe poll mbarrier")]
    {
        for seed in SEEDS {
            let e = run(seed, &stuck(others_exit), "stuck", 32, 1).expect_err("a deadlock");
            assert_eq!(e.kind, ErrorKind::LaunchFailed, "{e}");
            for w in ["deadlock", "Warp 0 lanes 0x00000001 poll mbarrier", others, "try_wait"] {
                assert!(e.message.contains(w), "seed {seed:?}: message lacks {w:?}: {e}");
            }
        }
    }
}
