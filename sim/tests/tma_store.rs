//! The simulator's model of the Hopper epilogue forms (`sim/src/exec/hopper.rs`): `stmatrix`,
//! the TMA tensor store (`cp.async.bulk.tensor.2d.global.shared::cta.bulk_group`) with its bulk
//! async-groups (`cp.async.bulk.commit_group`, `cp.async.bulk.wait_group[.read]`), and the
//! async-proxy fence (`fence.proxy.async.shared::cta`), against the PTX ISA:
//!
//! - `stmatrix.m8n8.xN[.trans]`: lanes `8q .. 8q + 8` give the row addresses of matrix `q`; lane
//!   `l` holds row `l / 4`, columns `2 (l % 4)` and `+ 1` of each matrix (the fragment of
//!   `ldmatrix` and `mma.m16n8k16`'s accumulator, CUTLASS cute `SM90_U32x4_STSM_N`), `.trans`
//!   the transpose;
//! - the TMA store reads the box from shared memory through the map's swizzle (cute
//!   `Swizzle<B,4,3>`, as the load writes it) and writes only the elements inside the tensor;
//! - misuse the PTX ISA leaves undefined is reported: a store that reads shared bytes written
//!   through the generic proxy with no `fence.proxy.async` between, or with no barrier between
//!   another warp's write and the store; a write to shared bytes a store may still read (before
//!   `cp.async.bulk.wait_group.read` retired its group, or with no `commit_group` at all); a CTA
//!   exiting while a store may still read its shared memory.

mod probe_kernels;

use probe_kernels::cute;
use probe_kernels::{Gpu, MapSpec, SimGpu};

const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n.extern .shared .align 16 .b8 smem[];\n";

/// A one-warp kernel: register q of lane l holds the b16 pair (lo, hi) = (l << 8 | q << 4,
/// l << 8 | q << 4 | 1); lane l gives the address of row 8N - 1 - l (rows reversed, so the
/// addresses, not the lane order, place them); the rows are copied out.
fn stmatrix_ptx(num: u32, trans: bool) -> String {
    let regs = ["%r10", "%r11", "%r12", "%r13"][..num as usize].join(", ");
    let t = if trans { ".trans" } else { "" };
    format!(
        r#"{HEADER}
.visible .entry stm(.param .u64 out)
{{
    .reg .pred %p<2>;
    .reg .b32 %r<20>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 8;
    shl.b32 %r3, %r2, 16;
    or.b32 %r4, %r2, %r3;
    or.b32 %r10, %r4, 65536;
    add.u32 %r11, %r10, 1048592;
    add.u32 %r12, %r10, 2097184;
    add.u32 %r13, %r10, 3145776;
    mov.u32 %r5, smem;
    sub.u32 %r6, {last}, %r1;
    and.b32 %r6, %r6, {last};
    shl.b32 %r6, %r6, 4;
    add.u32 %r7, %r5, %r6;
    stmatrix.sync.aligned.m8n8.x{num}{t}.shared.b16 [%r7], {{{regs}}};
    bar.warp.sync -1;
    setp.gt.u32 %p1, %r1, {last};
    @%p1 bra $L_end;
    shl.b32 %r8, %r1, 4;
    add.u32 %r9, %r5, %r8;
    ld.shared.v4.u32 {{%r14, %r15, %r16, %r17}}, [%r9];
    mul.wide.u32 %rd2, %r8, 1;
    add.s64 %rd3, %rd1, %rd2;
    st.global.v4.u32 [%rd3], {{%r14, %r15, %r16, %r17}};
$L_end:
    ret;
}}
"#,
        last = 8 * num - 1
    )
}

#[test]
fn stmatrix_places_the_fragment_rows_at_the_lanes_addresses() {
    for num in [1u32, 2, 4] {
        for trans in [false, true] {
            let mut g = SimGpu::new();
            let bytes = 16 * 8 * num as usize;
            let out = g.upload(&vec![0; bytes]).unwrap();
            g.launch(&stmatrix_ptx(num, trans), "stm", 1, 32, 1024, &[out]).unwrap();
            let got = g.download(out, bytes).unwrap();
            for l in 0..8 * num as usize {
                let (q, r) = (l / 8, l % 8);
                let idx = 8 * num as usize - 1 - l;
                for c in 0..8 {
                    let (fr, fc) = if trans { (c, r) } else { (r, c) };
                    let want = (((4 * fr + fc / 2) << 8) | (q << 4) | (fc % 2)) as u16;
                    let o = 16 * idx + 2 * c;
                    let v = u16::from_le_bytes([got[o], got[o + 1]]);
                    assert_eq!(v, want, "x{num} trans {trans}: matrix {q} row {r} column {c}");
                }
            }
        }
    }
}

#[test]
fn stmatrix_rejects_a_misaligned_row_and_a_partial_warp() {
    let ptx =
        stmatrix_ptx(4, false).replace("add.u32 %r7, %r5, %r6;", "add.u32 %r7, %r5, %r6;\n    add.u32 %r7, %r7, 8;");
    let mut g = SimGpu::new();
    let out = g.upload(&[0; 512]).unwrap();
    let e = g.launch(&ptx, "stm", 1, 32, 1024, &[out]).unwrap_err();
    assert!(e.contains("misaligned"), "{e}");
    let ptx = stmatrix_ptx(4, false).replace("stmatrix", "setp.lt.u32 %p1, %r1, 16;\n    @%p1 stmatrix");
    let e = g.launch(&ptx, "stm", 1, 32, 1024, &[out]).unwrap_err();
    // Lanes 16..32 never reach it: the warp-collective instruction waits for them forever.
    assert!(e.contains("deadlock") && e.contains("stmatrix"), "{e}");
}

/// How the TMA-store kernel synchronizes and retires its stores.
#[derive(Clone, Copy)]
struct Store {
    /// Every thread fences after its writes (CUTLASS's `tma_store_fence`).
    writer_fence: bool,
    barrier: bool,
    /// The issuing thread fences after the barrier.
    issuer_fence: bool,
    issuer: u32,
    /// Commit after every store (else once after all of them, or never).
    commit_each: bool,
    commit: bool,
    /// `wait_group.read n` after issuing.
    wait_read: Option<u32>,
    /// Then the issuing thread writes the shared word at this offset.
    overwrite: Option<u32>,
    /// `wait_group 0` before exiting.
    final_wait: bool,
}

const GOOD: Store = Store {
    writer_fence: false,
    barrier: true,
    issuer_fence: true,
    issuer: 32,
    commit_each: false,
    commit: true,
    wait_read: Some(0),
    overwrite: Some(0),
    final_wait: true,
};

/// Two warps fill `nmaps × slot` bytes of shared memory (the word at offset o holds
/// o ^ 0x5a5a0000; thread t writes the words at 4t + 256k, so both warps write every box), then
/// one thread stores box i from offset i · slot with map i at the coordinates `table[i]`.
fn store_ptx(s: Store) -> String {
    let on = |b: bool, t: &str| if b { t.to_string() } else { String::new() };
    format!(
        r#"{HEADER}
.visible .entry store(.param .u64 maps, .param .u64 table, .param .u64 nmaps, .param .u64 slot)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<32>;
    .reg .b64 %rd<16>;
    ld.param.u64 %rd1, [maps];
    ld.param.u64 %rd2, [table];
    ld.param.u64 %rd3, [nmaps];
    ld.param.u64 %rd4, [slot];
    cvta.to.global.u64 %rd2, %rd2;
    cvt.u32.u64 %r20, %rd3;
    cvt.u32.u64 %r21, %rd4;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, smem;
    add.s32 %r2, %r2, 1023;
    and.b32 %r2, %r2, -1024;
    mul.lo.u32 %r22, %r20, %r21;
    shl.b32 %r5, %r1, 2;
$L_fill:
    setp.ge.u32 %p1, %r5, %r22;
    @%p1 bra $L_filled;
    add.s32 %r6, %r2, %r5;
    xor.b32 %r7, %r5, 1515847680;
    st.shared.u32 [%r6], %r7;
    add.s32 %r5, %r5, 256;
    bra.uni $L_fill;
$L_filled:
    {writer_fence}
    {barrier}
    setp.ne.u32 %p2, %r1, {issuer};
    @%p2 bra $L_done;
    {issuer_fence}
    mov.u32 %r8, 0;
$L_issue:
    setp.ge.u32 %p3, %r8, %r20;
    @%p3 bra $L_issued;
    mul.wide.u32 %rd7, %r8, 128;
    add.s64 %rd8, %rd1, %rd7;
    mul.wide.u32 %rd9, %r8, 8;
    add.s64 %rd10, %rd2, %rd9;
    ld.global.v2.u32 {{%r11, %r12}}, [%rd10];
    mul.lo.u32 %r9, %r8, %r21;
    add.s32 %r10, %r2, %r9;
    cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%rd8, {{%r11, %r12}}], [%r10];
    {commit_each}
    add.u32 %r8, %r8, 1;
    bra.uni $L_issue;
$L_issued:
    {commit}
    {wait_read}
    {overwrite}
    {final_wait}
$L_done:
    ret;
}}
"#,
        writer_fence = on(s.writer_fence, "fence.proxy.async.shared::cta;"),
        barrier = on(s.barrier, "bar.sync 0;"),
        issuer = s.issuer,
        issuer_fence = on(s.issuer_fence, "fence.proxy.async.shared::cta;"),
        commit_each = on(s.commit_each, "cp.async.bulk.commit_group;"),
        commit = on(s.commit && !s.commit_each, "cp.async.bulk.commit_group;"),
        wait_read = s.wait_read.map_or(String::new(), |n| format!("cp.async.bulk.wait_group.read {n};")),
        overwrite =
            s.overwrite.map_or(String::new(), |o| format!("add.s32 %r13, %r2, {o};\n    st.shared.u32 [%r13], %r1;")),
        final_wait = on(s.final_wait, "cp.async.bulk.wait_group 0;"),
    )
}

/// The tensors, maps and copies of the store test are the hardware probe's
/// (`probe_kernels::tma_store`): u16, 100 × 50, rows 208 bytes apart, each first filled with 0xEE
/// bytes, one per copy; every swizzle mode and a box narrower than its swizzle span, 16 rows;
/// boxes inside, over the right and bottom edges, over the left and top.
const DIMS: [u64; 2] = probe_kernels::TMA_DIMS;
const ROW_STRIDE: u64 = probe_kernels::TMA_ROW_STRIDE;
const MAPS: [(u32, u32); 5] = probe_kernels::TMA_MAPS;
const BOX_ROWS: u32 = probe_kernels::TMA_BOX_ROWS;
const SLOT: u64 = probe_kernels::TMA_STORE_SLOT;

fn copies() -> Vec<(usize, i32, i32)> {
    probe_kernels::tma_store_copies()
}

/// Runs the store kernel over every copy; returns each copy's tensor, or the launch's error.
fn run_store(s: Store, copies: &[(usize, i32, i32)]) -> Result<Vec<Vec<u8>>, String> {
    let mut g = SimGpu::new();
    let mut tensors = Vec::new();
    let mut maps = Vec::new();
    for &(i, ..) in copies {
        let t = g.upload(&vec![0xee; (ROW_STRIDE * DIMS[1]) as usize])?;
        let (swizzle, w) = MAPS[i];
        let spec =
            MapSpec { data_type: 1, addr: t, dims: DIMS, row_stride: ROW_STRIDE, box_dims: [w, BOX_ROWS], swizzle };
        maps.extend_from_slice(&g.tensor_map(&spec)?);
        tensors.push(t);
    }
    let maps_ptr = g.upload(&maps)?;
    let table: Vec<u8> = copies.iter().flat_map(|&(_, x, y)| [x as u32, y as u32]).flat_map(u32::to_le_bytes).collect();
    let table_ptr = g.upload(&table)?;
    let n = copies.len() as u64;
    g.launch(&store_ptx(s), "store", 1, 64, (n * SLOT) as u32 + 1024, &[maps_ptr, table_ptr, n, SLOT])?;
    tensors.iter().map(|&t| g.download(t, (ROW_STRIDE * DIMS[1]) as usize)).collect()
}

#[test]
fn tma_store_writes_the_swizzled_box_and_clips_it_at_the_tensor() {
    let copies = copies();
    let got = run_store(GOOD, &copies).unwrap();
    for (c, (&(i, x0, y0), t)) in copies.iter().zip(&got).enumerate() {
        let (swizzle, w) = MAPS[i];
        let b = [0, 1, 2, 3][swizzle as usize];
        let mut want = vec![0xeeu8; t.len()];
        for by in 0..BOX_ROWS as i64 {
            for bx in 0..w as i64 {
                let (x, y) = (x0 as i64 + bx, y0 as i64 + by);
                if !(0..DIMS[0] as i64).contains(&x) || !(0..DIMS[1] as i64).contains(&y) {
                    continue;
                }
                for j in 0..2u64 {
                    let logical = by as u64 * 2 * w as u64 + 2 * bx as u64 + j;
                    let o = c as u64 * SLOT + cute::swizzle(b, 4, 3, logical);
                    let word = (o & !3) as u32 ^ 0x5a5a_0000;
                    want[(y as u64 * ROW_STRIDE + 2 * x as u64 + j) as usize] = (word >> (8 * (o % 4))) as u8;
                }
            }
        }
        assert!(t == &want, "copy {c} (swizzle {swizzle}, box {w} × {BOX_ROWS} at ({x0}, {y0})) differs");
    }
}

#[test]
fn tma_store_orders_generic_writes_by_a_proxy_fence_on_either_side_of_the_barrier() {
    let one = &copies()[3..4];
    // CUTLASS: every writer fences, then the barrier; the issuer does not fence.
    run_store(Store { writer_fence: true, issuer_fence: false, ..GOOD }, one).unwrap();
    // The issuing thread fences after the barrier (issuer in the first warp, too).
    run_store(Store { issuer: 0, ..GOOD }, one).unwrap();
    let e = run_store(Store { issuer_fence: false, ..GOOD }, one).unwrap_err();
    assert!(e.contains("no fence.proxy.async.shared::cta orders that write"), "{e}");
    // A fence before the barrier by the issuer covers only its own warp's writes.
    let e = run_store(Store { issuer_fence: false, writer_fence: false, ..GOOD }, one).unwrap_err();
    assert!(e.contains("fence.proxy.async"), "{e}");
    let e = run_store(Store { writer_fence: true, barrier: false, ..GOOD }, one).unwrap_err();
    assert!(e.contains("no barrier between that write and this store"), "{e}");
}

#[test]
fn tma_store_source_stays_in_use_until_wait_group_read_retires_it() {
    let two = &copies()[3..5];
    // Overwriting once wait_group.read 0 retired every group is fine.
    run_store(GOOD, two).unwrap();
    let e = run_store(Store { wait_read: None, ..GOOD }, two).unwrap_err();
    assert!(e.contains("which a TMA store") && e.contains("still reads"), "{e}");
    let e = run_store(Store { commit: false, ..GOOD }, two).unwrap_err();
    assert!(e.contains("cp.async.bulk.commit_group is missing"), "{e}");
    // Two groups, the newest left pending: the first box's bytes are free, the second's not.
    let first = Store { commit_each: true, wait_read: Some(1), ..GOOD };
    run_store(Store { overwrite: Some(0), ..first }, two).unwrap();
    let e = run_store(Store { overwrite: Some(SLOT as u32), ..first }, two).unwrap_err();
    assert!(e.contains("still reads"), "{e}");
    // The CTA may not exit while a store may still read its shared memory.
    let e = run_store(Store { wait_read: None, overwrite: None, final_wait: false, ..GOOD }, two).unwrap_err();
    assert!(e.contains("the CTA exits while this TMA store"), "{e}");
    // wait_group (without .read) retires the reads as well.
    run_store(Store { wait_read: None, overwrite: None, ..GOOD }, two).unwrap();
}

/// The hardware probe of `stmatrix` (`sim/tests/probe_kernels/epilogue.ptx`, run on a GPU by
/// `sim/examples/goldens.rs`): every form at once, each slot's rows where the lanes' addresses
/// put them, the bytes no form writes left as filled.
#[test]
fn stmatrix_probe_places_every_form_as_the_fragment_layout_says() {
    let p = probe_kernels::stmatrix(&mut SimGpu::new()).unwrap();
    for (slot, &(num, trans)) in probe_kernels::STMATRIX_FORMS.iter().enumerate() {
        let base = slot * probe_kernels::STMATRIX_SLOT;
        let rows = 8 * num as usize;
        for row in 0..probe_kernels::STMATRIX_SLOT / 16 {
            for c in 0..8 {
                let o = base + 16 * row + 2 * c;
                let got = u16::from_le_bytes([p.output[o], p.output[o + 1]]);
                let want = if row < rows {
                    // Row `row` of the slot: lane l = rows - 1 - row gave its address.
                    let l = rows - 1 - row;
                    probe_kernels::stmatrix_value(l / 8, l % 8, c, trans)
                } else {
                    0xeeee
                };
                assert_eq!(got, want, "x{num} trans {trans}: slot row {row} column {c}");
            }
        }
    }
}

/// The hardware probe of the TMA store: each copy's tensor holds the box's elements (read
/// through the map's swizzle, cute `Swizzle<B,4,3>`) where the box lies inside the tensor, and
/// its 0xEE fill everywhere else.
#[test]
fn tma_store_probe_writes_swizzled_boxes_clipped_at_the_tensor() {
    let p = probe_kernels::tma_store(&mut SimGpu::new()).unwrap();
    let tensor = (probe_kernels::TMA_ROW_STRIDE * probe_kernels::TMA_DIMS[1]) as usize;
    let copies = probe_kernels::tma_store_copies();
    assert_eq!(p.output.len(), copies.len() * tensor);
    for (c, &(i, x0, y0)) in copies.iter().enumerate() {
        let (swizzle, w) = probe_kernels::TMA_MAPS[i];
        let mut want = vec![0xeeu8; tensor];
        for by in 0..probe_kernels::TMA_BOX_ROWS as i64 {
            for bx in 0..w as i64 {
                let (x, y) = (x0 as i64 + bx, y0 as i64 + by);
                if !(0..probe_kernels::TMA_DIMS[0] as i64).contains(&x)
                    || !(0..probe_kernels::TMA_DIMS[1] as i64).contains(&y)
                {
                    continue;
                }
                for j in 0..2u64 {
                    let logical = by as u64 * 2 * w as u64 + 2 * bx as u64 + j;
                    let o = c as u64 * probe_kernels::TMA_STORE_SLOT + cute::swizzle(swizzle, 4, 3, logical);
                    let byte = (probe_kernels::tma_store_word(o) >> (8 * (o % 4))) as u8;
                    want[(y as u64 * probe_kernels::TMA_ROW_STRIDE + 2 * x as u64 + j) as usize] = byte;
                }
            }
        }
        assert!(
            p.output[c * tensor..(c + 1) * tensor] == want[..],
            "copy {c} (swizzle {swizzle}, box {w} at ({x0}, {y0}))"
        );
    }
}
