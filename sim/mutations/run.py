#!/usr/bin/env python3
"""Mutation tests of the Hopper GEMM (the tile configurations the tests' shapes choose), of
qk_norm_rope's warp-synchronous shared memory and of the microscaling quantizers' arithmetic and
scale layout: each deliberate bug below is applied, one at a time,
to a scratch copy of the repository; the kernels are rebuilt and the mutation's test files
(tests/gemm.rs unless `TEST_FILES_OF` names others) run on the simulator.
Every mutation must make a test fail. The report names, for each mutation, the tests that failed
and what caught it: wrong values (a test's own assertion), or one of the simulator's checks
(race, deadlock, register/operand hazard, memory).

    sim/mutations/run.py [--list] [NAME ...]     (sim/mutations/run.sh is the same)

The working tree is never modified: the files git sees (tracked, and untracked but not ignored)
are copied to target/mutations/tree, built in target/mutations/target. An unmutated baseline
runs first and must pass. A mutation no test catches in the simulator's fixed warp order is run
again with LOWP_SIM_SEED=1, 2, 3 (random interleaving, TMA completing late). Each test runs in
its own process, so a sticky launch error of one test cannot fail another. Exit status: 0 when
every mutation is caught, 1 when one survives (or hangs), 2 when the setup fails (baseline
failing, a mutation's text not found, a build error).

Each rebuild compiles both PTX modules through the nested nightly build: about a minute each.
"""

import os
import re
import shutil
import subprocess
import sys
import time

GEMM = "kernels-gpu/src/gemm.rs"
HOPPER = "kernels-gpu/src/prim/hopper.rs"
LAUNCH = "host/gemm/launch.rs"
ROPE = "kernels-gpu/src/qk_norm_rope.rs"
MX_MATH = "kernels-gpu/src/microscaling/math.rs"
MX = "kernels-gpu/src/microscaling/mod.rs"

# (name, what it breaks, [(file, text, replacement, occurrences)][, environment]): a mutation
# with an environment runs the tests with it (a configuration the heuristics never pick for the
# tests' shapes, forced); the unmutated tests must pass with it too.
FORCED_SPLIT_4 = {"LOWP_GEMM_BLOCK_M": "64", "LOWP_GEMM_BLOCK_N": "64", "LOWP_GEMM_SPLIT_K": "4"}

MUTATIONS = [
    (
        "swizzle-mode",
        "wgmma descriptors say 64-byte swizzle (2 << 62) for tiles TMA wrote with 128-byte swizzle",
        [(HOPPER, "(1u64 << 62)", "(2u64 << 62)", 1)],
    ),
    (
        "k-step-16B",
        "the descriptors advance 16 bytes (+1 in the descriptor) per k32/k16 step instead of 32 (+2)",
        [(GEMM, "+ 32 * k as u32)", "+ 16 * k as u32)", 2)],
    ),
    (
        "fragment-transpose",
        "the epilogue converts each 2x2 accumulator fragment with row and column swapped",
        [
            (
                GEMM,
                "f32x2_to_bf16x2(out[i], out[i + 1]),\n"
                "                        f32x2_to_bf16x2(out[i + 2], out[i + 3]),",
                "f32x2_to_bf16x2(out[i], out[i + 2]),\n"
                "                        f32x2_to_bf16x2(out[i + 1], out[i + 3]),",
                1,
            )
        ],
    ),
    (
        "empty-count-half",
        "the empty barriers expect half the arrivals of the math warps (4 of 8 with 128-row tiles, 2 of 4 with 64)",
        [(GEMM, "const EMPTY_ARRIVALS_PER_WG: u32 = 4;", "const EMPTY_ARRIVALS_PER_WG: u32 = 2;", 1)],
    ),
    (
        "producer-parity",
        "the producer waits on empty[s] with parity `phase` instead of `phase ^ 1`",
        [(GEMM, "mbarrier_wait(sm.empty(s), phase ^ 1);", "mbarrier_wait(sm.empty(s), phase);", 1)],
    ),
    (
        "expect-tx-short",
        "the producer expects the bytes of the A box only, not A + B",
        [
            (
                GEMM,
                "mbarrier_arrive_expect_tx(sm.full(s), tile_a_bytes + tile_b_bytes + scale_bytes);",
                "mbarrier_arrive_expect_tx(sm.full(s), tile_a_bytes + scale_bytes);",
                1,
            )
        ],
    ),
    (
        "expect-tx-no-scales",
        "the producer expects the A and B boxes' bytes but not the TMA-loaded activation scales'",
        [
            (
                GEMM,
                "mbarrier_arrive_expect_tx(sm.full(s), tile_a_bytes + tile_b_bytes + scale_bytes);",
                "mbarrier_arrive_expect_tx(sm.full(s), tile_a_bytes + tile_b_bytes);",
                1,
            )
        ],
    ),
    (
        "scale-box-next-kb",
        "the TMA loads the activation scales of k-block kb + 1 into the stage of k-block kb",
        [(GEMM, "tma_load_2d(sm.sa(s), tmap_sa, tile.m0 as i32, kb as i32, sm.full(s));", "tma_load_2d(sm.sa(s), tmap_sa, tile.m0 as i32, kb as i32 + 1, sm.full(s));", 1)],
    ),
    (
        "scale-row-offset",
        "the math threads read the TMA-loaded scale of the row 8 below their first row for both rows",
        [(GEMM, "ld_shared_f32(sm.sa(s) + 4 * row_in_tile)", "ld_shared_f32(sm.sa(s) + 4 * (row_in_tile + 8))", 1)],
    ),
    (
        "ring-no-flip",
        "the stage ring wraps without flipping its parity (the 5-, 6-, 8- and 13-stage rings' second lap waits on the first lap's phase)",
        [(GEMM, "            self.s = 0;\n            self.phase ^= 1;\n", "            self.s = 0;\n", 1)],
    ),
    (
        "small-a-tile-128",
        "the 64-row configuration lays out and expects A tiles of 128 rows (its TMA box is 64)",
        [(GEMM, "const TILE_A_BYTES: u32 = block_m(MATH_WGS) * BK;", "const TILE_A_BYTES: u32 = 128 * BK;", 1)],
    ),
    (
        "narrow-b-tile-128",
        "the 64-column configurations lay out and expect B tiles of 128 rows (their TMA box is 64)",
        [(GEMM, "const TILE_B_BYTES: u32 = BN * BK;", "const TILE_B_BYTES: u32 = 128 * BK;", 1)],
    ),
    (
        "narrow-scale-index",
        "a 64-column tile reads the weight scales of row n0/64 (its tile index) instead of n0/128, the 128-column block it lies in",
        [(GEMM, "(t.n0 / GEMM_SCALE_BLOCK_N) as u64 * p.sb_stride", "(t.n0 / BN) as u64 * p.sb_stride", 1)],
    ),
    (
        "straddle-one-scale",
        "a 112- or 192-column tile scales all its columns by the first weight-scale block's scale, also those in the next block",
        [
            (
                GEMM,
                "let (u0, u1) = if two_blocks && 8 * j as u32 >= split { (t0, t1) } else { (s0, s1) };",
                "let (u0, u1) = (s0, s1);",
                1,
            )
        ],
    ),
    (
        "straddle-read-past-n",
        "a 112- or 192-column tile reads the next weight-scale block also where it has no column of it inside N (past the scales)",
        [(GEMM, "(split, two_blocks && split < BN && t.n0 + split < p.n)", "(split, two_blocks && split < BN)", 1)],
    ),
    (
        "ws-bound",
        "a CTA with one k-block more than the weight-scale buffer holds keeps its scales there (the last k-block reads past its block's slots)",
        [(GEMM, "kb1 - kb0 <= WS_KB;", "kb1 - kb0 <= WS_KB + 1;", 1)],
    ),
    (
        "ws-no-barrier",
        "the math threads read the tile's weight scales from shared memory with no barrier after the other warps stored them",
        [
            (
                GEMM,
                "ws_next[2 + j]);\n                });\n                named_barrier_sync(1 + wg, 128);\n",
                "ws_next[2 + j]);\n                });\n",
                1,
            )
        ],
    ),
    (
        "ws-absolute-index",
        "a split-K CTA reads k-block kb's weight scale at slot kb instead of kb - kb0 (its slice's first is slot 0)",
        [(GEMM, "let at = sm.ws(wg) + 4 * (kb - kb0);", "let at = sm.ws(wg) + 4 * kb;", 1)],
    ),
    (
        "ws-upper-half",
        "the weight-scale buffer's second half (k-blocks 128 to 255 of a CTA) is stored over its first",
        [(GEMM, "st_shared_f32(ws + 4 * (t_ws + 128 * j as u32), ws_next[j]);", "st_shared_f32(ws + 4 * t_ws, ws_next[j]);", 1)],
    ),
    (
        "ws-stale",
        "the weight scales of a CTA's first tile are kept for its later tiles (the next tile's are not fetched)",
        [(GEMM, "            ws_next = fetch_ws(&next);\n", "", 1)],
    ),
    (
        "no-proxy-fence",
        "the epilogue's TMA stores are issued without fence.proxy.async after the stmatrix writes",
        [(GEMM, "            fence_proxy_async_shared();\n", "", 1)],
    ),
    (
        "grouped-tma-whole-tile",
        "grouped GEMMs TMA-store every warpgroup's 64 rows, also those past the end of its group",
        [(GEMM, "let by_tma = d_tma && (p.group_ends == 0 || m_wg + 64 <= tile.row_end);", "let by_tma = d_tma;", 1)],
    ),
    (
        "no-store-wait",
        "the epilogue buffer is written again before cp.async.bulk.wait_group.read retired the previous tile's TMA stores",
        [(GEMM, "            bulk_wait_group_read::<0>();\n", "", 1)],
    ),
    (
        "no-wgmma-wait",
        "no wgmma.wait_group before the FP8 accumulator is read (promotion, epilogue)",
        [(GEMM, "                    if FP8 {\n                        wgmma_wait::<0>();\n                    } else {", "                    if FP8 {\n                    } else {", 1)],
    ),
    (
        "bf16-release-in-flight",
        "bf16 frees each stage right after issuing its MMAs (empty[s] in the same k-block), while they may still read it",
        [
            (
                GEMM,
                "} else if kb > kb0 {\n                        // SAFETY: the previous k-block's MMAs, the last to read stage prev_s,\n"
                "                        // are complete (wait above).\n"
                "                        unsafe { free_stage::<CLUSTER>(sm.empty(prev_s)) };",
                "} else {\n                        unsafe { free_stage::<CLUSTER>(sm.empty(s)) };",
                1,
            ),
            (GEMM, "if lane == 0 && kb1 > kb0 {", "if lane == 0 && kb1 > kb0 && FP8 {", 1),
        ],
    ),
    (
        "cluster-empty-own-only",
        "clusters of 2: each math warp frees a stage on its own CTA's empty barrier only (the peer's producer, which multicasts into it, is never told)",
        [
            (
                GEMM,
                "unsafe { mbarrier_arrive_cluster(mapa_shared(empty, r)) };",
                "if r == cluster_ctarank() {\n                unsafe { mbarrier_arrive_cluster(mapa_shared(empty, r)) };\n            }",
                1,
            )
        ],
    ),
    (
        "cluster-empty-own-twice",
        "clusters of 2: each math warp arrives twice on its own CTA's empty barrier instead of once on each CTA's (the count is met while the peer may still read the stage)",
        [
            (
                GEMM,
                "unsafe { mbarrier_arrive_cluster(mapa_shared(empty, r)) };",
                "unsafe { mbarrier_arrive_cluster(mapa_shared(empty, cluster_ctarank() + 0 * r)) };",
                1,
            )
        ],
    ),
    (
        "cluster-no-exit-barrier",
        "clusters of 2: no cluster barrier before exit (a CTA may exit while its peer still arrives on its barriers)",
        [
            (GEMM, "        if CLUSTER * SPLIT > 1 {\n            // No copy into the peer", "        if false {\n            // No copy into the peer", 1),
            (GEMM, "    if CLUSTER * SPLIT > 1 {\n        // The peer's math no longer", "    if false {\n        // The peer's math no longer", 1),
        ],
    ),
    (
        "cluster-no-init-barrier",
        "clusters of 2: a CTA barrier instead of a cluster barrier after the mbarrier inits (the peer may multicast or arrive before they exist)",
        [(GEMM, "    if CLUSTER * SPLIT == 1 {\n        // SAFETY: every thread reaches it.", "    if true {\n        // SAFETY: every thread reaches it.", 1)],
    ),
    (
        "cluster-whole-box",
        "clusters of 2: each CTA multicasts the whole A box (A maps of 128-row boxes) instead of its half",
        [
            (LAUNCH, 'map("x", a, config.a_box_rows())', 'map("x", a, bm)', 1),
            (GEMM, "sm.a(s) + rank * half * BK,", "sm.a(s) + 0 * rank * half * BK,", 1),
            (GEMM, "(tile.m0 + rank * half) as i32,", "tile.m0 as i32,", 1),
        ],
    ),
    (
        "cluster-scale-unguarded",
        "clusters of 2: the second tile of the last cluster, past N (odd tile columns), reads its weight scales (row n0/128 ≥ ⌈N/128⌉)",
        [(GEMM, "if CLUSTER > 1 && t.n0 >= p.n {", "if CLUSTER > 1 && t.n0 >= p.n + p.n {", 1)],
    ),
    (
        "overlap-wait-2",
        "FP8 with one math warpgroup: each k-block waits for all but two MMA groups, so the previous k-block's accumulator is promoted (and its stage freed) while its MMAs may be in flight",
        [(GEMM, "                unsafe { wgmma_wait::<1>() };\n                // Only now may `prev` be read", "                unsafe { wgmma_wait::<2>() };\n                // Only now may `prev` be read", 1)],
    ),
    (
        "overlap-promote-current",
        "FP8 with one math warpgroup: each k-block promotes the accumulator whose MMAs it just issued instead of the previous one",
        [(GEMM, "                    promote(fin, prev, pp);", "                    promote(fin, cur, pp);", 1)],
    ),
    (
        "overlap-scales-current",
        "FP8 with one math warpgroup: the previous k-block's accumulator is promoted with this k-block's scales",
        [(GEMM, "                    promote(fin, prev, pp);", "                    promote(fin, prev, products);", 1)],
    ),
    (
        "overlap-drain-swapped",
        "FP8 with one math warpgroup: after an odd count of k-blocks the tile's last accumulator is taken from the other array",
        [(GEMM, "                drain(&mut acc, &mut fin, pending);", "                drain(&mut acc2, &mut fin, pending);", 1)],
    ),
    (
        "overlap-drain-no-wait",
        "FP8 with one math warpgroup: the tile's last accumulator is promoted (and its stage freed) without waiting for its MMAs",
        [(GEMM, "                // SAFETY: the whole warpgroup; retires the tile's last MMAs.\n                unsafe { wgmma_wait::<0>() };\n                fence_accumulators::<BN>(last);", "                fence_accumulators::<BN>(last);", 1)],
    ),
    (
        "overlap-free-before-wait",
        "FP8 with one math warpgroup: each k-block frees its own stage right after issuing its MMAs, while they may still read it",
        [
            (
                GEMM,
                "                issue(cur, s, false);\n",
                "                issue(cur, s, false);\n                if lane == 0 {\n                    unsafe { free_stage::<CLUSTER>(sm.empty(s)) };\n                }\n",
                1,
            ),
            (GEMM, "                        unsafe { free_stage::<CLUSTER>(sm.empty(ps)) };\n                    }\n                    promote(fin, prev, pp);", "                    }\n                    promote(fin, prev, pp);", 1),
            (GEMM, "                        // SAFETY: every MMA reading stage ps is complete (wait above).\n                        unsafe { free_stage::<CLUSTER>(sm.empty(ps)) };", "                        let _ = ps;", 1),
        ],
    ),
    (
        "split-no-reduce",
        "split-K: each CTA stores rank 0's sums of its columns without adding the other CTAs'",
        [(GEMM, "                    for r in 1..SPLIT {\n                        let x = ", "                    for r in 1..1 {\n                        let x = ", 1)],
    ),
    (
        "split-columns-rank0",
        "split-K: every CTA of a cluster adds and stores the columns of rank 0 (the others' columns are never stored)",
        [(GEMM, "let q = rank * (BN / 8 / SPLIT) + j;", "let q = j;", 1)],
    ),
    (
        "split-no-full-wait",
        "split-K: each CTA reads the other CTAs' sums without waiting on red_full (before they are written)",
        [(GEMM, "                mbarrier_wait_cluster(sm.red_full(wg), red_phase);\n", "", 1)],
    ),
    (
        "split-cta-scope-wait",
        "split-K: each CTA waits on red_full with CTA-scope acquire (mbarrier.try_wait without .acquire.cluster), which orders nothing the other CTAs wrote",
        [(GEMM, "mbarrier_wait_cluster(sm.red_full(wg), red_phase);", "mbarrier_wait(sm.red_full(wg), red_phase);", 1)],
    ),
    (
        "split-no-empty-wait",
        "split-K: each CTA writes the next tile's sums without waiting on red_empty (the others may still be reading the last)",
        [(GEMM, "                mbarrier_wait_cluster(sm.red_empty(wg), red_phase ^ 1);\n", "", 1)],
    ),
    (
        "split-empty-parity",
        "split-K: each CTA waits on red_empty with parity `red_phase` instead of `red_phase ^ 1` (the first tile waits for a release that never comes)",
        [(GEMM, "mbarrier_wait_cluster(sm.red_empty(wg), red_phase ^ 1);", "mbarrier_wait_cluster(sm.red_empty(wg), red_phase);", 1)],
    ),
    (
        "split-release-before-writes",
        "split-K: one thread arrives on the other CTAs' red_full before the warpgroup's barrier, so other warps' sums may still be unwritten",
        [
            (
                GEMM,
                "                named_barrier_sync(1 + wg, 128);\n                if t_wg == 0 {\n                    for r in 0..SPLIT {\n                        if r != rank {\n                            mbarrier_arrive_cluster(mapa_shared(sm.red_full(wg), r));\n                        }\n                    }\n                }",
                "                if t_wg == 0 {\n                    for r in 0..SPLIT {\n                        if r != rank {\n                            mbarrier_arrive_cluster(mapa_shared(sm.red_full(wg), r));\n                        }\n                    }\n                }\n                named_barrier_sync(1 + wg, 128);",
                1,
            )
        ],
    ),
    (
        "split-slices-overlap",
        "split-K: each CTA's slice of the k-blocks runs one k-block past its end (into the next CTA's; the last CTA's past K reads zeros)",
        [(GEMM, "(k_blocks * sched.rank / SPLIT, k_blocks * (sched.rank + 1) / SPLIT)", "(k_blocks * sched.rank / SPLIT, k_blocks * (sched.rank + 1) / SPLIT + 1)", 1)],
    ),
    (
        "split-cta-scope-empty-wait",
        "split-K: each CTA waits on red_empty with CTA-scope acquire, which orders nothing of the other CTAs' reads before its next writes",
        [(GEMM, "mbarrier_wait_cluster(sm.red_empty(wg), red_phase ^ 1);", "mbarrier_wait(sm.red_empty(wg), red_phase ^ 1);", 1)],
    ),
    (
        "split-release-before-reads",
        "split-K: each CTA frees the other CTAs' buffers (red_empty) before its warpgroup's barrier, while other warps may still be reading them",
        [
            (
                GEMM,
                "                named_barrier_sync(1 + wg, 128);\n                if t_wg == 0 {\n                    for r in 0..SPLIT {\n                        if r != rank {\n                            mbarrier_arrive_cluster(mapa_shared(sm.red_empty(wg), r));\n                        }\n                    }\n                }\n                sync_warp();",
                "                if t_wg == 0 {\n                    for r in 0..SPLIT {\n                        if r != rank {\n                            mbarrier_arrive_cluster(mapa_shared(sm.red_empty(wg), r));\n                        }\n                    }\n                }\n                sync_warp();\n                named_barrier_sync(1 + wg, 128);",
                1,
            ),
        ],
    ),
    (
        "split-full-count-one",
        "split-K: red_full completes after one other CTA's arrival (with 4 CTAs a CTA reads sums not yet written)",
        [(GEMM, "mbarrier_init(sm.red_full(wg), SPLIT - 1);", "mbarrier_init(sm.red_full(wg), 1);", 1)],
    ),
    (
        "split-empty-count-one",
        "split-K: red_empty completes after one other CTA's arrival (with 4 CTAs a CTA overwrites its sums while others may still read them); forced clusters of 4 walking several tiles",
        [(GEMM, "mbarrier_init(sm.red_empty(wg), SPLIT - 1);", "mbarrier_init(sm.red_empty(wg), 1);", 1)],
        FORCED_SPLIT_4,
    ),
    (
        "maps-wrong-param",
        "the GEMM entry points hand the TMA the address of their first parameter (GemmParams) as that of their tensor maps",
        [(GEMM, "let maps = kernel_param_address!($name, 1);", "let maps = kernel_param_address!($name, 0);", 1)],
    ),
    # The warp-synchronous shared memory of qk_norm_rope (NeoX partners through a warp's row):
    # caught by the simulator's order among the lanes of a warp (tests/qk_norm_rope.rs).
    (
        "rope-row-unsynced",
        "qk_norm_rope: a lane reads its NeoX partner from the warp's shared row with no bar.warp.sync after the other lanes wrote it",
        [(ROPE, "            // SAFETY: whole warp converged.\n            unsafe { sync_warp() };\n            let head", "            let head", 1)],
    ),
    (
        "rope-row-reused-unsynced",
        "qk_norm_rope: the next head's values overwrite the warp's shared row with no bar.warp.sync after the other lanes read it",
        [(ROPE, "            // SAFETY: whole warp converged.\n            unsafe { sync_warp() };\n        }", "        }", 1)],
    ),
    # The microscaling quantizers' arithmetic (the device side of `math.rs`, which the host tests
    # also check on their own) and scale layout: caught bit for bit by tests/microscaling.rs.
    (
        "mx-e2m1-range",
        "E2M1 rounding: values below 2 take the magic constant of [2, 4) (quantum 1 instead of 0.5)",
        [(MX_MATH, "let e = if e > 127 { e } else { 127 };", "let e = if e > 128 { e } else { 128 };", 1)],
    ),
    (
        "mx-nibble-order",
        "FP4 codes are packed from the bottom of the word (element 0 in the top nibble)",
        [(MX_MATH, "(out >> 4) | (nibble << 28)", "(out << 4) | (nibble & 0xf)", 1)],
    ),
    (
        "mx-div6-inf",
        "the block scale's division by 6 lets Inf - Inf through the correction step (an Inf amax gives a NaN scale)",
        [(MX_MATH, "let e = mul_add(-E2M1_MAX, q0, a).max(-f32::MAX);", "let e = mul_add(-E2M1_MAX, q0, a);", 1)],
    ),
    (
        "mx-recip-index",
        "the scale reciprocal's table index takes the significand's bits one place too high",
        [(MX_MATH, "entry(b >> 20)", "entry(b >> 21)", 1)],
    ),
    (
        "mx-recip-table-lanes",
        "the reciprocal table holds entry lane / 2 in each lane instead of lane % 8",
        [(MX, "math::recip_table_entry(lane_id())", "math::recip_table_entry(lane_id() >> 1)", 1)],
    ),
    (
        "mx-padding-columns",
        "the swizzled scales' padding columns are zeroed only where K / block is a multiple of 4 (where there are none)",
        [(MX, "if swizzled && nb % 4 != 0 {", "if swizzled && nb % 4 == 0 {", 1)],
    ),
]

# The test files a mutation runs (by name), default DEFAULT_TEST_FILES.
TEST_FILES_OF = {"rope-row-unsynced": ["qk_norm_rope"], "rope-row-reused-unsynced": ["qk_norm_rope"]}
TEST_FILES_OF.update({m[0]: ["microscaling"] for m in MUTATIONS if m[0].startswith("mx-")})
DEFAULT_TEST_FILES = ["gemm"]
SEEDS = ["1", "2", "3"]
TEST_TIMEOUT_S = 600

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORK = os.path.join(ROOT, "target", "mutations")
TREE = os.path.join(WORK, "tree")
TARGET = os.path.join(WORK, "target")
LOGS = os.path.join(WORK, "logs")


def log(msg):
    print(msg, flush=True)


def copy_tree():
    """The working tree as git sees it (tracked files present on disk, untracked not ignored)."""
    out = subprocess.run(
        ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout
    if os.path.exists(TREE):
        shutil.rmtree(TREE)
    for rel in out.decode().split("\0"):
        src = os.path.join(ROOT, rel)
        if not rel or not os.path.isfile(src):
            continue
        dst = os.path.join(TREE, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(src, dst)  # fresh mtimes: cargo rebuilds what changed since the last run


def pristine(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


# Files the last `write_sources` edited (restored by the next).
EDITED_BEFORE = set()


def write_sources(edits):
    """Writes every mutable file afresh (new mtime, so cargo and build.rs see a change), the
    edits applied. Returns an error message, or None."""
    # The kernel sources always (a fresh mtime rebuilds the PTX), other files when this mutation
    # or the one before edited them.
    touched = {rel for rel, _, _, _ in edits}
    files = {rel: pristine(rel) for rel in {GEMM, HOPPER, LAUNCH, ROPE} | touched | EDITED_BEFORE}
    EDITED_BEFORE.clear()
    EDITED_BEFORE.update(touched)
    for rel, old, new, count in edits:
        found = files[rel].count(old)
        if found != count:
            return f"{rel}: expected {count} occurrence(s) of {old!r}, found {found}"
        files[rel] = files[rel].replace(old, new)
    for rel, text in files.items():
        with open(os.path.join(TREE, rel), "w", encoding="utf-8") as f:
            f.write(text)
    return None


def env(extra=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("LOWP_")}
    e.update({"CARGO_TARGET_DIR": TARGET, "LOWP_DEVICE": "sim", "RUST_BACKTRACE": "0", "CARGO_TERM_COLOR": "never"})
    e.update(extra or {})
    return e


def cargo(args, extra_env=None, timeout=None):
    """Runs cargo in the scratch tree: (exit code or None on timeout, output)."""
    try:
        r = subprocess.run(["cargo", *args], cwd=TREE, env=env(extra_env), capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as t:
        out = (t.stdout or b"") + (t.stderr or b"")
        return None, out.decode(errors="replace") if isinstance(out, bytes) else out


def test_files(name):
    return TEST_FILES_OF.get(name, DEFAULT_TEST_FILES)


def build(files):
    args = ["test", "--no-run"] + [a for f in files for a in ("--test", f)]
    return cargo(args)


def list_tests(files):
    tests = []
    for f in files:
        code, out = cargo(["test", "--test", f, "--", "--list"])
        if code != 0:
            raise SystemExit(f"could not list the tests of {f}:\n{out[-3000:]}")
        tests += [(f, line[: -len(": test")]) for line in out.splitlines() if line.endswith(": test")]
    return tests


def classify(out):
    """What caught a failing test: the simulator's report if it printed one, else the test's."""
    reports = [line for line in out.splitlines() if line.startswith("lowp-sim: ")]
    for line in reports:
        if "deadlock" in line:
            return "deadlock report", line
    for line in reports:
        if "race" in line:
            return "race report", line
    for line in reports:
        if "in flight" in line:
            return "hazard report", line
    if reports:
        return "simulator check", reports[0]
    m = re.search(r"panicked at [^\n]*:\n(.*)\n(.*)", out)
    msg = "(no panic message)"
    if m:  # a message ending in ':' introduces its next line (the permutation probe's list)
        msg = m.group(1) + (" " + m.group(2).strip() if m.group(1).endswith(":") else "")
    if "sticky" in msg or "CUDA_ERROR" in msg:
        return "launch error", msg
    return "wrong values", msg


def run_tests(tests, extra_env, name):
    """Each test in its own process. Returns [(test, 'pass' | 'fail' | 'hang', kind, message)]."""
    results = []
    for f, t in tests:
        code, out = cargo(["test", "--test", f, "--", "--exact", t], extra_env, TEST_TIMEOUT_S)
        tag = "_".join(f"{k}={v}" for k, v in (extra_env or {}).items()) or "default"
        with open(os.path.join(LOGS, f"{name}.{tag}.{f}.{t}.log"), "w", encoding="utf-8") as lf:
            lf.write(out)
        if code is None:
            results.append((t, "hang", "timeout", f"no result in {TEST_TIMEOUT_S} s"))
        elif code == 0:
            results.append((t, "pass", "", ""))
        else:
            kind, msg = classify(out)
            results.append((t, "fail", kind, msg))
    return results


def short(msg, n=160):
    msg = msg.strip()
    return msg if len(msg) <= n else msg[: n - 1] + "…"


def main(argv):
    if "--list" in argv:
        for name, what, *_ in MUTATIONS:
            print(f"{name:20} {what}")
        return 0
    chosen = [m for m in MUTATIONS if not argv or m[0] in argv]
    unknown = set(argv) - {m[0] for m in MUTATIONS}
    if unknown:
        log(f"unknown mutation(s): {', '.join(sorted(unknown))} (--list names them)")
        return 2
    start = time.time()
    os.makedirs(LOGS, exist_ok=True)
    log(f"scratch copy: {TREE} (build: {TARGET}, logs: {LOGS})")
    copy_tree()

    log("baseline (no mutation): build and run")
    write_sources([])
    files = sorted({f for m in chosen for f in test_files(m[0])})
    code, out = build(files)
    if code != 0:
        log(f"baseline build failed:\n{out[-4000:]}")
        return 2
    tests_of = {f: list_tests([f]) for f in files}
    tests = [t for f in files for t in tests_of[f]]
    base = run_tests(tests, None, "baseline")
    for forced in {tuple(sorted(m[3].items())) for m in chosen if len(m) > 3}:
        files_forced = sorted({f for m in chosen if len(m) > 3 and tuple(sorted(m[3].items())) == forced for f in test_files(m[0])})
        base += run_tests([t for f in files_forced for t in tests_of[f]], dict(forced), "baseline")
    failing = [r for r in base if r[1] != "pass"]
    if failing:
        for t, status, kind, msg in failing:
            log(f"  baseline {t}: {status} ({kind}) {short(msg)}")
        log("the unmutated tests must pass first")
        return 2
    log(f"  {len(tests)} tests pass, with each mutation's environment too ({time.time() - start:.0f} s so far)")

    table = []
    for name, what, edits, *forced in chosen:
        forced = forced[0] if forced else {}
        t0 = time.time()
        log(f"\n== {name}: {what}")
        err = write_sources(edits)
        if err:
            log(f"  cannot apply: {err}")
            return 2
        mine = [t for f in test_files(name) for t in tests_of[f]]
        code, out = build(test_files(name))
        if code != 0:
            log(f"  build failed (the mutation must compile):\n{out[-4000:]}")
            return 2
        verdict = None
        for seed in [None] + SEEDS:
            extra = {**forced, **({"LOWP_SIM_SEED": seed} if seed else {})} or None
            config = "fixed order" if seed is None else f"LOWP_SIM_SEED={seed}"
            results = run_tests(mine, extra, name)
            for t, status, kind, msg in results:
                if status != "pass":
                    log(f"  [{config}] {t}: {status}: {kind}: {short(msg)}")
            caught = [r for r in results if r[1] == "fail"]
            hung = [r for r in results if r[1] == "hang"]
            if caught or hung:
                verdict = ("caught" if caught and not hung else "hang", config, caught, hung)
                break
            log(f"  [{config}] survived")
        if verdict is None:
            table.append((name, "SURVIVED", "", [], len(mine), time.time() - t0))
        else:
            table.append((name, verdict[0], verdict[1], verdict[2] + verdict[3], len(mine), time.time() - t0))

    # restore the unmutated sources in the scratch copy (its next build starts from them)
    write_sources([])
    width = max(len(name) for name, *_ in table) if table else 20
    log(f"\n{'mutation':{width}} {'result':9} {'run':14} caught by")
    bad = 0
    for name, verdict, config, rows, ran, secs in table:
        if verdict != "caught":
            bad += 1
        kinds = ", ".join(sorted({kind for _, _, kind, _ in rows})) or "-"
        log(f"{name:{width}} {verdict:9} {config:14} {kinds} ({len(rows)} of {ran} tests; {secs:.0f} s)")
        for t, _, kind, msg in rows:
            log(f"    {t}: {short(msg, 150)}")
    log(f"\n{len(table) - bad} of {len(table)} mutations caught, {bad} not; {time.time() - start:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
