//! Hopper's asynchronous machinery: mbarriers, TMA tensor copies, warpgroup MMA (wgmma) and
//! register reallocation (`setmaxnreg`).
//!
//! - **mbarrier** (PTX ISA, "Parallel Synchronization and Communication Instructions: mbarrier"):
//!   a phase counter, pending arrivals and a transaction count. A phase completes when its
//!   pending arrivals reach zero and its transaction count is zero; the next phase then expects
//!   the init count again. `try_wait.parity P` is true once the phase of parity `P` has completed,
//!   i.e. while the current phase's parity differs from `P`. A warp whose `try_wait` fails parks
//!   until the barrier's phase changes.
//! - **Order through mbarriers** (and barriers of some of the warps). A `bar.sync` of the whole
//!   CTA starts a new epoch of the shared-memory race check: what came before it is ordered
//!   before what comes after. Finer orders are kept by warp, with the CTA's tick (`Run::tick`,
//!   counted at each shared-memory write, mbarrier arrive and barrier of some warps):
//!   `mbarrier.arrive` releases and a successful `try_wait` / `test_wait` acquires (their
//!   default `.release.cta` / `.acquire.cta`), so a handoff of shared memory between warps
//!   through an mbarrier (a producer's `st.shared` then arrive, a consumer's wait then
//!   `ld.shared`, and back) needs no `bar.sync`; a barrier whose thread count leaves some warps
//!   out (`bar.sync id, count`) orders its warps' accesses only, not the others'. An arrive by
//!   warp `w` records, for the barrier's phase, the tick as `w`'s release, with what `w` had
//!   acquired (`LocalRelease`, by warp); a warp that sees the phase complete takes those ticks
//!   into `WarpHopper::ordered`, and the warps of a barrier of some warps take each other's. An
//!   access that the race check would report (another warp's write, or for a write its reads, in
//!   the same epoch) is ordered when the warp acquired a release of the other warp later than
//!   that access: writes by their tick (`Shared::generic`), reads by the tick of each reader's
//!   last read (`Shared::rt`, and `Shared::readers` for bytes several warps read; kept only in
//!   kernels with an mbarrier or a barrier with a thread count). A TMA store may read another
//!   warp's generic write so ordered when the writer's `fence.proxy.async` lies between the write
//!   and that release, or the issuing warp's after it. `.relaxed` arrives and waits order
//!   nothing. The order is kept per warp (not per thread): one lane's arrive releases its whole
//!   warp's accesses. Between the lanes of one warp the order is kept per lane (`LaneOrder` in
//!   `exec`, `LaneRelease`): a lane's arrive releases its own accesses to the lanes of its warp
//!   that see the phase complete.
//! - **TMA** (`cp.async.bulk.tensor`): reads the box from global memory (out-of-bounds elements
//!   zero), writes it to shared memory in the map's swizzle layout, and completes the box's bytes
//!   on the mbarrier: at once, or (with a seed) at a later point the scheduler picks. Shared bytes
//!   a copy wrote may be read only by a warp that has seen the copy's mbarrier phase complete.
//!   The tensor map (of a load or a store) is read when the copy is issued, from the generic
//!   address its operand gives: in the kernel's parameters (the param window of `cvta.param`,
//!   `__grid_constant__` maps) or in global memory.
//! - **wgmma**: each warp of the warpgroup computes its 16 rows of D when it issues the
//!   instruction, with A and B read from shared memory through their descriptors at that moment;
//!   the results reach the registers at the `wgmma.wait_group` that retires their group. Until
//!   then the accumulator registers may not be touched, and the operand tiles may not be written.

use super::cluster::{Release, acquire_from, record_in};
use super::*;
use crate::tma::{Swizzle, TensorMap};

/// One mbarrier object (8 bytes of shared memory, kept here by slot = offset / 8).
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct Mbar {
    pub live: bool,
    pub expected: u32,
    pub pending: u32,
    pub tx: i64,
    /// Phases completed so far (the current phase's parity is `phase & 1`).
    pub phase: u32,
    /// Cluster-barrier phases completed when it was initialized (see `Run::check_remote_mbar`).
    pub init_cluster: u32,
    /// The warps whose lanes arrived on it with release semantics (`Run::release_lanes`), by bit.
    pub lane_warps: u32,
}

/// The CTA-scope releases on one mbarrier of the CTA, by warp.
pub(super) type LocalRelease = Release<MAX_WARPS>;

/// The releases of one warp's lanes on one mbarrier of the CTA, by lane (the record's `cta` holds
/// the warp): the number of each lane's last arrive (`LaneOrder::arrive`).
pub(super) type LaneRelease = Release<32>;

/// A TMA copy in flight (seeded scheduling completes these later).
pub(super) struct Copy {
    pub dst: usize,
    pub map: TensorMap,
    pub coords: [i64; 5],
    pub mbar: usize,
    /// The cluster CTA whose shared memory it lands in (the issuing CTA's own rank unless
    /// multicast).
    pub rank: u32,
    /// Warp and lane that issued it, and the instruction (for reports).
    pub wi: usize,
    pub lane: usize,
    pub pc: u32,
}

/// A TMA store whose read of shared memory is not yet known complete: it is, for the simulator,
/// until a `cp.async.bulk.wait_group[.read]` of the issuing thread retires its group.
pub(super) struct BulkRead {
    /// Warp and lane that issued it, and the instruction.
    pub wi: usize,
    pub lane: usize,
    pub pc: u32,
    /// Shared bytes it reads: `[lo, hi)` (offsets; the box through its swizzle).
    pub lo: usize,
    pub hi: usize,
    /// `Some(g)` once `cp.async.bulk.commit_group` put it in the thread's group `g`.
    pub group: Option<u32>,
}

/// A wgmma in flight for one warp: its destination registers and the values they get.
pub(super) struct WgOp {
    pub bank: usize,
    pub regs: Vec<Reg>,
    /// `vals[lane][i]`: f32 bits of `regs[i]` for each lane.
    pub vals: Vec<[u32; 128]>,
    /// Shared-memory byte ranges of its A and B operands (offsets into the CTA's shared memory).
    pub reads: [(usize, usize); 2],
    pub committed: bool,
    /// Commit-group number (valid once committed).
    pub group: u32,
    pub pc: u32,
}

/// A warp's Hopper state.
#[derive(Default)]
pub(super) struct WarpHopper {
    /// By lane: the mbarrier slot and phase of its last failed poll (`Warp::parked` says which
    /// lanes wait on theirs).
    pub poll: [(u32, u32); 32],
    /// Waiting for registers (`setmaxnreg.inc`).
    pub reg_wait: bool,
    /// Phases of each mbarrier this warp has seen complete: (slot, completed phases).
    pub seen: Vec<(usize, u32)>,
    /// By warp of the CTA: the newest tick (`Run::tick`) up to which that warp's shared-memory
    /// accesses are ordered before this warp's next ones by the mbarrier phases this warp waited
    /// on and the barriers of some warps it passed ("Order through mbarriers").
    pub ordered: [u64; MAX_WARPS],
    pub ops: Vec<WgOp>,
    pub groups_committed: u32,
    /// Registers (bank-absolute indices) of wgmma results in flight.
    pub inflight: Vec<u32>,
    /// wgmma instructions issued and a hash of their program counters (the warps of a warpgroup
    /// must issue the same sequence).
    pub issued: u64,
    pub issue_hash: u64,
    /// Registers per thread (`setmaxnreg`), and how many `setmaxnreg` it executed.
    pub maxnreg: u32,
    pub setmaxnreg_count: u32,
    /// This warp's newest `fence.proxy.async` covering shared memory as (tick, epoch), and the
    /// newest one of an earlier epoch than that.
    pub proxy_fence: Option<(u64, u32)>,
    pub proxy_fence_before: Option<(u64, u32)>,
    /// The tick of this warp's `fence.proxy.async` before its newest one (for writes ordered by
    /// ticks, below).
    pub proxy_fence_prev: u64,
    /// Bulk async-groups each lane has committed.
    pub bulk_groups: [u32; 32],
}

impl WarpHopper {
    pub fn reset(&mut self, regs: u32) {
        self.reg_wait = false;
        self.seen.clear();
        self.ordered = [0; MAX_WARPS];
        self.ops.clear();
        self.groups_committed = 0;
        self.inflight.clear();
        self.issued = 0;
        self.issue_hash = 0;
        self.maxnreg = regs;
        self.setmaxnreg_count = 0;
        self.proxy_fence = None;
        self.proxy_fence_before = None;
        self.proxy_fence_prev = 0;
        self.bulk_groups = [0; 32];
    }
    pub fn has_seen(&self, slot: usize, phase: u32) -> bool {
        self.seen.iter().any(|&(s, p)| s == slot && p > phase)
    }
    fn saw(&mut self, slot: usize, completed: u32) {
        match self.seen.iter_mut().find(|(s, _)| *s == slot) {
            Some(e) => e.1 = e.1.max(completed),
            None => self.seen.push((slot, completed)),
        }
    }
}

/// The physical shared address of logical address `a` under a swizzle mode (address bits [4, 4+b)
/// XOR bits [7, 7+b), b = 1, 2, 3 for 32, 64, 128 bytes: CUTLASS's `Swizzle<b, 4, 3>`).
pub fn swizzle_addr(a: u64, sw: Swizzle) -> u64 {
    let b = match sw {
        Swizzle::None => return a,
        Swizzle::B32 => 1,
        Swizzle::B64 => 2,
        _ => 3,
    };
    let mask = (1u64 << b) - 1;
    a ^ (((a >> 7) & mask) << 4)
}

/// A decoded shared-memory matrix descriptor (PTX ISA "Matrix Descriptor Format").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    pub start: u64,
    pub lbo: u64,
    pub sbo: u64,
    pub base_offset: u32,
    pub swizzle: Swizzle,
}

impl Desc {
    /// Bits 0-13: start address >> 4; 16-29: leading byte offset >> 4; 32-45: stride byte offset
    /// >> 4; 49-51: base offset; 62-63: swizzle (0 none, 1 128-byte, 2 64-byte, 3 32-byte).
    pub fn decode(d: u64) -> Desc {
        let f = |lo: u32, bits: u32| (d >> lo) & ((1 << bits) - 1);
        Desc {
            start: f(0, 14) << 4,
            lbo: f(16, 14) << 4,
            sbo: f(32, 14) << 4,
            base_offset: f(49, 3) as u32,
            swizzle: match f(62, 2) {
                0 => Swizzle::None,
                1 => Swizzle::B128,
                2 => Swizzle::B64,
                _ => Swizzle::B32,
            },
        }
    }

    /// Shared address of byte `byte` (< 16 · k-chunks) of row `row` of a K-major operand.
    pub fn k_major_addr(&self, row: u64, byte: u64) -> u64 {
        let logical = match self.swizzle {
            Swizzle::None => self.start + (row / 8) * self.sbo + (byte / 16) * self.lbo + (row % 8) * 16 + byte % 16,
            sw => self.start + (row / 8) * self.sbo + (row % 8) * sw.span_bytes() + byte,
        };
        swizzle_addr(logical, self.swizzle)
    }
}

#[inline]
fn elem_value(ty: Ty, bits: u64) -> f64 {
    match ty {
        Ty::Bf16 => f32::from_bits(num::bf16_to_f32(bits as u16)) as f64,
        Ty::F16 => f32::from_bits(num::f16_to_f32(bits as u16)) as f64,
        Ty::E4m3x2 => f32::from_bits(num::f16_to_f32(num::e4m3_to_f16(bits as u8))) as f64,
        Ty::E5m2x2 => f32::from_bits(num::f16_to_f32(num::e5m2_to_f16(bits as u8))) as f64,
        _ => f32::from_bits(bits as u32) as f64,
    }
}

/// Element bytes of a wgmma operand type (`.e4m3`/`.e5m2` are parsed as the x2 types).
fn operand_bytes(ty: Ty) -> u64 {
    match ty {
        Ty::E4m3x2 | Ty::E5m2x2 | Ty::U8 | Ty::S8 | Ty::B8 => 1,
        Ty::F32 => 4,
        _ => 2,
    }
}

/// `elem_value` of every byte, for the FP8 types (computed once).
fn byte_values(ty: Ty) -> Option<&'static [f64; 256]> {
    static E4M3: std::sync::OnceLock<[f64; 256]> = std::sync::OnceLock::new();
    static E5M2: std::sync::OnceLock<[f64; 256]> = std::sync::OnceLock::new();
    let table = match ty {
        Ty::E4m3x2 => &E4M3,
        Ty::E5m2x2 => &E5M2,
        _ => return None,
    };
    Some(table.get_or_init(|| std::array::from_fn(|b| elem_value(ty, b as u64))))
}

/// `dots[r][c] = Σ_k a[r][k] · bt[k][c]` for the 16 rows of `a` (`kb` values each) and the `n`
/// columns of `bt` (`kb` rows of `n`): each sum in f64, over k in order from 0, a product and
/// an add at a time (the same value whatever the vector width). With AVX where the CPU has it.
fn products(a: &[f64], bt: &[f64], kb: usize, n: usize, dots: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, checked just above.
        return unsafe { products_avx(a, bt, kb, n, dots) };
    }
    products_in(a, bt, kb, n, dots)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn products_avx(a: &[f64], bt: &[f64], kb: usize, n: usize, dots: &mut [f64]) {
    products_in(a, bt, kb, n, dots)
}

/// `products`, `COLS` sums at a time kept in registers.
#[inline(always)]
fn products_in(a: &[f64], bt: &[f64], kb: usize, n: usize, dots: &mut [f64]) {
    const COLS: usize = 16;
    for (r, out) in dots.chunks_exact_mut(n).enumerate() {
        let x = &a[r * kb..(r + 1) * kb];
        for c0 in (0..n).step_by(COLS) {
            let cols = COLS.min(n - c0);
            let mut acc = [0f64; COLS];
            for (kk, &xv) in x.iter().enumerate() {
                let y = &bt[kk * n + c0..kk * n + c0 + cols];
                if let Ok(y) = <&[f64; COLS]>::try_from(y) {
                    // A whole block (the usual case): fixed-size, so `acc` stays in registers.
                    for j in 0..COLS {
                        acc[j] += xv * y[j];
                    }
                } else {
                    for (s, &yv) in acc.iter_mut().zip(y) {
                        *s += xv * yv;
                    }
                }
            }
            out[c0..c0 + cols].copy_from_slice(&acc[..cols]);
        }
    }
}

/// One row of a K-major wgmma operand in shared memory: elements of `e` bytes of type `ty`.
struct OperandRow<'a> {
    desc: &'a Desc,
    row: u64,
    e: u64,
    ty: Ty,
}

impl Run<'_> {
    pub(super) fn mbar_slot(&self, wi: usize, lane: usize, pc: u32, a: u64) -> Result<usize> {
        let off = a.wrapping_sub(SHARED_BASE);
        if a % 8 != 0 || a < SHARED_BASE || off + 8 > self.shared.data.len() as u64 {
            return Err(self.fault(
                ErrorKind::IllegalAddress,
                wi,
                lane,
                pc,
                format!(
                    "mbarrier at shared address 0x{a:x}: not an 8-byte aligned address inside the launch's {} bytes of shared memory",
                    self.shared.data.len()
                ),
            ));
        }
        Ok((off / 8) as usize)
    }

    pub(super) fn mbar_addr(&self, wi: usize, bank: usize, addr: &Addr, lane: usize) -> u64 {
        let a = self.addrs(wi, bank, addr)[lane];
        // A generic address into the shared window works too.
        if (GENERIC_SHARED..GENERIC_SHARED + WINDOW).contains(&a) { a - GENERIC_SHARED } else { a }
    }

    fn live_mbar(&self, wi: usize, lane: usize, pc: u32, slot: usize) -> Result<()> {
        if !self.mbars[slot].live {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                lane,
                pc,
                format!(
                    "mbarrier at shared address 0x{:x} is used before mbarrier.init",
                    SHARED_BASE + 8 * slot as u64
                ),
            ));
        }
        Ok(())
    }

    /// Completes the current phase of `slot` if it is done.
    fn mbar_settle(&mut self, slot: usize) {
        self.mbar_version += 1;
        let b = &mut self.mbars[slot];
        if b.pending == 0 && b.tx == 0 {
            b.phase += 1;
            b.pending = b.expected;
        }
    }

    pub(super) fn mbar_init(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        addr: &Addr,
        count: &Src,
    ) -> Result<()> {
        let cv = self.fetch(wi, bank, count);
        for l in lanes(m) {
            let slot = self.mbar_slot(wi, l, pc, self.mbar_addr(wi, bank, addr, l))?;
            let n = cv[l] as u32;
            if n == 0 || n > (1 << 20) - 1 {
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    l,
                    pc,
                    format!("mbarrier.init count {n} is outside 1..2^20"),
                ));
            }
            self.mbars[slot] = Mbar {
                live: true,
                expected: n,
                pending: n,
                tx: 0,
                phase: 0,
                init_cluster: self.cluster.phase,
                lane_warps: 0,
            };
            self.shared.releases.retain(|r| r.slot != slot);
            self.shared.lane_releases.retain(|r| r.slot != slot);
            if !self.cluster.releases.is_empty() {
                self.forget_releases(slot);
            }
            self.mbar_version += 1;
            let o = slot * 8;
            self.shared.init[o..o + 8].fill(1);
        }
        Ok(())
    }

    /// `mbarrier.arrive` on barriers of the executing CTA (`(release, release_cluster)`: with
    /// release semantics at CTA scope, not `.relaxed`; and at cluster scope).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mbar_arrive(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        d: Option<Reg>,
        addr: &Addr,
        tx: Option<&Src>,
        (release, release_cluster): (bool, bool),
    ) -> Result<()> {
        let txv = tx.map(|t| self.fetch(wi, bank, t));
        let mut state = [0u64; 32];
        // one number for the lanes of this arrive (`LaneOrder::arrive`)
        let number = if release { self.warps[wi].lanes.arrive() } else { 0 };
        for l in lanes(m) {
            let t = txv.as_ref().map_or(0, |t| t[l] as u32);
            let a = self.mbar_addr(wi, bank, addr, l);
            let phase = self.arrive_one(wi, l, pc, a, t)?;
            if release {
                self.release_local(wi, ((a - SHARED_BASE) / 8) as usize, phase);
                self.release_lanes(wi, l, number, ((a - SHARED_BASE) / 8) as usize, phase);
            }
            state[l] = phase as u64;
            if release_cluster && self.cluster.size > 1 {
                let rel = self.release_ticks(wi);
                self.record_release(self.cluster.rank, ((a - SHARED_BASE) / 8) as usize, phase, &rel);
            }
        }
        if let Some(d) = d {
            self.put(wi, bank, d, m, &state);
        }
        Ok(())
    }

    /// One lane's arrive (with `tx` expected transaction bytes) on the barrier at shared address
    /// `a` of the CTA in `Run`'s fields; the phase it arrived in.
    pub(super) fn arrive_one(&mut self, wi: usize, l: usize, pc: u32, a: u64, tx: u32) -> Result<u32> {
        let slot = self.mbar_slot(wi, l, pc, a)?;
        self.live_mbar(wi, l, pc, slot)?;
        self.mbars[slot].tx += tx as i64;
        let b = &mut self.mbars[slot];
        if b.pending == 0 {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l,
                pc,
                format!(
                    "mbarrier.arrive on the barrier at shared address 0x{:x} with no pending arrival left in its phase",
                    SHARED_BASE + 8 * slot as u64
                ),
            ));
        }
        b.pending -= 1;
        let phase = b.phase;
        self.mbar_settle(slot);
        Ok(phase)
    }

    /// An arrive by warp `wi` in phase `phase` of this CTA's mbarrier at `slot`: a release at CTA
    /// scope (`mbarrier.arrive`'s default `.release.cta`) of the warp's shared-memory accesses so
    /// far and of what it acquired.
    pub(super) fn release_local(&mut self, wi: usize, slot: usize, phase: u32) {
        self.tick += 1;
        let mut rel = self.warps[wi].hop.ordered;
        rel[wi] = self.tick;
        record_in(&mut self.shared.releases, self.cluster.rank, slot, phase, &rel);
    }

    /// Warp `wi` saw this CTA's mbarrier at `slot` complete `completed` phases (a `try_wait` or
    /// `test_wait`, `.acquire.cta` by default): it acquires what their arrives released.
    fn acquire_local(&mut self, wi: usize, slot: usize, completed: u32) {
        let cta = self.cluster.rank;
        acquire_from(&mut self.shared.releases, cta, slot, completed, &mut self.warps[wi].hop.ordered);
    }

    /// Lane `l` of warp `wi` arrived (a release at CTA scope; `number`: the arrive's, from
    /// `LaneOrder::arrive`) in phase `phase` of this CTA's mbarrier at `slot`: its shared-memory
    /// accesses before it are ordered before those of the lanes of its warp that then see the
    /// phase complete (`LaneOrder::handoff`).
    pub(super) fn release_lanes(&mut self, wi: usize, l: usize, number: u32, slot: usize, phase: u32) {
        let mut rel = [0u64; 32];
        rel[l] = number as u64;
        record_in(&mut self.shared.lane_releases, wi as u32, slot, phase, &rel);
        self.mbars[slot].lane_warps |= 1 << wi;
    }

    /// Lane `l` of warp `wi` saw this CTA's mbarrier at `slot` complete `completed` phases (an
    /// acquire): it is ordered after the accesses its warp's other lanes released on them (one
    /// order per arrive: the lanes of an arrive share its number).
    fn acquire_lanes(&mut self, wi: usize, l: usize, slot: usize, completed: u32) {
        if self.mbars[slot].lane_warps & (1 << wi) == 0 {
            return;
        }
        let mut acq = [0u64; 32];
        acquire_from(&mut self.shared.lane_releases, wi as u32, slot, completed, &mut acq);
        // by arrive, oldest first (the newest orders end up first in the ring); this lane's own
        // arrives included, so that the lanes of one wait record one order
        // (`LaneOrder::handoff` merges them)
        let mut arrives: Vec<(u32, u32)> = Vec::new();
        for (a, &number) in acq.iter().enumerate().filter(|(_, n)| **n != 0) {
            match arrives.iter_mut().find(|(n, _)| *n == number as u32) {
                Some(x) => x.1 |= 1 << a,
                None => arrives.push((number as u32, 1 << a)),
            }
        }
        arrives.sort_unstable();
        for (number, from) in arrives {
            self.warps[wi].lanes.handoff(number, from, l);
        }
    }

    pub(super) fn mbar_expect_tx(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        addr: &Addr,
        tx: &Src,
    ) -> Result<()> {
        let txv = self.fetch(wi, bank, tx);
        for l in lanes(m) {
            let slot = self.mbar_slot(wi, l, pc, self.mbar_addr(wi, bank, addr, l))?;
            self.live_mbar(wi, l, pc, slot)?;
            self.mbars[slot].tx += txv[l] as u32 as i64;
            self.mbar_settle(slot);
        }
        Ok(())
    }

    /// `try_wait.parity` / `test_wait.parity`: sets `p`, and records the mbarrier and phase each
    /// failing lane polled (`WarpHopper::poll`); whether the lanes of `m` (some) all failed. With
    /// `acquire` (not `.relaxed`), a lane that sees its phase complete acquires for the warp the
    /// CTA-scope releases of the barrier's completed phases, and with `acquire_cluster` their
    /// cluster-scope ones.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mbar_try_wait(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        p: Reg,
        addr: &Addr,
        parity: &Src,
        (acquire, acquire_cluster): (bool, bool),
    ) -> Result<bool> {
        let pv = self.fetch(wi, bank, parity);
        let mut r = [0u64; 32];
        let mut any_done = false;
        for l in lanes(m) {
            let slot = self.mbar_slot(wi, l, pc, self.mbar_addr(wi, bank, addr, l))?;
            self.live_mbar(wi, l, pc, slot)?;
            let b = self.mbars[slot];
            let done = (b.phase & 1) as u64 != pv[l] & 1;
            if done {
                self.warps[wi].hop.saw(slot, b.phase);
                if acquire {
                    self.acquire_local(wi, slot, b.phase);
                    self.acquire_lanes(wi, l, slot, b.phase);
                }
                any_done = true;
                if acquire_cluster && !self.cluster.releases.is_empty() {
                    self.acquire_releases(wi, slot, b.phase);
                }
            } else {
                self.warps[wi].hop.poll[l] = (slot as u32, b.phase);
            }
            r[l] = done as u64;
        }
        self.put(wi, bank, p, m, &r);
        Ok(m != 0 && !any_done)
    }

    /// `cp.async.bulk.tensor`: one copy per active lane.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tma_issue(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        dst: &Addr,
        map: &Src,
        coords: &[Src],
        mbar: &Addr,
        multicast: Option<&Src>,
    ) -> Result<()> {
        let dv = self.addrs(wi, bank, dst);
        let mv = self.fetch(wi, bank, map);
        let cv: Vec<[u64; 32]> = coords.iter().map(|c| self.fetch(wi, bank, c)).collect();
        let masks = multicast.map(|x| self.fetch(wi, bank, x));
        for l in lanes(m) {
            // Destination and mbarrier: offsets in each destination CTA (multicast), or the
            // executing CTA's own.
            let (dst_rank, _) = crate::ir::layout::cluster_target(dv[l]);
            if dst_rank.is_some_and(|r| r != self.cluster.rank) {
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    l,
                    pc,
                    "TMA load into another CTA's shared memory without .multicast::cluster is not modelled".into(),
                ));
            }
            let ma = crate::ir::layout::cluster_target(self.mbar_addr(wi, bank, mbar, l)).1;
            let ranks = match &masks {
                Some(mk) => self.multicast_ranks(wi, l, pc, mk[l], ma)?,
                None => vec![self.cluster.rank],
            };
            let slot = self.mbar_slot(wi, l, pc, ma)?;
            self.live_mbar(wi, l, pc, slot)?;
            // The tensor map: 128 bytes of the parameters or of global memory (64-byte aligned).
            let tmap = self.read_tensor_map(wi, l, pc, mv[l], coords.len())?;
            let d = crate::ir::layout::cluster_target(shared_window_offset(dv[l])).1;
            self.check_box_in_shared(wi, l, pc, d, &tmap, "TMA destination")?;
            let c = lane_coords(&cv, l);
            for rank in ranks {
                let copy = Copy {
                    dst: (d - SHARED_BASE) as usize,
                    map: tmap.clone(),
                    coords: c,
                    mbar: slot,
                    rank,
                    wi,
                    lane: l,
                    pc,
                };
                if self.rng.is_some() {
                    self.copies_in_flight.push(copy);
                } else {
                    self.land(copy)?;
                }
            }
        }
        Ok(())
    }

    fn box_bytes(&self, t: &TensorMap) -> u64 {
        let b = BoxShape::of(t);
        b.rows * b.row_bytes
    }

    /// Lands a copy: reads the box, writes shared memory, completes its bytes on the mbarrier.
    pub(super) fn tma_complete(&mut self, c: Copy) -> Result<()> {
        let t = &c.map;
        let BoxShape { eb, rank, inner, rows, row_bytes } = BoxShape::of(t);
        if !self.mbars[c.mbar].live {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                c.wi,
                c.lane,
                c.pc,
                format!(
                    "TMA copy completes on the mbarrier at shared address 0x{:x}, which is not initialized",
                    SHARED_BASE + 8 * c.mbar as u64
                ),
            ));
        }
        let phase = self.mbars[c.mbar].phase;
        self.copy_tags.push((c.mbar, phase));
        let tag = self.copy_tags.len() as u32;
        let mut buf = vec![0u8; row_bytes as usize];
        for r in 0..rows {
            // Coordinates of this box row along dimensions 1..rank.
            let mut rem = r;
            let mut base = t.global_address as i128;
            let mut oob = false;
            for i in 1..rank {
                let k = rem % t.box_dim[i] as u64;
                rem /= t.box_dim[i] as u64;
                let coord = c.coords[i] + k as i64;
                if coord < 0 || coord as u64 >= t.global_dim[i] {
                    oob = true;
                }
                base += coord as i128 * t.global_strides[i] as i128;
            }
            // The elements inside the tensor, `[e_lo, e_hi)`, are contiguous in global memory:
            // read at once when they are all in one allocation and written; element by element
            // otherwise (which reports the first that is not). The others are zero.
            let (e_lo, e_hi) = if oob {
                (0, 0)
            } else {
                let lo = (-c.coords[0]).clamp(0, inner as i64) as u64;
                let hi = (t.global_dim[0] as i128 - c.coords[0] as i128).clamp(lo as i128, inner as i128) as u64;
                (lo, hi)
            };
            buf.fill(0);
            let lo_addr = base + (c.coords[0] + e_lo as i64) as i128 * eb as i128;
            let span = (e_hi - e_lo) * eb;
            let whole = span > 0 && lo_addr >= 0 && lo_addr <= u64::MAX as i128 && {
                let a = lo_addr as u64;
                match self.snap.find(a, span) {
                    Some(i) if self.snap.allocs[i].first_unwritten(a, span).is_none() => {
                        self.snap.allocs[i].read(a, &mut buf[(e_lo * eb) as usize..(e_hi * eb) as usize]);
                        self.stats.global_bytes_read += span;
                        true
                    }
                    _ => false,
                }
            };
            if !whole {
                for e in e_lo..e_hi {
                    let coord = c.coords[0] + e as i64;
                    let a = (base + coord as i128 * eb as i128) as u64;
                    let loc = self.locate(c.wi, c.lane, c.pc, Space::Global, a, eb as u32, 1)?;
                    let mut v = [0u8; 16];
                    self.read_bytes(c.wi, c.lane, c.pc, &loc, eb as usize, &mut v, true)?;
                    buf[(e * eb) as usize..((e + 1) * eb) as usize].copy_from_slice(&v[..eb as usize]);
                }
            }
            // Into shared memory through the swizzle, which keeps each 16-byte chunk of logical
            // addresses contiguous.
            let mut j = 0usize;
            while j < buf.len() {
                let logical = SHARED_BASE + (c.dst as u64) + r * row_bytes + j as u64;
                let len = ((16 - logical % 16) as usize).min(buf.len() - j);
                let o = (swizzle_addr(logical, t.swizzle) - SHARED_BASE) as usize;
                if self.wgmma_in_flight != 0
                    && let Some((k, op)) = (o..o + len).find_map(|k| self.wgmma_reading(k).map(|op| (k, op)))
                {
                    return Err(self.fault(
                        ErrorKind::LaunchFailed,
                        c.wi,
                        c.lane,
                        c.pc,
                        format!(
                            "TMA copy overwrites shared address 0x{:x}, an operand of a wgmma in flight (PTX line {}) that no wgmma.wait_group has retired",
                            SHARED_BASE + k as u64,
                            self.m.code[op as usize].line
                        ),
                    ));
                }
                if !self.bulk_reads.is_empty() {
                    self.check_bulk_overwrite(c.wi, c.lane, c.pc, o, len, "TMA copy")?;
                }
                if !self.shared.remote.is_empty() && self.cluster.landing_from.is_none() {
                    self.check_remote_overwrite(c.wi, c.lane, c.pc, o, len, "TMA copy")?;
                }
                self.shared.data[o..o + len].copy_from_slice(&buf[j..j + len]);
                self.shared.init[o..o + len].fill(1);
                self.shared.generic[o..o + len].fill(0);
                self.shared.w[o..o + len].fill(0);
                self.shared.r[o..o + len].fill(0);
                self.tma_tag[o..o + len].fill(tag);
                j += len;
            }
        }
        let bytes = rows * row_bytes;
        self.mbars[c.mbar].tx -= bytes as i64;
        self.mbar_settle(c.mbar);
        Ok(())
    }

    /// A TMA box of `t` at shared address `a` (`what`: the copy's side, for the message): aligned
    /// to 128 bytes (1024 with a swizzle) and inside the launch's shared memory.
    fn check_box_in_shared(&self, wi: usize, l: usize, pc: u32, a: u64, t: &TensorMap, what: &str) -> Result<()> {
        let bytes = self.box_bytes(t);
        let align = if t.swizzle == Swizzle::None { 128 } else { 1024 };
        if a % align != 0 || a < SHARED_BASE || a - SHARED_BASE + bytes > self.shared.data.len() as u64 {
            return Err(self.fault(
                ErrorKind::IllegalAddress,
                wi,
                l,
                pc,
                format!(
                    "{what} 0x{a:x} ({bytes} bytes): must be {align}-byte aligned and inside the launch's {} bytes of shared memory",
                    self.shared.data.len()
                ),
            ));
        }
        Ok(())
    }

    /// The tensor map at generic address `ma` (lane `l`'s operand), decoded, of rank `rank`: 128
    /// bytes, 64-byte aligned, in the kernel's parameters (the generic param window) or in global
    /// memory (every generic address outside the windows). A generic shared or local address is
    /// an error.
    fn read_tensor_map(&mut self, wi: usize, l: usize, pc: u32, ma: u64, rank: usize) -> Result<TensorMap> {
        if ma % 64 != 0 {
            return Err(self.fault(
                ErrorKind::MisalignedAddress,
                wi,
                l,
                pc,
                format!("tensor map at 0x{ma:x} is not 64-byte aligned"),
            ));
        }
        let window = |base: u64| (base..base + WINDOW).contains(&ma);
        let (space, at) = if window(GENERIC_PARAM) {
            let off = ma - GENERIC_PARAM;
            if off + 128 > self.params.len() as u64 {
                return Err(self.fault(
                    ErrorKind::IllegalAddress,
                    wi,
                    l,
                    pc,
                    format!(
                        "tensor map at generic address 0x{ma:x} (parameter offset {off}): its 128 bytes reach past the kernel's {} parameter bytes",
                        self.params.len()
                    ),
                ));
            }
            (Space::Param, off)
        } else if window(GENERIC_SHARED) || window(GENERIC_LOCAL) {
            let space = if window(GENERIC_SHARED) { "shared" } else { "local" };
            return Err(self.fault(
                ErrorKind::IllegalAddress,
                wi,
                l,
                pc,
                format!(
                    "tensor map at generic address 0x{ma:x}, in {space} memory: a tensor map must be in .param, .const or .global space"
                ),
            ));
        } else {
            (Space::Global, ma)
        };
        let mut raw = [0u8; 128];
        for chunk in 0..8u64 {
            let loc = self.locate(wi, l, pc, space, at + 16 * chunk, 16, 16)?;
            let mut buf = [0u8; 16];
            self.read_bytes(wi, l, pc, &loc, 16, &mut buf, true)?;
            raw[16 * chunk as usize..16 * chunk as usize + 16].copy_from_slice(&buf);
        }
        let tmap = TensorMap::decode(&raw).map_err(|e| {
            self.fault(ErrorKind::LaunchFailed, wi, l, pc, format!("tensor map at 0x{ma:x}: {}", e.message))
        })?;
        if tmap.rank as usize != rank {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l,
                pc,
                format!("{rank}-D tensor copy with a rank-{} tensor map", tmap.rank),
            ));
        }
        Ok(tmap)
    }

    /// `fence.proxy.async` (shared memory): the warp's generic-proxy writes so far, and those
    /// ordered before it by a barrier, become visible to its later async-proxy operations.
    pub(super) fn fence_proxy_async(&mut self, wi: usize) {
        self.tick += 1;
        let (tick, epoch) = (self.tick, self.epoch);
        let h = &mut self.warps[wi].hop;
        if let Some(f) = h.proxy_fence {
            h.proxy_fence_prev = f.0;
            if f.1 < epoch {
                h.proxy_fence_before = Some(f);
            }
        }
        h.proxy_fence = Some((tick, epoch));
    }

    /// Whether a TMA store issued now by warp `wi` may read shared byte `k` (written last by the
    /// generic proxy at tick `t` by the warp and epoch of `self.shared.w[k]`): a proxy fence
    /// lies between the write and the store, either in the issuing warp, after the write (in
    /// program order, or after a barrier that followed the write), or in the writing warp, after
    /// the write and before a barrier that precedes the store (a barrier of the whole CTA, or
    /// one of some warps or an mbarrier phase whose release by the writer this warp acquired:
    /// `WarpHopper::ordered`). `Err(true)`: the write is not ordered before the store at all (no
    /// barrier); `Err(false)`: no proxy fence.
    fn generic_write_visible(&self, wi: usize, k: usize, t: u64) -> std::result::Result<(), bool> {
        let w = self.shared.w[k];
        let (writer, e) = (((w & 63) as usize).wrapping_sub(1), w >> 6);
        let cur = self.epoch;
        let by_tick = writer != wi && e >= cur;
        if by_tick && !self.ordered_after(wi, writer, t) {
            return Err(true);
        }
        if by_tick {
            // the writer's fence after the write and before the release this warp acquired, or
            // this warp's own fence after that release
            let h = &self.warps[writer].hop;
            let rel = self.warps[wi].hop.ordered[writer];
            let fences =
                [h.proxy_fence.map_or(0, |f| f.0), h.proxy_fence_prev, h.proxy_fence_before.map_or(0, |f| f.0)];
            let own = self.warps[wi].hop.proxy_fence.is_some_and(|(ft, _)| ft > rel);
            return if own || fences.iter().any(|&ft| ft > t && ft < rel) { Ok(()) } else { Err(false) };
        }
        if let Some((ft, fe)) = self.warps[wi].hop.proxy_fence
            && ft > t
            && (writer == wi || e < fe)
        {
            return Ok(());
        }
        if writer != wi && writer < self.warps.len() {
            let h = &self.warps[writer].hop;
            let f = match h.proxy_fence {
                Some(f) if f.1 < cur => Some(f),
                _ => h.proxy_fence_before,
            };
            if let Some((ft, fe)) = f
                && ft > t
                && fe < cur
            {
                return Ok(());
            }
        }
        Err(false)
    }

    /// Shared bytes `[o, o + len)` are about to be written (by `what`): no TMA store may still
    /// be reading them.
    pub(super) fn check_bulk_overwrite(
        &self,
        wi: usize,
        lane: usize,
        pc: u32,
        o: usize,
        len: usize,
        what: &str,
    ) -> Result<()> {
        if let Some(b) = self.bulk_reads.iter().find(|b| o < b.hi && b.lo < o + len) {
            let k = o.max(b.lo);
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                lane,
                pc,
                format!(
                    "{what} overwrites shared address 0x{:x}, which a TMA store (PTX line {}, thread {}) still reads: the issuing thread's cp.async.bulk.wait_group.read has not retired it{}",
                    SHARED_BASE + k as u64,
                    self.m.code[b.pc as usize].line,
                    self.warps[b.wi].id * 32 + b.lane as u32,
                    if b.group.is_none() { " (it is in no committed bulk group: cp.async.bulk.commit_group is missing)" } else { "" }
                ),
            ));
        }
        Ok(())
    }

    /// `cp.async.bulk.tensor.Nd.global.shared::cta.bulk_group`: one TMA store per active lane.
    /// The box is read from shared memory (through the map's swizzle) at once: every byte must
    /// be written, ready if a TMA load wrote it, and, if the generic proxy wrote it, ordered
    /// before the store by a `fence.proxy.async`. The elements inside the tensor are written to
    /// global memory; the rest of the box is not (clipped). The shared bytes stay in use until a
    /// `cp.async.bulk.wait_group[.read]` of the issuing thread retires the store's group.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tma_store(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        map: &Src,
        coords: &[Src],
        src: &Addr,
    ) -> Result<()> {
        let sv = self.addrs(wi, bank, src);
        let mv = self.fetch(wi, bank, map);
        let cv: Vec<[u64; 32]> = coords.iter().map(|c| self.fetch(wi, bank, c)).collect();
        for l in lanes(m) {
            let t = self.read_tensor_map(wi, l, pc, mv[l], coords.len())?;
            let s = shared_window_offset(sv[l]);
            self.check_box_in_shared(wi, l, pc, s, &t, "TMA store source")?;
            let c = lane_coords(&cv, l);
            let BoxShape { eb, rank, inner, rows, row_bytes } = BoxShape::of(&t);
            let (mut lo, mut hi) = (usize::MAX, 0usize);
            let mut buf = vec![0u8; row_bytes as usize];
            for r in 0..rows {
                // The box row from shared memory, 16-byte swizzle chunks at a time.
                let mut j = 0usize;
                while j < buf.len() {
                    let logical = s + r * row_bytes + j as u64;
                    let len = ((16 - logical % 16) as usize).min(buf.len() - j);
                    let o = (swizzle_addr(logical, t.swizzle) - SHARED_BASE) as usize;
                    if !all_written(&self.shared.init[o..o + len]) {
                        let k = o + self.shared.init[o..o + len].iter().position(|&b| b == 0).unwrap_or(0);
                        return Err(self.fault(
                            ErrorKind::LaunchFailed,
                            wi,
                            l,
                            pc,
                            format!("TMA store reads shared address 0x{:x}, never written", SHARED_BASE + k as u64),
                        ));
                    }
                    if !self.copy_tags.is_empty() {
                        self.check_tma_ready(wi, l, pc, o, len)?;
                    }
                    for k in o..o + len {
                        let gt = self.shared.generic[k];
                        if gt == 0 {
                            continue;
                        }
                        if let Err(no_barrier) = self.generic_write_visible(wi, k, gt) {
                            let w = self.shared.w[k];
                            let why = if no_barrier {
                                format!(
                                    "warp {} wrote it with no barrier between that write and this store",
                                    ((w & 63) as usize).wrapping_sub(1)
                                )
                            } else {
                                "it was written through the generic proxy (st.shared, stmatrix) and no fence.proxy.async.shared::cta orders that write before this store".to_string()
                            };
                            return Err(self.fault(
                                ErrorKind::LaunchFailed,
                                wi,
                                l,
                                pc,
                                format!("TMA store reads shared address 0x{:x}: {why}", SHARED_BASE + k as u64),
                            ));
                        }
                    }
                    buf[j..j + len].copy_from_slice(&self.shared.data[o..o + len]);
                    lo = lo.min(o);
                    hi = hi.max(o + len);
                    j += len;
                }
                // Into global memory: the elements inside the tensor only.
                let mut rem = r;
                let mut base = t.global_address as i128;
                let mut oob = false;
                for (i, &ci) in c.iter().enumerate().take(rank).skip(1) {
                    let k = rem % t.box_dim[i] as u64;
                    rem /= t.box_dim[i] as u64;
                    let coord = ci + k as i64;
                    if coord < 0 || coord as u64 >= t.global_dim[i] {
                        oob = true;
                    }
                    base += coord as i128 * t.global_strides[i] as i128;
                }
                if oob {
                    continue;
                }
                let e_lo = (-c[0]).clamp(0, inner as i64) as u64;
                let e_hi = (t.global_dim[0] as i128 - c[0] as i128).clamp(e_lo as i128, inner as i128) as u64;
                if e_hi == e_lo {
                    continue;
                }
                let a = base + (c[0] + e_lo as i64) as i128 * eb as i128;
                let span = (e_hi - e_lo) * eb;
                if a < 0 || a > u64::MAX as i128 {
                    return Err(self.fault(
                        ErrorKind::IllegalAddress,
                        wi,
                        l,
                        pc,
                        format!("TMA store to global address {a} outside the address space"),
                    ));
                }
                let loc = self.locate(wi, l, pc, Space::Global, a as u64, span as u32, 1)?;
                let data = buf[(e_lo * eb) as usize..(e_hi * eb) as usize].to_vec();
                self.write_bytes(wi, l, pc, &loc, &data, false)?;
            }
            if lo < hi {
                self.bulk_reads.push(BulkRead { wi, lane: l, pc, lo, hi, group: None });
            }
        }
        Ok(())
    }

    /// `cp.async.bulk.commit_group`: each lane's uncommitted TMA stores become its next group.
    pub(super) fn bulk_commit(&mut self, wi: usize, m: u32) {
        let groups = self.warps[wi].hop.bulk_groups;
        for b in self.bulk_reads.iter_mut().filter(|b| b.wi == wi && m & (1 << b.lane) != 0 && b.group.is_none()) {
            b.group = Some(groups[b.lane]);
        }
        for l in lanes(m) {
            self.warps[wi].hop.bulk_groups[l] += 1;
        }
    }

    /// `cp.async.bulk.wait_group[.read] n`: retires each lane's committed groups but the newest
    /// `n` (their stores have written global memory already; their shared bytes are free again).
    pub(super) fn bulk_wait(&mut self, wi: usize, m: u32, n: u32) {
        let groups = self.warps[wi].hop.bulk_groups;
        self.bulk_reads
            .retain(|b| !(b.wi == wi && m & (1 << b.lane) != 0 && b.group.is_some_and(|g| g + n < groups[b.lane])));
    }

    /// At the end of a CTA: no TMA store still reads its shared memory (the CTA's shared memory
    /// is released when it exits).
    pub(super) fn check_bulk_reads_at_exit(&self) -> Result<()> {
        if let Some(b) = self.bulk_reads.first() {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                b.wi,
                b.lane,
                b.pc,
                "the CTA exits while this TMA store may still read its shared memory: no cp.async.bulk.wait_group (.read) retired it".into(),
            ));
        }
        Ok(())
    }

    /// `stmatrix.sync.aligned.m8n8.xN[.trans].shared.b16`: matrix `q` (register `q` of every
    /// lane) has its row `r` stored at the 16-byte aligned address of lane `8q + r`; lane `l`
    /// holds elements (row `l / 4`, columns `2 (l % 4)`, `+ 1`) of each matrix, the low half
    /// first; `.trans` stores the transpose.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stmatrix(
        &mut self,
        wi: usize,
        pc: u32,
        group: u32,
        bank: usize,
        trans: bool,
        addr: &Addr,
        a: &[Src],
    ) -> Result<()> {
        let l0 = group.trailing_zeros() as usize;
        if group != FULL || self.warps[wi].valid != FULL {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l0,
                pc,
                format!("stmatrix needs all 32 lanes of the warp; lanes {group:#010x} execute it"),
            ));
        }
        let av = self.addrs(wi, bank, addr);
        let vals: Vec<[u64; 32]> = a.iter().map(|x| self.fetch(wi, bank, x)).collect();
        for (q, v) in vals.iter().enumerate() {
            for r in 0..8usize {
                let lane = 8 * q + r;
                let mut row = [0u8; 16];
                for c in 0..8usize {
                    // Fragment element (fr, fc) of matrix q lands at (r, c).
                    let (fr, fc) = if trans { (c, r) } else { (r, c) };
                    let x = (v[4 * fr + fc / 2] >> (16 * (fc % 2))) as u16;
                    row[2 * c..2 * c + 2].copy_from_slice(&x.to_le_bytes());
                }
                let at = av[lane];
                let at = if (GENERIC_SHARED..GENERIC_SHARED + WINDOW).contains(&at) { at - GENERIC_SHARED } else { at };
                let loc = self.locate(wi, lane, pc, Space::Shared, at, 16, 16)?;
                self.write_bytes(wi, lane, pc, &loc, &row, false)?;
            }
        }
        Ok(())
    }

    /// The pc of a wgmma in flight (in any warp) that reads shared byte `o`.
    pub(super) fn wgmma_reading(&self, o: usize) -> Option<u32> {
        if self.wgmma_in_flight == 0 {
            return None;
        }
        self.warps
            .iter()
            .flat_map(|w| w.hop.ops.iter())
            .find(|op| op.reads.iter().any(|&(a, b)| o >= a && o < b))
            .map(|op| op.pc)
    }

    /// Checks that a read of shared bytes a TMA copy wrote comes after a wait on its phase.
    pub(super) fn check_tma_ready(&self, wi: usize, lane: usize, pc: u32, o: usize, len: usize) -> Result<()> {
        for k in o..o + len {
            let tag = self.tma_tag[k];
            if tag != 0 {
                let (slot, phase) = self.copy_tags[tag as usize - 1];
                if !self.warps[wi].hop.has_seen(slot, phase) {
                    return Err(self.fault(
                        ErrorKind::LaunchFailed,
                        wi,
                        lane,
                        pc,
                        format!(
                            "race with TMA: shared address 0x{:x} was written by a TMA copy completing phase {phase} of the mbarrier at 0x{:x}, and this warp has not waited for that phase",
                            SHARED_BASE + k as u64,
                            SHARED_BASE + 8 * slot as u64
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Element `kk` of an operand row: inside shared memory, written, and ready if a TMA copy
    /// wrote it; widens `range` to its bytes.
    fn read_operand_element(
        &self,
        wi: usize,
        l0: usize,
        pc: u32,
        src: &OperandRow,
        kk: u64,
        range: &mut (usize, usize),
    ) -> Result<f64> {
        let (row, e) = (src.row, src.e);
        let smem_len = self.shared.data.len() as u64;
        let addr = src.desc.k_major_addr(row, kk * e);
        if addr < SHARED_BASE || addr - SHARED_BASE + e > smem_len {
            return Err(self.fault(
                ErrorKind::IllegalAddress,
                wi,
                l0,
                pc,
                format!("wgmma operand address 0x{addr:x} (row {row}, k {kk}) is outside the launch's {smem_len} bytes of shared memory"),
            ));
        }
        let o = (addr - SHARED_BASE) as usize;
        if self.shared.init[o..o + e as usize].contains(&0) {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l0,
                pc,
                format!("wgmma reads shared address 0x{addr:x}, never written"),
            ));
        }
        self.check_tma_ready(wi, l0, pc, o, e as usize)?;
        range.0 = range.0.min(o);
        range.1 = range.1.max(o + e as usize);
        let mut bits = 0u64;
        for j in 0..e as usize {
            bits |= (self.shared.data[o + j] as u64) << (8 * j);
        }
        Ok(elem_value(src.ty, bits))
    }

    /// Whether this warp may read shared bytes with TMA tags `tags` (see `check_tma_ready`);
    /// `ready_tag` is a copy found ready before, and becomes the last one found.
    #[inline]
    fn tma_ready(&self, wi: usize, tags: &[u32], ready_tag: &mut u32) -> bool {
        let known = *ready_tag;
        if tags.iter().fold(true, |ok, &t| ok & ((t == 0) | (t == known))) {
            return true;
        }
        tags.iter().all(|&t| {
            if t == 0 || t == *ready_tag {
                return true;
            }
            let (slot, phase) = self.copy_tags[t as usize - 1];
            let ready = self.warps[wi].hop.has_seen(slot, phase);
            if ready {
                *ready_tag = t;
            }
            ready
        })
    }

    /// Reads an operand row into `out` (one value per element) as `read_operand_element` would
    /// element by element, 16 bytes at a time: a swizzle chunk is contiguous in shared memory,
    /// so when all of it is inside, written and ready, so is each element. A chunk that fails
    /// is read element by element, which reports the first failing element. `ready_tag` is a TMA
    /// copy already found ready (the warp's view of the mbarriers does not change meanwhile).
    #[allow(clippy::too_many_arguments)]
    fn read_operand_row(
        &self,
        wi: usize,
        l0: usize,
        pc: u32,
        src: &OperandRow,
        out: &mut [f64],
        range: &mut (usize, usize),
        ready_tag: &mut u32,
    ) -> Result<()> {
        let e = src.e as usize;
        let row_bytes = out.len() * e;
        let smem_len = self.shared.data.len();
        let table = if e == 1 { byte_values(src.ty) } else { None };
        let mut byte = 0;
        while byte < row_bytes {
            let len = 16.min(row_bytes - byte);
            let addr = src.desc.k_major_addr(src.row, byte as u64);
            let o = addr.wrapping_sub(SHARED_BASE) as usize;
            let fast = addr >= SHARED_BASE
                && o + len <= smem_len
                && src.desc.k_major_addr(src.row, (byte + len - 1) as u64) == addr + len as u64 - 1
                && all_written(&self.shared.init[o..o + len])
                && self.tma_ready(wi, &self.tma_tag[o..o + len], ready_tag);
            // Elements are 1, 2 or 4 bytes.
            let (first, count) = (byte >> e.trailing_zeros(), len >> e.trailing_zeros());
            if fast {
                range.0 = range.0.min(o);
                range.1 = range.1.max(o + len);
                let data = &self.shared.data[o..o + len];
                let out = &mut out[first..first + count];
                match (table, e) {
                    (Some(t), _) => out.iter_mut().zip(data).for_each(|(v, &b)| *v = t[b as usize]),
                    (None, 2) => {
                        for (v, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                            *v = elem_value(src.ty, u16::from_le_bytes([b[0], b[1]]) as u64);
                        }
                    }
                    _ => {
                        for (j, v) in out.iter_mut().enumerate() {
                            let bits = data[j * e..(j + 1) * e].iter().rev().fold(0u64, |b, &x| (b << 8) | x as u64);
                            *v = elem_value(src.ty, bits);
                        }
                    }
                }
            } else {
                for (j, v) in out[first..first + count].iter_mut().enumerate() {
                    *v = self.read_operand_element(wi, l0, pc, src, (first + j) as u64, range)?;
                }
            }
            byte += len;
        }
        Ok(())
    }

    /// `wgmma.mma_async`: computes this warp's 16 rows now, lands them at `wait_group`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wgmma(&mut self, wi: usize, pc: u32, group: u32, m: u32, bank: usize, inst: &Op) -> Result<()> {
        let Op::Wgmma { m: mm, n, k, dty, aty, bty, d, a_desc, b_desc, scale_d, scale_a, scale_b, tnsp_a, tnsp_b } =
            inst
        else {
            unreachable!()
        };
        let l0 = m.trailing_zeros() as usize;
        let w = &self.warps[wi];
        if m != FULL || group != FULL || w.valid != FULL {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l0,
                pc,
                format!(
                    "wgmma.mma_async needs all 128 threads of the warpgroup; warp {} executes it with lanes {m:#010x}",
                    w.id
                ),
            ));
        }
        if *mm != 64
            || *dty != Ty::F32
            || d.len() as u32 != n / 2
            || *tnsp_a != 0
            || *tnsp_b != 0
            || *scale_a != 1
            || *scale_b != 1
        {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l0,
                pc,
                format!("wgmma form m{mm}n{n}k{k}.{dty:?} with {} registers, transposes ({tnsp_a}, {tnsp_b}), scales ({scale_a}, {scale_b}) is not modelled", d.len()),
            ));
        }
        let da = Desc::decode(self.fetch(wi, bank, a_desc)[l0]);
        let db = Desc::decode(self.fetch(wi, bank, b_desc)[l0]);
        for (what, ds) in [("A", &da), ("B", &db)] {
            if ds.base_offset != 0 {
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    l0,
                    pc,
                    format!("wgmma {what} descriptor: base offset {} is not modelled", ds.base_offset),
                ));
            }
        }
        let accumulate = self.fetch(wi, bank, scale_d)[l0] & 1 != 0;
        let (ea, eb) = (operand_bytes(*aty), operand_bytes(*bty));
        let kb = *k as usize;
        let n = *n as usize;
        let quarter = (w.id % 4) as u64;
        // Operands, read now (with the TMA-readiness check): A row-major (16 × k), B k-major
        // transposed to (k × n) so that the products below run along a row of the result.
        let mut a = vec![0f64; 16 * kb];
        let mut bt = vec![0f64; kb * n];
        let mut range_a = (usize::MAX, 0usize);
        let mut range_b = (usize::MAX, 0usize);
        let mut ready_tag = 0;
        for r in 0..16 {
            let src = OperandRow { desc: &da, row: quarter * 16 + r as u64, e: ea, ty: *aty };
            self.read_operand_row(wi, l0, pc, &src, &mut a[r * kb..(r + 1) * kb], &mut range_a, &mut ready_tag)?;
        }
        // B's rows (the columns of the product) in blocks of `COLS`, written `COLS` at a time.
        const COLS: usize = 8;
        let mut rows = vec![0f64; COLS * kb];
        for c0 in (0..n).step_by(COLS) {
            let cols = COLS.min(n - c0);
            for j in 0..cols {
                let src = OperandRow { desc: &db, row: (c0 + j) as u64, e: eb, ty: *bty };
                self.read_operand_row(wi, l0, pc, &src, &mut rows[j * kb..(j + 1) * kb], &mut range_b, &mut ready_tag)?;
            }
            for kk in 0..kb {
                for j in 0..cols {
                    bt[kk * n + c0 + j] = rows[j * kb + kk];
                }
            }
        }
        let mut dots = vec![0f64; 16 * n];
        products(&a, &bt, kb, n, &mut dots);
        // Input accumulators: the newest in-flight result for these registers, else the registers.
        let w = &self.warps[wi];
        let prev = w.hop.ops.iter().rev().find(|op| op.bank == bank && op.regs == *d);
        let fp8 = matches!(aty, Ty::E4m3x2 | Ty::E5m2x2);
        let keep_bits = self.sim.config().fp8_acc_bits.filter(|_| fp8);
        let mut vals = vec![[0u32; 128]; 32];
        for (lane, lane_vals) in vals.iter_mut().enumerate() {
            for (i, &r) in d.iter().enumerate() {
                let j = i / 4;
                let h = (i / 2) % 2;
                let e = i % 2;
                let row = lane / 4 + 8 * h;
                let col = 8 * j + 2 * (lane % 4) + e;
                let acc = dots[row * n + col];
                let cur = if !accumulate {
                    0.0
                } else if let Some(p) = prev {
                    f32::from_bits(p.vals[lane][i]) as f64
                } else {
                    f32::from_bits(w.regs[(bank + r as usize) * 32 + lane] as u32) as f64
                };
                let out = (cur + acc) as f32;
                let out = match keep_bits {
                    Some(b) if out.is_finite() => f32::from_bits(out.to_bits() & !((1u32 << (24 - b)) - 1)),
                    _ => out,
                };
                lane_vals[i] = num::canon_f32(out.to_bits());
            }
        }
        let w = &mut self.warps[wi];
        for &r in d {
            let abs = (bank + r as usize) as u32;
            if !w.hop.inflight.contains(&abs) {
                w.hop.inflight.push(abs);
            }
        }
        w.hop.issued += 1;
        w.hop.issue_hash = w.hop.issue_hash.wrapping_mul(0x100_0000_01b3).wrapping_add(pc as u64 + 1);
        w.hop.ops.push(WgOp { bank, regs: d.clone(), vals, reads: [range_a, range_b], committed: false, group: 0, pc });
        self.wgmma_in_flight += 1;
        Ok(())
    }

    pub(super) fn wgmma_commit(&mut self, wi: usize) {
        let w = &mut self.warps[wi];
        let g = w.hop.groups_committed;
        let mut any = false;
        for op in w.hop.ops.iter_mut().filter(|o| !o.committed) {
            op.committed = true;
            op.group = g;
            any = true;
        }
        // An empty commit still makes a (complete) group.
        let _ = any;
        w.hop.groups_committed += 1;
    }

    /// `wgmma.wait_group n`: retires every committed group but the newest `n`.
    pub(super) fn wgmma_wait(&mut self, wi: usize, n: u32) {
        let w = &mut self.warps[wi];
        let limit = w.hop.groups_committed.saturating_sub(n);
        let mut keep = Vec::new();
        let mut retired = 0;
        for op in std::mem::take(&mut w.hop.ops) {
            if op.committed && op.group < limit {
                for (i, &r) in op.regs.iter().enumerate() {
                    let base = (op.bank + r as usize) * 32;
                    for lane in 0..32 {
                        w.regs[base + lane] = op.vals[lane][i] as u64;
                    }
                }
                retired += 1;
            } else {
                keep.push(op);
            }
        }
        w.hop.ops = keep;
        let still: Vec<u32> =
            w.hop.ops.iter().flat_map(|o| o.regs.iter().map(move |&r| (o.bank + r as usize) as u32)).collect();
        w.hop.inflight.retain(|r| still.contains(r));
        self.wgmma_in_flight -= retired;
    }

    /// A register hazard: `inst` touches an accumulator of a wgmma in flight.
    pub(super) fn check_inflight(&self, wi: usize, pc: u32, bank: usize, inst: &Inst, lane: usize) -> Result<()> {
        if matches!(inst.op, Op::Wgmma { .. } | Op::WgmmaFence | Op::WgmmaCommit | Op::WgmmaWait { .. }) {
            return Ok(());
        }
        let w = &self.warps[wi];
        let mut hit = None;
        for_each_reg(&inst.op, |r| {
            if hit.is_none() && w.hop.inflight.contains(&((bank + r as usize) as u32)) {
                hit = Some(r);
            }
        });
        if let Some(r) = hit {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                lane,
                pc,
                format!(
                    "register {r} is an accumulator of a wgmma in flight: it may not be read or written before the wgmma.wait_group that retires it"
                ),
            ));
        }
        Ok(())
    }

    /// `setmaxnreg`: the whole warp, a kernel with `.maxntid`, and registers to give.
    pub(super) fn setmaxnreg(&mut self, wi: usize, pc: u32, group: u32, inc: bool, n: u32) -> Result<bool> {
        let l0 = group.trailing_zeros() as usize;
        let f = &self.m.functions[self.kernel.index as usize];
        if f.maxntid.is_none() && f.reqntid.is_none() {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l0,
                pc,
                "setmaxnreg in a kernel without .maxntid (ptxas ignores it there)".into(),
            ));
        }
        if group != self.warps[wi].valid || self.warps[wi].valid != FULL {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l0,
                pc,
                format!("setmaxnreg must be executed by the whole warpgroup; lanes {group:#010x} here"),
            ));
        }
        if !(24..=256).contains(&n) || n % 8 != 0 {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l0,
                pc,
                format!("setmaxnreg {n}: must be a multiple of 8 in 24..=256"),
            ));
        }
        let cur = self.warps[wi].hop.maxnreg;
        if inc && n < cur || !inc && n > cur {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l0,
                pc,
                format!("setmaxnreg.{} {n} with {cur} registers per thread now", if inc { "inc" } else { "dec" }),
            ));
        }
        let total: u64 =
            self.warps.iter().enumerate().map(|(i, w)| 32 * if i == wi { n } else { w.hop.maxnreg } as u64).sum();
        if inc && total > self.sim.config().regs_per_sm as u64 {
            // Waits until other warps give registers back.
            self.warps[wi].hop.reg_wait = true;
            return Ok(false);
        }
        self.warps[wi].hop.maxnreg = n;
        self.warps[wi].hop.setmaxnreg_count += 1;
        if !inc {
            for w in &mut self.warps {
                w.hop.reg_wait = false;
            }
        }
        Ok(true)
    }

    /// At the end of a CTA: the warps of each warpgroup issued the same wgmma sequence and
    /// `setmaxnreg`s.
    pub(super) fn check_warpgroups(&self) -> Result<()> {
        for g in self.warps.chunks(4) {
            let w0 = &g[0];
            for w in &g[1..] {
                if (w.hop.issued, w.hop.issue_hash) != (w0.hop.issued, w0.hop.issue_hash) {
                    return Err(SimError::new(
                        ErrorKind::LaunchFailed,
                        format!(
                            "{}: CTA {:?}: warps {} and {} of one warpgroup issued different wgmma sequences ({} and {} instructions): every wgmma.mma_async must be executed by all 128 threads",
                            self.kernel.name(),
                            self.ctaid,
                            w0.id,
                            w.id,
                            w0.hop.issued,
                            w.hop.issued
                        ),
                    ));
                }
                if w.hop.setmaxnreg_count != w0.hop.setmaxnreg_count {
                    return Err(SimError::new(
                        ErrorKind::LaunchFailed,
                        format!(
                            "{}: CTA {:?}: warps {} and {} of one warpgroup executed setmaxnreg differently",
                            self.kernel.name(),
                            self.ctaid,
                            w0.id,
                            w.id
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A description of every live mbarrier and pending copy, for deadlock reports.
    pub(super) fn mbar_report(&self) -> String {
        let mut s = String::new();
        for (i, b) in self.mbars.iter().enumerate().filter(|(_, b)| b.live) {
            s += &format!(
                " mbarrier 0x{:x}: phase {} (parity {}), {} of {} arrivals pending, {} transaction bytes pending.",
                SHARED_BASE + 8 * i as u64,
                b.phase,
                b.phase & 1,
                b.pending,
                b.expected,
                b.tx
            );
        }
        for w in &self.warps {
            // One entry per group: the lanes that polled the same mbarrier and phase at one poll.
            let mut left = w.parked;
            while left != 0 {
                let l = left.trailing_zeros() as usize;
                let (poll, at) = (w.hop.poll[l], w.pc[l]);
                let group =
                    lanes(left).filter(|&k| w.hop.poll[k] == poll && w.pc[k] == at).fold(0u32, |m, k| m | 1 << k);
                left &= !group;
                // The lanes stand after the poll that failed.
                let line = self.m.code.get(at.saturating_sub(1) as usize).map_or(0, |i| i.line);
                s += &format!(
                    " Warp {} lanes {group:#010x} poll mbarrier 0x{:x} in phase {} (line {line}: `{}`).",
                    w.id,
                    SHARED_BASE + 8 * poll.0 as u64,
                    poll.1,
                    self.m.source_line(line)
                );
            }
            if w.hop.reg_wait {
                s += &format!(" Warp {} waits in setmaxnreg.inc for registers no warp gives back.", w.id);
            }
        }
        s
    }
}

/// Calls `f` with every register `op` reads or writes.
pub(super) fn for_each_reg(op: &Op, mut f: impl FnMut(Reg)) {
    let mut s = |x: &Src| {
        if let Src::Reg(r) = x {
            f(*r)
        }
    };
    use Op::*;
    // Destinations are passed through `s` as sources.
    match op {
        Mov { d, a, .. }
        | Cvta { d, a, .. }
        | Neg { d, a, .. }
        | Abs { d, a, .. }
        | Not { d, a, .. }
        | Popc { d, a, .. }
        | Clz { d, a, .. }
        | Brev { d, a, .. }
        | FNeg { d, a, .. }
        | FAbs { d, a, .. }
        | Rcp { d, a, .. }
        | Sqrt { d, a, .. } => {
            s(&Src::Reg(*d));
            s(a);
        }
        Add { d, a, b, .. }
        | Sub { d, a, b, .. }
        | MulInt { d, a, b, .. }
        | Div { d, a, b, .. }
        | Rem { d, a, b, .. }
        | Min { d, a, b, .. }
        | Max { d, a, b, .. }
        | And { d, a, b, .. }
        | Or { d, a, b, .. }
        | Xor { d, a, b, .. }
        | Shl { d, a, b, .. }
        | Shr { d, a, b, .. }
        | FAdd { d, a, b, .. }
        | FSub { d, a, b, .. }
        | FMul { d, a, b, .. }
        | FDiv { d, a, b, .. }
        | FMin { d, a, b, .. }
        | FMax { d, a, b, .. }
        | HMinMax { d, a, b, .. } => {
            s(&Src::Reg(*d));
            s(a);
            s(b);
        }
        Selp { d, a, b, p: c, .. }
        | Prmt { d, a, b, c }
        | MadInt { d, a, b, c, .. }
        | Bfe { d, a, b, c, .. }
        | Fma { d, a, b, c, .. } => {
            s(&Src::Reg(*d));
            s(a);
            s(b);
            s(c);
        }
        Bfi { d, f: x, b, pos, len, .. } => {
            s(&Src::Reg(*d));
            s(x);
            s(b);
            s(pos);
            s(len);
        }
        Setp { bool_op, p, q, a, b, .. } => {
            s(&Src::Reg(*p));
            if let Some(q) = q {
                s(&Src::Reg(*q));
            }
            if let Some((_, c)) = bool_op {
                s(c);
            }
            s(a);
            s(b);
        }
        Cvt { d, a, b, .. } => {
            s(&Src::Reg(*d));
            s(a);
            if let Some(b) = b {
                s(b);
            }
        }
        Ld { d, addr, .. } => {
            for r in d {
                s(&Src::Reg(*r));
            }
            s(&addr.base);
        }
        St { a, addr, .. } => {
            for x in a {
                s(x);
            }
            s(&addr.base);
        }
        Atom { d, addr, a, b, .. } => {
            if let Some(d) = d {
                s(&Src::Reg(*d));
            }
            s(&addr.base);
            s(a);
            if let Some(b) = b {
                s(b);
            }
        }
        Shfl { d, p, a, b, c, mask, .. } => {
            s(&Src::Reg(*d));
            if let Some(p) = p {
                s(&Src::Reg(*p));
            }
            s(a);
            s(b);
            s(c);
            s(mask);
        }
        BarWarpSync { mask } => s(mask),
        BarSync { id, count } => {
            s(id);
            if let Some(c) = count {
                s(c);
            }
        }
        BrxIdx { index, .. } => s(index),
        MbarInit { addr, count } => {
            s(&addr.base);
            s(count);
        }
        MbarArrive { d, addr, tx, .. } => {
            if let Some(d) = d {
                s(&Src::Reg(*d));
            }
            s(&addr.base);
            if let Some(t) = tx {
                s(t);
            }
        }
        MbarExpectTx { addr, tx } => {
            s(&addr.base);
            s(tx);
        }
        MbarTryWait { p, addr, parity, .. } => {
            s(&Src::Reg(*p));
            s(&addr.base);
            s(parity);
        }
        TmaStore { map, coords, src } => {
            s(map);
            for c in coords {
                s(c);
            }
            s(&src.base);
        }
        StMatrix { addr, a, .. } => {
            s(&addr.base);
            for x in a {
                s(x);
            }
        }
        CpAsyncBulkTensor { dst, map, coords, mbar, multicast } => {
            s(&dst.base);
            s(map);
            for c in coords {
                s(c);
            }
            s(&mbar.base);
            if let Some(x) = multicast {
                s(x);
            }
        }
        Mapa { d, a, rank } => {
            s(&Src::Reg(*d));
            s(a);
            s(rank);
        }
        Wgmma { d, a_desc, b_desc, scale_d, .. } => {
            for r in d {
                s(&Src::Reg(*r));
            }
            s(a_desc);
            s(b_desc);
            s(scale_d);
        }
        Fence
        | FenceProxyAsync { .. }
        | BulkCommit
        | BulkWait { .. }
        | Nop
        | Bra { .. }
        | Call { .. }
        | Ret
        | Exit
        | Trap
        | WgmmaFence
        | WgmmaCommit
        | WgmmaWait { .. }
        | SetMaxNReg { .. }
        | ClusterArrive { .. }
        | ClusterWait => {}
    }
}

/// A TMA box as the copies walk it, row by row: element bytes, rank, elements per row (dimension
/// 0), rows (the product of the other dimensions), bytes per row.
struct BoxShape {
    eb: u64,
    rank: usize,
    inner: u64,
    rows: u64,
    row_bytes: u64,
}

impl BoxShape {
    fn of(t: &TensorMap) -> BoxShape {
        let (eb, rank, inner) = (t.element_bytes(), t.rank as usize, t.box_dim[0] as u64);
        let rows = (1..rank).map(|i| t.box_dim[i] as u64).product();
        BoxShape { eb, rank, inner, rows, row_bytes: inner * eb }
    }
}

/// A shared address given in the generic window, as a `.shared` address (others unchanged).
fn shared_window_offset(a: u64) -> u64 {
    if (GENERIC_SHARED..GENERIC_SHARED + WINDOW).contains(&a) { a - GENERIC_SHARED } else { a }
}

/// Lane `l`'s tensor coordinates (signed 32-bit operands), padded to 5 dimensions.
fn lane_coords(cv: &[[u64; 32]], l: usize) -> [i64; 5] {
    let mut c = [0i64; 5];
    for (i, v) in cv.iter().enumerate() {
        c[i] = v[l] as u32 as i32 as i64;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocked (and vectorised) products equal the plain sums bit for bit, for every width.
    #[test]
    fn products_match_the_plain_sums() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Values of very different magnitudes (sums that round), with zeros of both signs.
            let m = (seed % 2001) as f64 - 1000.0;
            m * 2f64.powi((seed >> 20) as i32 % 60 - 30) * if seed & (1 << 40) != 0 { 0.0 } else { 1.0 }
        };
        for (kb, n) in [(32, 256), (16, 8), (8, 24), (32, 40), (16, 3)] {
            let a: Vec<f64> = (0..16 * kb).map(|_| next()).collect();
            let bt: Vec<f64> = (0..kb * n).map(|_| next()).collect();
            let mut dots = vec![0f64; 16 * n];
            products(&a, &bt, kb, n, &mut dots);
            for r in 0..16 {
                for c in 0..n {
                    let mut acc = 0f64;
                    for k in 0..kb {
                        acc += a[r * kb + k] * bt[k * n + c];
                    }
                    assert_eq!(dots[r * n + c].to_bits(), acc.to_bits(), "k {kb} n {n} row {r} column {c}");
                }
            }
        }
    }
}
