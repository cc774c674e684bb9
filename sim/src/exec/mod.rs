//! The executor: runs one launch of a kernel, CTA by CTA, each CTA's warps interleaved by a
//! scheduler, each warp's lanes together where their program counters agree.
//!
//! - **Lanes.** Every lane has its own program counter (independent thread scheduling, as on
//!   Volta and later). A warp runs the group of its runnable lanes at the lowest program counter;
//!   it keeps that group (the whole warp in the common case) until the group reaches the next
//!   lowest program counter, so the search runs only where lanes diverge or meet. `shfl.sync` and
//!   `bar.warp.sync` wait until every lane of their member mask is at the same instruction, the
//!   `.aligned` warp collectives (wgmma, `setmaxnreg`, `stmatrix`) until every live lane is.
//!   A group that waits stops alone and the warp's other lanes run on: lanes at `bar.sync` or
//!   `barrier.cluster.wait`, at a warp-synchronous instruction, or whose `mbarrier.try_wait`
//!   failed (`Warp::parked`, until the phase they polled completes). A failed `test_wait`, which
//!   never blocks, yields: the warp's other runnable lanes go first (`Warp::yielded`) and the
//!   warp's turn ends.
//! - **CTAs.** The CTAs of a grid run one after another; the warps of a CTA take turns, each until
//!   it waits at a barrier or exits (or, with `Config::seed`, for a random number of
//!   instructions). `bar.sync` releases when every non-exited thread of the CTA (or its thread
//!   count) has arrived.
//! - **Clusters.** A kernel with `.reqnctapercluster` runs its grid cluster by cluster: the CTAs
//!   of a cluster run together, their warps taking turns CTA by CTA, so that one CTA can wait on
//!   an mbarrier another arrives on or fills by a multicast TMA copy, or read its shared memory
//!   (`ld.shared::cluster`) with the cluster-scope order checked. One CTA's state lives in
//!   `Run`'s fields while it runs; the others wait in `Run::peers` and are swapped in for their
//!   turn, or for an operation on their shared memory (`Run::swap_to`). A launch without clusters
//!   takes the one-CTA path, unchanged.
//! - **Checks.** Every access is checked: global memory against the live allocations (and their
//!   never-written bytes), shared memory against the launch's size, alignment against the access
//!   size. A non-atomic global write by one CTA to bytes another CTA read or wrote in the same
//!   launch is a race, and so is a shared-memory access by one warp to bytes another warp wrote
//!   (or read, for a write) since the last barrier of the whole CTA, unless a barrier of some of
//!   the warps or an mbarrier phase orders the two (`exec::hopper`, "Order through mbarriers").

mod cluster;
pub mod hopper;

use std::collections::HashMap;
use std::sync::Arc;

use hopper::{Copy, LaneRelease, LocalRelease, Mbar, WarpHopper};

use crate::device::{Kernel, LaunchConfig, Sim};
use crate::error::{ErrorKind, Result, SimError};
use crate::ir::layout::{GENERIC_LOCAL, GENERIC_PARAM, GENERIC_SHARED, SHARED_BASE, WINDOW};
use crate::ir::*;
use crate::mem::{Allocation, INIT, MULTI, Race, Snapshot, describe_in};
use crate::num;
use crate::profile::{Class, LaunchStats};

const FULL: u32 = u32::MAX;
/// CTAs per cluster at most (the portable cluster size).
const MAX_CLUSTER: usize = 8;
/// The most warps of a CTA (1024 threads).
const MAX_WARPS: usize = 32;
/// Warp-instructions one launch may execute before it is declared runaway.
const MAX_WARP_INSTS: u64 = 20_000_000_000;

/// Runs `kernel` over the grid of `cfg` with the parameter buffer `params`.
pub fn launch(sim: &Sim, kernel: &Kernel, cfg: &LaunchConfig, params: &[u8]) -> Result<LaunchStats> {
    let started = std::time::Instant::now();
    let plan = Plan::new(sim, kernel, cfg, params)?;
    let mut run = Run::new(sim, kernel, &plan, cfg, params);
    let [gx, gy, gz] = cfg.grid;
    if run.cluster.size > 1 {
        let [kx, ky, kz] = run.cluster.dims;
        for z in (0..gz).step_by(kz as usize) {
            for y in (0..gy).step_by(ky as usize) {
                for x in (0..gx).step_by(kx as usize) {
                    run.run_cluster([x, y, z])?;
                }
            }
        }
    } else {
        for z in 0..gz {
            for y in 0..gy {
                for x in 0..gx {
                    run.run_cta([x, y, z])?;
                }
            }
        }
    }
    let mut stats = std::mem::take(&mut run.stats);
    stats.kernel = kernel.name().to_string();
    stats.grid = cfg.grid;
    stats.block = cfg.block;
    stats.dynamic_smem = cfg.dynamic_smem;
    stats.sim_seconds = started.elapsed().as_secs_f64();
    if sim.config().profile {
        eprintln!("{stats}");
    }
    Ok(stats)
}

/// What a launch needs to know before it runs: validated configuration, register banks, stack.
struct Plan {
    /// Register bank (first register index) of each function of the module; `u32::MAX` when the
    /// kernel cannot reach it.
    banks: Vec<u32>,
    regs: u32,
    /// Bytes of `.local` memory per lane (the deepest chain of call frames).
    stack: u32,
    threads: u32,
    smem_bytes: u32,
    /// Whether the kernel (or a function it calls) initializes an mbarrier or has a barrier with
    /// a thread count (which may be a barrier of some of the warps): its CTAs keep the read ticks
    /// that order shared memory between warps by ticks (`Shared::tick_order`).
    tick_order: bool,
}

impl Plan {
    fn new(sim: &Sim, kernel: &Kernel, cfg: &LaunchConfig, params: &[u8]) -> Result<Plan> {
        let m = &kernel.module;
        let f = kernel.function();
        let c = sim.config();
        let bad = |msg: String| Err(SimError::new(ErrorKind::InvalidValue, format!("launch of {}: {msg}", f.name)));
        if cfg.grid.contains(&0) || cfg.block.contains(&0) {
            return bad(format!("grid {:?} and block {:?} must have no zero dimension", cfg.grid, cfg.block));
        }
        let threads = cfg.block.iter().map(|&v| v as u64).product::<u64>();
        if threads > (c.max_threads_per_block as u64).min(32 * MAX_WARPS as u64) {
            return bad(format!(
                "{threads} threads per block; the device allows {}",
                c.max_threads_per_block.min(32 * MAX_WARPS as u32)
            ));
        }
        for (what, lim) in [(".maxntid", f.maxntid), (".reqntid", f.reqntid)] {
            if let Some(l) = lim {
                let ok =
                    if what == ".reqntid" { cfg.block == l } else { threads <= l.iter().map(|&v| v as u64).product() };
                if !ok {
                    return Err(SimError::new(
                        ErrorKind::OutOfResources,
                        format!("launch of {}: block {:?} does not fit the kernel's {what} {l:?}", f.name, cfg.block),
                    ));
                }
            }
        }
        if cfg.dynamic_smem > kernel.max_dynamic_smem() {
            return Err(SimError::new(
                ErrorKind::OutOfResources,
                format!(
                    "launch of {}: {} bytes of dynamic shared memory; the kernel allows {} (cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) raises it up to {})",
                    f.name,
                    cfg.dynamic_smem,
                    kernel.max_dynamic_smem(),
                    c.max_smem_optin
                ),
            ));
        }
        if let Some(k) = f.reqnctapercluster {
            // The driver refuses a grid that is not a whole number of clusters, a cluster larger
            // than the portable 8 CTAs, and one the device's SMs cannot hold at once.
            let size = k.iter().map(|&v| v as u64).product::<u64>();
            if (0..3).any(|d| cfg.grid[d] % k[d] != 0) {
                return bad(format!("grid {:?} is not a multiple of the kernel's .reqnctapercluster {k:?}", cfg.grid));
            }
            if size > MAX_CLUSTER as u64 {
                return bad(format!(".reqnctapercluster {k:?}: {size} CTAs per cluster; at most {MAX_CLUSTER}"));
            }
            if c.compute_capability.0 < 9 {
                return bad(format!(
                    "thread-block clusters need compute capability 9.0; the device is {}.{}",
                    c.compute_capability.0, c.compute_capability.1
                ));
            }
            if size > c.sm_count as u64 {
                return Err(SimError::new(
                    ErrorKind::OutOfResources,
                    format!(
                        "launch of {}: a cluster of {size} CTAs needs {size} SMs at once; the device has {}",
                        f.name, c.sm_count
                    ),
                ));
            }
        }
        if params.len() != f.param_bytes as usize {
            return bad(format!("{} parameter bytes given, the kernel takes {}", params.len(), f.param_bytes));
        }
        // Register banks and stack depth over the call graph (no recursion).
        let mut banks = vec![u32::MAX; m.functions.len()];
        let mut regs = 0u32;
        let mut stack = 0u32;
        let mut path = Vec::new();
        visit(m, kernel.index, 0, &mut banks, &mut regs, &mut stack, &mut path)?;
        let tick_order = m.functions.iter().zip(&banks).filter(|&(_, &b)| b != u32::MAX).any(|(f, _)| {
            m.code[f.start as usize..f.end as usize]
                .iter()
                .any(|i| matches!(i.op, Op::MbarInit { .. } | Op::BarSync { count: Some(_), .. }))
        });
        Ok(Plan {
            banks,
            regs,
            stack,
            threads: threads as u32,
            smem_bytes: m.dynamic_smem_offset + cfg.dynamic_smem,
            tick_order,
        })
    }
}

fn visit(
    m: &Module,
    fi: u32,
    depth: u32,
    banks: &mut [u32],
    regs: &mut u32,
    stack: &mut u32,
    path: &mut Vec<u32>,
) -> Result<()> {
    let f = &m.functions[fi as usize];
    if path.contains(&fi) {
        return Err(SimError::new(
            ErrorKind::InvalidValue,
            format!("{} is recursive: the simulator needs a bounded call depth", f.name),
        ));
    }
    if banks[fi as usize] == u32::MAX {
        banks[fi as usize] = *regs;
        *regs += f.reg_count.max(1);
    }
    let depth = depth + f.frame_bytes().div_ceil(16) * 16;
    *stack = (*stack).max(depth);
    path.push(fi);
    for inst in &m.code[f.start as usize..f.end as usize] {
        if let Op::Call { func, .. } = inst.op {
            visit(m, func, depth, banks, regs, stack, path)?;
        }
    }
    path.pop();
    Ok(())
}

/// One call frame of a lane: where to return and the caller's frame.
#[derive(Clone, Copy)]
struct Frame {
    call_pc: u32,
    base: u32,
}

struct Warp {
    /// Index in the CTA.
    id: u32,
    /// Registers: `regs[(bank + r) * 32 + lane]`.
    regs: Vec<u64>,
    pc: [u32; 32],
    /// The group to run next is cached: the lanes of `cmask` are at `cpc` (and `pc[]` may be
    /// stale for them), every other runnable lane is at `rest_min` (`u32::MAX`: none) or later,
    /// and `rest_min > cpc`. In the common case `cmask` is every runnable lane. `materialize`
    /// clears it before any other change of lane pcs or lane masks.
    conv: bool,
    cpc: u32,
    cmask: u32,
    rest_min: u32,
    valid: u32,
    exited: u32,
    /// Lanes waiting at `bar.sync` (barrier id per lane in `bar_id`).
    at_bar: u32,
    bar_id: [u8; 32],
    /// Lanes waiting at `shfl.sync` / `bar.warp.sync` for the rest of their member mask.
    at_wsync: u32,
    /// Member mask the parked lanes wait for.
    wsync_mask: u32,
    /// Lanes stopped after a failed `mbarrier.try_wait` or `test_wait` (each on the mbarrier and
    /// phase in `hop.poll`), until that phase completes; `yielded` is the subset stopped after a
    /// `test_wait`, which also run again once no other lane of the warp can.
    parked: u32,
    yielded: u32,
    tid: [[u64; 32]; 3],
    lane_id: [u64; 32],
    /// `.local` frame base of each lane.
    fbase: [u64; 32],
    frames: [Vec<Frame>; 32],
    local: Vec<u8>,
    hop: WarpHopper,
    /// Lanes that executed `barrier.cluster.arrive` in the cluster barrier's current phase, and
    /// lanes whose arrival's phase has completed and that have not yet executed the wait.
    cl_arrived: u32,
    cl_passed: u32,
    /// Cluster-barrier phases completed when a lane of this warp last returned from
    /// `barrier.cluster.wait`.
    cl_seen: u32,
    /// By cluster CTA rank: the newest tick (`Run::tick` of that CTA) up to which that CTA's
    /// shared-memory writes and remote reads are ordered before this warp's next accesses, by
    /// the cluster-scope releases this warp acquired (see `exec::cluster`).
    acquired: [u64; MAX_CLUSTER],
    /// The order of its lanes' shared-memory accesses among themselves.
    lanes: LaneOrder,
}

/// `LaneOrder::stamp`'s lane of a byte read by several lanes of one warp (`Shared::rl`).
const SEVERAL_LANES: u32 = 32;
/// Added to the lane of the first of several unordered stores of the same bytes by lanes of one
/// warp (`Shared::wl`): a store of the bytes already there is no race with another lane's
/// (every lane storing one value), but a later store of other bytes must follow all of them.
const SAME_STORES: u32 = 32;

/// The order among the lanes of one warp in shared memory. Lanes run independently (independent
/// thread scheduling): a lane's access is ordered after another lane's only through a barrier of
/// both, `bar.warp.sync` with both in its mask or a barrier of some warps that released both
/// together (a barrier of the whole CTA orders every access: `Run::epoch`), or through an
/// mbarrier phase the other lane arrived on after its access and this lane saw complete.
/// Shuffles, votes and the `.aligned` collectives order no memory. The warp numbers its barriers
/// and arrives; an access is stamped with the number of the last one and its lane.
#[derive(Clone, Copy, Default)]
struct LaneOrder {
    /// Barriers and arrives so far (26 bits; past that the order is no longer checked: `lost`).
    count: u32,
    /// The number of the last barrier of every live lane.
    all: u32,
    /// The last barriers of fewer lanes: (number, lanes), newest first.
    some: [(u32, u32); 4],
    /// The last orders through mbarriers (`handoff`): (number, lanes that arrived, lanes that
    /// acquired), newest first.
    handoffs: [(u32, u32, u32); 4],
    lost: bool,
}

impl LaneOrder {
    const MAX: u32 = (1 << 26) - 1;

    /// The stamp of an access by `lane` now.
    #[inline(always)]
    fn stamp(&self, lane: usize) -> u32 {
        (self.count << 6) | lane as u32
    }

    /// A new number (`None` once the count is spent: the order is then `lost`).
    fn next(&mut self) -> Option<u32> {
        if self.count == Self::MAX {
            self.lost = true;
            return None;
        }
        self.count += 1;
        Some(self.count)
    }

    /// The lanes `lanes` (of the live `live`) passed a barrier together.
    fn barrier(&mut self, lanes: u32, live: u32) {
        let Some(number) = self.next() else { return };
        if lanes & live == live {
            self.all = number;
        } else {
            self.some.rotate_right(1);
            self.some[0] = (number, lanes);
        }
    }

    /// Lanes arrive on an mbarrier (a release): a new number, so that their accesses before the
    /// arrive are told from those after it. The number.
    fn arrive(&mut self) -> u32 {
        self.next().unwrap_or(self.count)
    }

    /// Lane `to` saw complete mbarrier phases on which the lanes `from` arrived in one arrive,
    /// numbered `number` (`arrive`): their accesses before it are ordered before `to`'s from now
    /// on.
    fn handoff(&mut self, number: u32, from: u32, to: usize) {
        let t = 1u32 << to;
        if let Some(h) = self.handoffs.iter_mut().find(|h| h.1 == from && (h.0 == number || h.2 == t)) {
            // the same releases reaching another lane, or later ones of the same lanes to `to`
            if h.0 == number {
                h.2 |= t;
            } else {
                h.0 = h.0.max(number);
            }
            return;
        }
        self.handoffs.rotate_right(1);
        self.handoffs[0] = (number, from, t);
    }

    /// Whether an access by `lane` now is ordered after the access of this warp stamped `s`.
    #[inline(always)]
    fn after(&self, s: u32, lane: usize) -> bool {
        let (n, l) = (s >> 6, s & 63);
        if l == lane as u32 || self.after_all(s) {
            return true;
        }
        if l == SEVERAL_LANES {
            return false;
        }
        let (me, other) = (1u32 << lane, 1u32 << l);
        let both = me | other;
        self.some.iter().any(|&(b, m)| b > n && m & both == both)
            || self.handoffs.iter().any(|&(b, f, t)| b > n && f & other != 0 && t & me != 0)
    }

    /// Whether an access now is ordered after every access of this warp before the stamp `s`
    /// (a barrier of every live lane since).
    #[inline(always)]
    fn after_all(&self, s: u32) -> bool {
        self.all > s >> 6 || self.lost
    }

    /// The read stamp of a byte that this warp read (stamp `s`) and `lane` reads now: this
    /// lane's when the earlier reads are ordered before this one (a later access ordered after
    /// this read is then ordered after them too), else several lanes'.
    #[inline(always)]
    fn read(&self, s: u32, lane: usize) -> u32 {
        if self.after(s, lane) { self.stamp(lane) } else { (self.count << 6) | SEVERAL_LANES }
    }
}

impl Warp {
    /// The 32 lanes of register `r` of the bank starting at `bank`.
    #[inline(always)]
    fn reg(&self, bank: usize, r: Reg) -> &[u64; 32] {
        let b = (bank + r as usize) * 32;
        self.regs[b..b + 32].try_into().expect("a register has 32 lanes")
    }
    #[inline(always)]
    fn reg_mut(&mut self, bank: usize, r: Reg) -> &mut [u64; 32] {
        let b = (bank + r as usize) * 32;
        (&mut self.regs[b..b + 32]).try_into().expect("a register has 32 lanes")
    }
    /// Lanes waiting at barrier `id` (`CLUSTER_BAR`: at `barrier.cluster.wait`).
    fn waiting_at(&self, id: u8) -> u32 {
        lanes(self.at_bar).filter(|&l| self.bar_id[l] == id).fold(0, |m, l| m | 1 << l)
    }
    fn runnable(&self) -> u32 {
        self.valid & !(self.exited | self.at_bar | self.at_wsync | self.parked)
    }
    fn live(&self) -> u32 {
        self.valid & !self.exited
    }
    /// Whether the scheduler may give it a turn (some lane runnable or yielded after a
    /// `test_wait`, and the warp not waiting for registers).
    fn can_run(&self) -> bool {
        !self.hop.reg_wait && (self.runnable() | self.yielded) != 0
    }
    /// Makes the parked lanes of `mask` runnable again.
    fn wake(&mut self, mask: u32) {
        if self.parked & mask != 0 {
            self.materialize();
            self.parked &= !mask;
            self.yielded &= !mask;
        }
    }
    /// Writes `cpc` into `pc[]` for the lanes it stands for.
    fn materialize(&mut self) {
        if self.conv {
            for l in lanes(self.cmask) {
                self.pc[l] = self.cpc;
            }
            self.conv = false;
        }
    }
    /// The group to run next: the runnable lanes at the lowest program counter; with none, the
    /// lanes that yielded after a failed `test_wait`.
    fn pick(&mut self) -> Option<(u32, u32)> {
        let mut r = self.runnable();
        if r == 0 {
            if self.yielded == 0 {
                return None;
            }
            self.wake(self.yielded);
            r = self.runnable();
        }
        if self.conv {
            return Some((self.cpc, self.cmask));
        }
        // The lowest pc, its lanes, and the next lowest pc.
        let (mut pc, mut mask, mut rest) = (u32::MAX, 0u32, u32::MAX);
        for l in lanes(r) {
            let p = self.pc[l];
            if p < pc {
                rest = pc;
                pc = p;
                mask = 1 << l;
            } else if p == pc {
                mask |= 1 << l;
            } else if p < rest {
                rest = p;
            }
        }
        self.conv = true;
        self.cpc = pc;
        self.cmask = mask;
        self.rest_min = rest;
        Some((pc, mask))
    }
    /// Moves the lanes of `mask` (all at `pc`) to `to`.
    fn set_pc(&mut self, pc: u32, mask: u32, to: u32) {
        let _ = pc;
        if self.conv && mask == self.cmask && to < self.rest_min {
            // Still the group at the lowest pc.
            self.cpc = to;
            return;
        }
        self.materialize();
        for l in lanes(mask) {
            self.pc[l] = to;
        }
    }
}

#[inline]
fn lanes(mask: u32) -> impl Iterator<Item = usize> {
    let mut m = mask;
    std::iter::from_fn(move || {
        if m == 0 {
            None
        } else {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            Some(l)
        }
    })
}

/// A number per launch, for the race shadow.
static LAUNCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Buffers of finished launches, kept per host thread for its next launch: register files,
/// local memories and shared-memory state reach megabytes, which fresh allocations would have
/// the operating system fault in and zero page by page. They are handed out zeroed, as new.
#[derive(Default)]
struct Spare {
    regs: Vec<Vec<u64>>,
    local: Vec<Vec<u8>>,
    shared: Option<(Shared, Vec<u32>, Vec<Mbar>)>,
}

/// Register files and local memories kept (one block's worth at most).
const SPARE_WARPS: usize = 32;

thread_local! {
    static SPARE: std::cell::RefCell<Spare> = std::cell::RefCell::new(Spare::default());
}

/// `v` with `n` default (zero) elements, reusing its allocation.
fn zeroed<T: Clone + Default>(mut v: Vec<T>, n: usize) -> Vec<T> {
    v.clear();
    v.resize(n, T::default());
    v
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        let shared = std::mem::take(&mut self.shared);
        let (tma_tag, mbars) = (std::mem::take(&mut self.tma_tag), std::mem::take(&mut self.mbars));
        let warps = std::mem::take(&mut self.warps);
        // A launch in a thread's destructors finds the pool gone and frees its buffers.
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            for w in warps {
                if s.regs.len() < SPARE_WARPS {
                    s.regs.push(w.regs);
                    s.local.push(w.local);
                }
            }
            s.shared = Some((shared, tma_tag, mbars));
        });
    }
}

/// Per-CTA shared memory with its shadows.
#[derive(Default)]
struct Shared {
    data: Vec<u8>,
    init: Vec<u8>,
    /// `(epoch << 6) | (warp + 1)` of the last writer / reader (`63` = several readers).
    w: Vec<u32>,
    r: Vec<u32>,
    /// The lanes within the warp of `w` and `r` (`LaneOrder::stamp`): the lane that wrote last
    /// (with `SAME_STORES`: the first of the lanes that stored these bytes since), and the lane
    /// (or `SEVERAL_LANES`) that read since, each with the warp's count of barriers and arrives
    /// then.
    wl: Vec<u32>,
    rl: Vec<u32>,
    /// `(tick << 6) | (warp + 1)` of the last read (`Run::tick` when it read): with `r`, when one
    /// warp read a byte in the current epoch, that warp's last read of it.
    rt: Vec<u64>,
    /// Bytes several warps read in an epoch (`r` ends in 63): that epoch and, by reader, the
    /// tick of its last read. A write by another warp is ordered after those reads when it
    /// acquired each reader's later release (below).
    readers: HashMap<usize, (u32, Vec<(u8, u64)>)>,
    /// Whether `rt` and `readers` are kept (`Plan::tick_order`: without an mbarrier or a barrier
    /// of some of the warps, only the CTA's epoch orders accesses).
    tick_order: bool,
    /// The CTA-scope releases of each mbarrier's arrivals (`exec::hopper`, "Order through
    /// mbarriers").
    releases: Vec<LocalRelease>,
    /// The releases of each warp's lanes on each mbarrier (`exec::hopper`, `LaneRelease`).
    lane_releases: Vec<LaneRelease>,
    /// The tick (`Run::tick`) of the last generic-proxy write of each byte; 0 once the async
    /// proxy (a TMA load) wrote it last.
    generic: Vec<u64>,
    /// Empty until another CTA of the cluster reads this CTA's shared memory
    /// (`ld.shared::cluster`); then per byte `(reader rank + 1) << 60 | reader's tick` of the
    /// last remote read not yet ordered before a write of the byte (0: none).
    remote: Vec<u64>,
}

/// Whether every shadow byte has `INIT` (8 bytes at a time).
#[inline(always)]
fn all_written(sh: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut chunks = sh.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if v & ONES != ONES {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b & INIT != 0)
}

/// The `len` (1, 2, 4, 8 or 16) bytes at `p` as a little-endian number (one load, where a
/// byte copy would cost a call to `memcpy` per lane).
///
/// # Safety
/// `p` must be readable for `len` bytes.
#[inline(always)]
unsafe fn load_le(p: *const u8, len: usize) -> u128 {
    debug_assert!(len.is_power_of_two() && len <= 16);
    // SAFETY: the caller's contract; unaligned reads of `len` bytes.
    unsafe {
        match len {
            1 => *p as u128,
            2 => u16::from_le(p.cast::<u16>().read_unaligned()) as u128,
            4 => u32::from_le(p.cast::<u32>().read_unaligned()) as u128,
            8 => u64::from_le(p.cast::<u64>().read_unaligned()) as u128,
            _ => u128::from_le(p.cast::<u128>().read_unaligned()),
        }
    }
}

/// Writes the low `len` (1, 2, 4, 8 or 16) bytes of `x` at `p`, little-endian.
///
/// # Safety
/// `p` must be writable for `len` bytes.
#[inline(always)]
unsafe fn store_le(p: *mut u8, len: usize, x: u128) {
    debug_assert!(len.is_power_of_two() && len <= 16);
    // SAFETY: the caller's contract; unaligned writes of `len` bytes.
    unsafe {
        match len {
            1 => *p = x as u8,
            2 => p.cast::<u16>().write_unaligned((x as u16).to_le()),
            4 => p.cast::<u32>().write_unaligned((x as u32).to_le()),
            8 => p.cast::<u64>().write_unaligned((x as u64).to_le()),
            _ => p.cast::<u128>().write_unaligned(x.to_le()),
        }
    }
}

/// Element `k` of `esz` (1, 2, 4 or 8) bytes of the little-endian bytes `x`.
#[inline(always)]
fn element(x: u128, k: usize, esz: usize) -> u64 {
    let v = (x >> (8 * esz * k)) as u64;
    if esz >= 8 { v } else { v & ((1u64 << (8 * esz)) - 1) }
}

/// The elements `vals[k][lane]` of `esz` bytes each, packed little-endian (at most 16 bytes).
#[inline(always)]
fn pack(vals: &[[u64; 32]], lane: usize, esz: usize) -> u128 {
    let mask = if esz >= 8 { u64::MAX } else { (1u64 << (8 * esz)) - 1 };
    vals.iter().rev().fold(0u128, |x, v| (x << (8 * esz)) | (v[lane] & mask) as u128)
}

/// Where the accesses of all active lanes land, when they are in one place (`Run::bulk`).
#[derive(Clone, Copy)]
enum Bulk {
    /// In this allocation.
    Global(usize),
    /// In shared memory, at offset `address - bias`.
    Shared(u64),
    /// In each lane's local memory, at `address - bias`.
    Local(u64),
    Param,
}

/// Where one lane's access lands.
enum Loc {
    Global(usize, u64),
    Shared(usize),
    Local(usize),
    Param(usize),
}

/// The state of one CTA of a running cluster that is not the one in `Run`'s fields (they are
/// exchanged field by field, `Run::exchange`).
#[derive(Default)]
struct CtaState {
    shared: Shared,
    warps: Vec<Warp>,
    ctaid: [u32; 3],
    cta_linear: u32,
    bar_arrived: [u32; 16],
    bar_expected: [u32; 16],
    epoch: u32,
    mbars: Vec<Mbar>,
    copy_tags: Vec<(usize, u32)>,
    tma_tag: Vec<u32>,
    copies_in_flight: Vec<Copy>,
    wgmma_in_flight: usize,
    mbar_version: u64,
    woken_at: u64,
    tick: u64,
    bulk_reads: Vec<hopper::BulkRead>,
}

/// The `bar_id` of lanes waiting at `barrier.cluster.wait` (named barriers are 0..16).
const CLUSTER_BAR: u8 = 16;

/// A cluster launch's shape and the bookkeeping of the running cluster.
struct Cluster {
    /// `.reqnctapercluster` (1 × 1 × 1 without), and whether the kernel gave it.
    dims: [u32; 3],
    explicit: bool,
    size: u32,
    /// The rank of the CTA in `Run`'s fields.
    rank: u32,
    /// The other CTAs' states by rank (the entry of `rank` holds nothing while it runs).
    peers: Vec<CtaState>,
    /// Ranks whose CTA has exited.
    done: Vec<bool>,
    /// `touched[p * size + r]`: the cluster barrier's phase count at CTA p's last mbarrier arrive
    /// on, or multicast copy into, CTA r's shared memory (+ 1 when the issuing thread had already
    /// arrived in that phase); `u32::MAX`: never.
    touched: Vec<u32>,
    /// Completed phases of the cluster barrier, and whether some thread has arrived in the
    /// current one.
    phase: u32,
    pending: bool,
    /// While a multicast copy lands in a peer: the issuing CTA (for reports).
    landing_from: Option<[u32; 3]>,
    /// Cluster-scope releases on the mbarriers of the cluster's CTAs (see `exec::cluster`).
    releases: Vec<cluster::Release<MAX_CLUSTER>>,
    /// Cluster-scope releases of the cluster barrier: by rank, of the current phase's arrivals
    /// and of every completed phase (the ticks `Warp::acquired` takes at the wait).
    bar_cur: [u64; MAX_CLUSTER],
    bar_done: [u64; MAX_CLUSTER],
}

impl Cluster {
    fn single(dims: Option<[u32; 3]>) -> Cluster {
        let dims_v = dims.unwrap_or([1, 1, 1]);
        let size = dims_v.iter().product::<u32>();
        Cluster {
            dims: dims_v,
            explicit: dims.is_some(),
            size,
            rank: 0,
            peers: Vec::new(),
            done: vec![false; size as usize],
            touched: vec![u32::MAX; (size * size) as usize],
            phase: 0,
            pending: false,
            landing_from: None,
            releases: Vec::new(),
            bar_cur: [0; MAX_CLUSTER],
            bar_done: [0; MAX_CLUSTER],
        }
    }
}

struct Run<'a> {
    sim: &'a Sim,
    kernel: &'a Kernel,
    m: &'a Module,
    plan: &'a Plan,
    cfg: LaunchConfig,
    params: &'a [u8],
    snap: Snapshot,
    /// This launch's tag in the race shadow (24 bits).
    launch_tag: u64,
    last_alloc: usize,
    shared: Shared,
    warps: Vec<Warp>,
    ctaid: [u32; 3],
    cta_linear: u32,
    /// Barrier state of the CTA: arrivals per barrier id.
    bar_arrived: [u32; 16],
    bar_expected: [u32; 16],
    /// Incremented at every barrier release (orders shared-memory accesses).
    epoch: u32,
    rng: Option<u64>,
    stats: LaunchStats,
    sectors: Vec<u64>,
    executed: u64,
    /// mbarriers by 8-byte slot of shared memory.
    mbars: Vec<Mbar>,
    /// (mbarrier slot, phase) of each TMA copy landed in this CTA; `tma_tag[byte]` is 1 + the
    /// index of the copy that last wrote a shared byte (0: none).
    copy_tags: Vec<(usize, u32)>,
    tma_tag: Vec<u32>,
    copies_in_flight: Vec<Copy>,
    wgmma_in_flight: usize,
    /// Counts every change of an mbarrier; `woken_at` is its value when parked warps were last
    /// woken as if their `try_wait` had timed out.
    mbar_version: u64,
    woken_at: u64,
    /// Counts generic-proxy shared writes, proxy fences, remote reads, mbarrier arrives and
    /// barriers of some of the warps (orders them: `Shared::generic`, `Shared::rt`, the releases
    /// of `exec::cluster` and `exec::hopper`).
    tick: u64,
    /// TMA stores whose reads of shared memory no `cp.async.bulk.wait_group` has retired yet.
    bulk_reads: Vec<hopper::BulkRead>,
    cluster: Cluster,
}

/// What stopped a warp's turn.
#[derive(PartialEq, Eq, Debug)]
enum Turn {
    /// Used its quantum; can run on.
    Yield,
    /// A group stopped to wait, or no lane is runnable (waiting or exited); the warp may still
    /// have other lanes to run.
    Blocked,
}

impl<'a> Run<'a> {
    fn new(sim: &'a Sim, kernel: &'a Kernel, plan: &'a Plan, cfg: &LaunchConfig, params: &'a [u8]) -> Run<'a> {
        let snap = sim.memory.snapshot();
        let n = plan.smem_bytes as usize;
        let nwarps = plan.threads.div_ceil(32);
        let mut spare = SPARE.try_with(|s| std::mem::take(&mut *s.borrow_mut())).unwrap_or_default();
        let (shared, tma_tag, mbars) = spare.shared.take().unwrap_or_default();
        let shared = Shared {
            data: zeroed(shared.data, n),
            init: zeroed(shared.init, n),
            w: zeroed(shared.w, n),
            r: zeroed(shared.r, n),
            wl: zeroed(shared.wl, n),
            rl: zeroed(shared.rl, n),
            generic: zeroed(shared.generic, n),
            remote: zeroed(shared.remote, 0),
            rt: zeroed(shared.rt, n),
            readers: shared.readers,
            tick_order: false,
            releases: shared.releases,
            lane_releases: shared.lane_releases,
        };
        let (tma_tag, mbars) = (zeroed(tma_tag, n), zeroed(mbars, n / 8));
        let warps = new_warps(plan, nwarps, &mut spare);
        let _ = SPARE.try_with(|s| *s.borrow_mut() = spare);
        Run {
            sim,
            kernel,
            m: &kernel.module,
            plan,
            cfg: *cfg,
            params,
            launch_tag: LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 0xff_ffff + 1,
            snap,
            last_alloc: 0,
            shared,
            warps,
            ctaid: [0; 3],
            cta_linear: 0,
            bar_arrived: [0; 16],
            bar_expected: [0; 16],
            epoch: 1,
            rng: sim.config().seed.map(|s| s ^ 0x9e37_79b9_7f4a_7c15),
            stats: LaunchStats::default(),
            sectors: Vec::with_capacity(64),
            executed: 0,
            mbars,
            copy_tags: Vec::new(),
            tma_tag,
            copies_in_flight: Vec::new(),
            wgmma_in_flight: 0,
            mbar_version: 0,
            woken_at: u64::MAX,
            tick: 0,
            bulk_reads: Vec::new(),
            cluster: Cluster::single(kernel.function().reqnctapercluster),
        }
    }
}

/// The warps of one CTA, their register files and local memories zeroed (from `spare` where it
/// has them).
fn new_warps(plan: &Plan, nwarps: u32, spare: &mut Spare) -> Vec<Warp> {
    (0..nwarps)
        .map(|id| Warp {
            id,
            regs: zeroed(spare.regs.pop().unwrap_or_default(), plan.regs as usize * 32),
            pc: [0; 32],
            conv: false,
            cpc: 0,
            cmask: 0,
            rest_min: u32::MAX,
            valid: 0,
            exited: 0,
            at_bar: 0,
            bar_id: [0; 32],
            at_wsync: 0,
            wsync_mask: 0,
            parked: 0,
            yielded: 0,
            tid: [[0; 32]; 3],
            lane_id: std::array::from_fn(|l| l as u64),
            fbase: [0; 32],
            frames: std::array::from_fn(|_| Vec::new()),
            local: zeroed(spare.local.pop().unwrap_or_default(), plan.stack as usize * 32),
            hop: WarpHopper::default(),
            cl_arrived: 0,
            cl_passed: 0,
            cl_seen: 0,
            acquired: [0; MAX_CLUSTER],
            lanes: LaneOrder::default(),
        })
        .collect()
}

impl<'a> Run<'a> {
    fn next_rand(&mut self) -> u64 {
        let s = self.rng.get_or_insert(1);
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Resets the CTA state in `Run`'s fields for CTA `ctaid` (warps at the entry, shared memory
    /// never written, no barrier, mbarrier or copy).
    fn init_cta(&mut self, ctaid: [u32; 3]) {
        self.ctaid = ctaid;
        let [gx, gy, _] = self.cfg.grid;
        self.cta_linear = ctaid[0] + gx * (ctaid[1] + gy * ctaid[2]);
        let [bx, by, _] = self.cfg.block;
        let threads = self.plan.threads;
        let entry = &self.m.functions[self.kernel.index as usize];
        // Registers per thread at launch: the SM's registers over the block, in steps of 8.
        let nregs = ((self.sim.config().regs_per_sm / (self.warps.len() as u32 * 32)) / 8 * 8).min(255);
        for w in &mut self.warps {
            w.hop.reset(nregs);
            let first = w.id * 32;
            let n = (threads - first).min(32);
            w.valid = if n == 32 { FULL } else { (1u32 << n) - 1 };
            w.exited = 0;
            w.at_bar = 0;
            w.at_wsync = 0;
            w.parked = 0;
            w.yielded = 0;
            w.cl_arrived = 0;
            w.cl_passed = 0;
            w.cl_seen = 0;
            w.acquired = [0; MAX_CLUSTER];
            w.lanes = LaneOrder::default();
            w.conv = true;
            w.cpc = entry.start;
            w.cmask = w.valid;
            w.rest_min = u32::MAX;
            for l in 0..32 {
                let t = first + l as u32;
                w.tid[0][l] = (t % bx) as u64;
                w.tid[1][l] = ((t / bx) % by) as u64;
                w.tid[2][l] = (t / (bx * by)) as u64;
                w.fbase[l] = 0;
                w.frames[l].clear();
                w.pc[l] = entry.start;
            }
        }
        self.shared.init.fill(0);
        self.shared.w.fill(0);
        self.shared.r.fill(0);
        // `wl` and `rl` are read only where `w` or `r` holds this CTA's stamp: no reset.
        self.shared.generic.fill(0);
        self.shared.remote.clear();
        self.shared.readers.clear();
        self.shared.tick_order = self.plan.tick_order;
        self.shared.releases.clear();
        self.shared.lane_releases.clear();
        self.tick = 0;
        self.bulk_reads.clear();
        self.bar_arrived = [0; 16];
        self.epoch = 1;
        self.mbars.fill(Mbar::default());
        if !self.copy_tags.is_empty() {
            self.copy_tags.clear();
            self.tma_tag.fill(0);
        }
        self.copies_in_flight.clear();
        self.wgmma_in_flight = 0;
        self.mbar_version = 0;
        self.woken_at = u64::MAX;
    }

    /// Seeded: one time in three, lands a random copy in flight now (a TMA copy completing out of
    /// order). Whether it did.
    fn land_random_copy(&mut self) -> Result<bool> {
        if self.rng.is_some() && !self.copies_in_flight.is_empty() && self.next_rand() % 3 == 0 {
            let i = (self.next_rand() as usize) % self.copies_in_flight.len();
            let c = self.copies_in_flight.swap_remove(i);
            self.land(c)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// One turn of the current CTA: the first runnable warp from `start` (round robin; seeded, a
    /// random pick for a random quantum) runs until it blocks, then the barriers it may complete
    /// are released. The warp that ran, if any could.
    fn run_one_warp(&mut self, start: usize) -> Result<Option<usize>> {
        let n = self.warps.len();
        for k in 0..n {
            let wi = if self.rng.is_some() { (self.next_rand() as usize) % n } else { (start + k) % n };
            if !self.warps[wi].can_run() {
                continue;
            }
            let quantum = if self.rng.is_some() { 1 + self.next_rand() % 48 } else { u64::MAX };
            self.run_warp(wi, quantum)?;
            self.release_barriers()?;
            if self.cluster.pending {
                self.release_cluster_barrier();
            }
            return Ok(Some(wi));
        }
        Ok(None)
    }

    fn run_cta(&mut self, ctaid: [u32; 3]) -> Result<()> {
        self.init_cta(ctaid);
        // Round-robin over warps; each runs until it blocks (or, seeded, for a random quantum).
        let mut cur = 0usize;
        loop {
            self.unpark();
            if self.land_random_copy()? {
                continue;
            }
            let ran = self.run_one_warp(cur)?;
            if let Some(wi) = ran {
                cur = wi + 1;
            }
            if ran.is_none() {
                // Seeded picks may miss a runnable warp: look at all before concluding.
                if self.warps.iter().any(|w| w.can_run()) {
                    continue;
                }
                // Copies still in flight land before anything is concluded.
                if let Some(c) = self.copies_in_flight.pop() {
                    self.land(c)?;
                    continue;
                }
                if self.warps.iter().all(|w| w.live() == 0) {
                    self.check_bulk_reads_at_exit()?;
                    return self.check_warpgroups();
                }
                self.release_barriers()?;
                self.unpark();
                if self.warps.iter().any(|w| w.can_run()) {
                    continue;
                }
                if self.wake_pollers() {
                    continue;
                }
                return Err(self.deadlock());
            }
        }
    }

    /// Wakes the lanes parked on an mbarrier whose phase has moved on.
    fn unpark(&mut self) {
        for w in &mut self.warps {
            if w.parked == 0 {
                continue;
            }
            let mut moved = 0u32;
            for l in lanes(w.parked) {
                let (slot, phase) = w.hop.poll[l];
                if self.mbars.get(slot as usize).is_none_or(|b| b.phase != phase) {
                    moved |= 1 << l;
                }
            }
            w.wake(moved);
        }
    }

    /// With no thread of the CTA able to run otherwise: `try_wait` returns false once its time
    /// limit passes, so the parked lanes run again, once per change of any mbarrier (woken again
    /// with nothing changed, they would never finish). Whether any lane woke.
    fn wake_pollers(&mut self) -> bool {
        if self.woken_at == self.mbar_version || self.warps.iter().all(|w| w.parked == 0) {
            return false;
        }
        self.woken_at = self.mbar_version;
        for w in &mut self.warps {
            w.wake(FULL);
        }
        true
    }

    /// Releases every barrier whose arrivals are complete.
    fn release_barriers(&mut self) -> Result<()> {
        let live: u32 = self.warps.iter().map(|w| w.live().count_ones()).sum();
        for id in 0..16 {
            if self.bar_arrived[id] == 0 {
                continue;
            }
            let expected = if self.bar_expected[id] == 0 { live } else { self.bar_expected[id] };
            if self.bar_arrived[id] >= expected {
                self.bar_arrived[id] = 0;
                self.bar_expected[id] = 0;
                if expected < live {
                    // A barrier of some of the warps orders their accesses only: each takes the
                    // others' order (`WarpHopper::ordered`), the CTA's epoch stays.
                    self.tick += 1;
                    let t = self.tick;
                    let mut j = [0u64; MAX_WARPS];
                    for (i, w) in self.warps.iter().enumerate().filter(|(_, w)| w.waiting_at(id as u8) != 0) {
                        cluster::max_into(&mut j, &w.hop.ordered);
                        j[i] = t;
                    }
                    for w in self.warps.iter_mut() {
                        let waiting = w.waiting_at(id as u8);
                        if waiting != 0 {
                            w.hop.ordered = j;
                            w.lanes.barrier(waiting, w.live());
                        }
                    }
                } else {
                    self.epoch += 1;
                }
                if self.cluster.size > 1 {
                    self.share_acquired(id as u8);
                }
                for w in &mut self.warps {
                    let waiting = w.waiting_at(id as u8);
                    if waiting == 0 {
                        continue;
                    }
                    w.materialize();
                    w.at_bar &= !waiting;
                    for l in lanes(waiting) {
                        w.pc[l] += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn deadlock(&self) -> SimError {
        let mut msg = format!("{}: deadlock in CTA {:?}: no warp can run.", self.kernel.name(), self.ctaid);
        for id in 0..16 {
            if self.bar_arrived[id] != 0 {
                let live: u32 = self.warps.iter().map(|w| w.live().count_ones()).sum();
                let exp = if self.bar_expected[id] == 0 { live } else { self.bar_expected[id] };
                msg += &format!(" Barrier {id}: {} of {exp} threads arrived.", self.bar_arrived[id]);
            }
        }
        msg += &self.mbar_report();
        for w in &self.warps {
            let at_cluster = w.waiting_at(CLUSTER_BAR);
            for (what, mask) in [
                ("bar.sync", w.at_bar & !at_cluster),
                ("barrier.cluster.wait", at_cluster),
                ("a warp-synchronous instruction", w.at_wsync),
            ] {
                // One entry per group of lanes at one instruction.
                let mut left = mask;
                while left != 0 {
                    let at = w.pc[left.trailing_zeros() as usize];
                    let group = lanes(left).filter(|&l| w.pc[l] == at).fold(0u32, |m, l| m | 1 << l);
                    left &= !group;
                    let line = self.m.code.get(at as usize).map_or(0, |i| i.line);
                    msg += &format!(
                        " Warp {} lanes {group:#010x} wait at {what} (line {line}: `{}`).",
                        w.id,
                        self.m.source_line(line)
                    );
                }
            }
            let gone = w.valid & w.exited;
            if gone != 0 && w.live() != 0 {
                msg += &format!(" Warp {} lanes {gone:#010x} have exited.", w.id);
            }
        }
        SimError::new(ErrorKind::LaunchFailed, msg)
    }

    /// An error at `pc` for `lane` of warp `wi`.
    fn fault(&self, kind: ErrorKind, wi: usize, lane: usize, pc: u32, what: String) -> SimError {
        let w = &self.warps[wi];
        let inst = &self.m.code[pc as usize];
        // While a peer's memory is operated on, the thread is the issuing CTA's (same warp and
        // lane numbering in every CTA).
        let (cta, what) = match self.cluster.landing_from {
            Some(from) => (
                from,
                format!(
                    "{what} (in the shared memory of CTA ({}, {}, {}) of its cluster)",
                    self.ctaid[0], self.ctaid[1], self.ctaid[2]
                ),
            ),
            None => (self.ctaid, what),
        };
        SimError::new(
            kind,
            format!(
                "{} in kernel {}, CTA ({}, {}, {}), thread ({}, {}, {}) (warp {}, lane {lane}), PTX line {}: `{}`",
                what,
                self.kernel.name(),
                cta[0],
                cta[1],
                cta[2],
                w.tid[0][lane],
                w.tid[1][lane],
                w.tid[2][lane],
                w.id,
                inst.line,
                self.m.source_line(inst.line)
            ),
        )
    }

    fn run_warp(&mut self, wi: usize, mut quantum: u64) -> Result<Turn> {
        let code = &self.m.code;
        loop {
            if quantum == 0 {
                return Ok(Turn::Yield);
            }
            quantum -= 1;
            let Some((pc, group)) = self.warps[wi].pick() else { return Ok(Turn::Blocked) };
            let Some(inst) = code.get(pc as usize) else {
                let l = group.trailing_zeros() as usize;
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    l,
                    pc.saturating_sub(1),
                    "ran past the end of the function".into(),
                ));
            };
            self.executed += 1;
            if self.executed > MAX_WARP_INSTS {
                let l = group.trailing_zeros() as usize;
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    l,
                    pc,
                    format!("launch ran past {MAX_WARP_INSTS} warp-instructions (an endless loop?)"),
                ));
            }
            let bank = self.plan.banks[inst.func as usize] as usize;
            let active = match inst.guard {
                None => group,
                Some((p, neg)) => {
                    let pr = self.warps[wi].reg(bank, p);
                    let mut m = 0u32;
                    for (l, v) in pr.iter().enumerate() {
                        m |= ((v & 1) as u32) << l;
                    }
                    (if neg { !m } else { m }) & group
                }
            };
            self.stats.warp_insts[class(&inst.op) as usize] += 1;
            self.stats.lane_insts += active.count_ones() as u64;
            if !self.warps[wi].hop.inflight.is_empty() && active != 0 {
                self.check_inflight(wi, pc, bank, inst, active.trailing_zeros() as usize)?;
            }
            let next = self.step(wi, pc, group, active, bank, inst)?;
            match next {
                Next::Pc(to) => self.warps[wi].set_pc(pc, group, to),
                Next::Split { taken, target } => {
                    let w = &mut self.warps[wi];
                    let not_taken = group & !taken;
                    if not_taken == 0 {
                        w.set_pc(pc, group, target);
                    } else if taken == 0 {
                        w.set_pc(pc, group, pc + 1);
                    } else {
                        w.materialize();
                        for l in lanes(taken) {
                            w.pc[l] = target;
                        }
                        for l in lanes(not_taken) {
                            w.pc[l] = pc + 1;
                        }
                    }
                }
                Next::PerLane => {}
                Next::Wait => return Ok(Turn::Blocked),
                Next::Park { polled, test } => {
                    // Only the lanes that polled stop; the warp's other lanes (at other pcs, or
                    // whose guard was false) stay runnable, as independent thread scheduling
                    // lets them make progress on a GPU.
                    let w = &mut self.warps[wi];
                    w.set_pc(pc, group, pc + 1);
                    if test && w.runnable() & !polled == 0 {
                        // A `test_wait` never blocks: with no other lane of the warp to run, the
                        // group polls on, the other warps taking their turns in between.
                        return Ok(Turn::Yield);
                    }
                    w.materialize();
                    w.parked |= polled;
                    if test {
                        w.yielded |= polled;
                        return Ok(Turn::Yield);
                    }
                    return Ok(Turn::Blocked);
                }
                Next::RegWait => return Ok(Turn::Blocked),
            }
        }
    }
}

/// Where a group goes after an instruction.
enum Next {
    /// Every lane of the group to this pc.
    Pc(u32),
    /// `taken` lanes to `target`, the rest of the group to the next instruction.
    Split { taken: u32, target: u32 },
    /// The instruction set each lane's pc itself.
    PerLane,
    /// The group waits (barrier, warp sync); the warp's turn ends.
    Wait,
    /// The group moves on, and its lanes `polled` (whose `try_wait`, or `test_wait` when `test`,
    /// found no phase complete) stop until the phase they polled (`WarpHopper::poll`) moves on.
    Park { polled: u32, test: bool },
    /// The group stays (`setmaxnreg.inc` without registers to take); the warp waits.
    RegWait,
}

fn class(op: &Op) -> Class {
    use Op::*;
    match op {
        Ld { .. }
        | St { .. }
        | Atom { .. }
        | Shfl { .. }
        | MbarInit { .. }
        | MbarArrive { .. }
        | MbarExpectTx { .. }
        | MbarTryWait { .. }
        | CpAsyncBulkTensor { .. }
        | TmaStore { .. }
        | StMatrix { .. } => Class::Memory,
        FAdd { ty, .. }
        | FSub { ty, .. }
        | FMul { ty, .. }
        | Fma { ty, .. }
        | FDiv { ty, .. }
        | FMin { ty, .. }
        | FMax { ty, .. }
        | HMinMax { ty, .. }
        | FNeg { ty, .. }
        | FAbs { ty, .. }
        | Rcp { ty, .. }
        | Sqrt { ty, .. } => {
            if *ty == Ty::F64 {
                Class::F64
            } else {
                Class::F32
            }
        }
        Setp { ty, .. } if ty.is_float() => {
            if *ty == Ty::F64 {
                Class::F64
            } else {
                Class::F32
            }
        }
        Cvt { .. } => Class::Conversion,
        Bra { .. } | BrxIdx { .. } | Call { .. } | Ret | Exit | Trap | BarSync { .. } | BarWarpSync { .. } => {
            Class::Control
        }
        _ => Class::Integer,
    }
}

/// A value of type `ty` from a register's bits: zero-extended, or sign-extended for `.sN`.
#[inline(always)]
fn ext(v: u64, ty: Ty) -> u64 {
    match ty {
        Ty::S8 => v as i8 as i64 as u64,
        Ty::S16 => v as i16 as i64 as u64,
        Ty::S32 => v as i32 as i64 as u64,
        Ty::S64 => v,
        _ => v & ty.mask(),
    }
}

/// `ext` for one type, its dispatch done once: `Ext::new(ty).of(v) == ext(v, ty)`.
#[derive(Clone, Copy)]
struct Ext {
    shift: u32,
    signed: bool,
    mask: u64,
}

impl Ext {
    fn new(ty: Ty) -> Ext {
        Ext { shift: 64 - ty.bits(), signed: ty.is_signed(), mask: ty.mask() }
    }
    #[inline(always)]
    fn of(self, v: u64) -> u64 {
        if self.signed { (((v << self.shift) as i64) >> self.shift) as u64 } else { v & self.mask }
    }
}

/// The bits `mul_int` keeps of the product of two extended operands, for `.lo` and `.wide`.
fn product_mask(ty: Ty, mode: MulMode) -> u64 {
    let bits = ty.bits();
    match mode {
        MulMode::Wide if bits < 32 => (1u64 << (2 * bits)) - 1,
        MulMode::Wide => u64::MAX,
        _ => ty.mask(),
    }
}

#[inline(always)]
fn f32b(v: u64) -> f32 {
    f32::from_bits(v as u32)
}
#[inline(always)]
fn f64b(v: u64) -> f64 {
    f64::from_bits(v)
}
#[inline(always)]
fn of32(x: f32) -> u64 {
    num::canon_f32(x.to_bits()) as u64
}
#[inline(always)]
fn of64(x: f64) -> u64 {
    num::canon_f64(x.to_bits())
}

/// A source operand's lanes without copying them: a register's 32 values, or one value for all.
trait Lanes: std::marker::Copy {
    fn at(self, lane: usize) -> u64;
}

impl Lanes for &[u64; 32] {
    #[inline(always)]
    fn at(self, lane: usize) -> u64 {
        self[lane]
    }
}

impl Lanes for u64 {
    #[inline(always)]
    fn at(self, _: usize) -> u64 {
        self
    }
}

#[inline(always)]
fn map1(a: impl Lanes, f: impl Fn(u64) -> u64) -> [u64; 32] {
    let mut r = [0u64; 32];
    for (l, v) in r.iter_mut().enumerate() {
        *v = f(a.at(l));
    }
    r
}

#[inline(always)]
fn map2(a: impl Lanes, b: impl Lanes, f: impl Fn(u64, u64) -> u64) -> [u64; 32] {
    let mut r = [0u64; 32];
    for (l, v) in r.iter_mut().enumerate() {
        *v = f(a.at(l), b.at(l));
    }
    r
}

#[inline(always)]
fn map3(a: impl Lanes, b: impl Lanes, c: impl Lanes, f: impl Fn(u64, u64, u64) -> u64) -> [u64; 32] {
    let mut r = [0u64; 32];
    for (l, v) in r.iter_mut().enumerate() {
        *v = f(a.at(l), b.at(l), c.at(l));
    }
    r
}

/// Evaluates `$body` with `$x` bound to the lanes of operand `$src` (`impl Lanes`): a register
/// in place, an immediate as one value, a special register copied out.
macro_rules! with_lanes {
    ($run:expr, $wi:expr, $bank:expr, $src:expr, $x:ident, $body:expr) => {
        match *$src {
            Src::Imm(v) => {
                let $x = v;
                $body
            }
            Src::Reg(r) => {
                let $x = $run.warps[$wi].reg($bank, r);
                $body
            }
            Src::Sreg(_) => {
                let lanes = $run.fetch($wi, $bank, $src);
                let $x = &lanes;
                $body
            }
        }
    };
}

impl Run<'_> {
    /// The 32 lanes' values of `s`.
    #[inline(always)]
    fn fetch(&self, wi: usize, bank: usize, s: &Src) -> [u64; 32] {
        let w = &self.warps[wi];
        match *s {
            Src::Reg(r) => {
                let b = (bank + r as usize) * 32;
                let mut out = [0u64; 32];
                out.copy_from_slice(&w.regs[b..b + 32]);
                out
            }
            Src::Imm(v) => [v; 32],
            Src::Sreg(sr) => match sr {
                Sreg::Tid(d) => w.tid[d as usize],
                Sreg::Ntid(d) => [self.cfg.block[d as usize] as u64; 32],
                Sreg::Ctaid(d) => [self.ctaid[d as usize] as u64; 32],
                Sreg::Nctaid(d) => [self.cfg.grid[d as usize] as u64; 32],
                Sreg::LaneId => w.lane_id,
                Sreg::WarpId => [w.id as u64; 32],
                Sreg::FrameBase => w.fbase,
                Sreg::Clock => [self.executed; 32],
                _ => [self.cluster_sreg(sr); 32],
            },
        }
    }

    /// Stores `vals` into register `d` for the lanes of `mask`.
    #[inline(always)]
    fn put(&mut self, wi: usize, bank: usize, d: Reg, mask: u32, vals: &[u64; 32]) {
        let regs = self.warps[wi].reg_mut(bank, d);
        if mask == FULL {
            *regs = *vals;
        } else {
            for l in 0..32 {
                if (mask >> l) & 1 != 0 {
                    regs[l] = vals[l];
                }
            }
        }
    }

    #[inline(never)]
    fn un(&mut self, wi: usize, bank: usize, mask: u32, d: Reg, a: &Src, f: impl Fn(u64) -> u64) {
        let r = with_lanes!(self, wi, bank, a, x, map1(x, &f));
        self.put(wi, bank, d, mask, &r);
    }

    #[inline(never)]
    fn bin(&mut self, wi: usize, bank: usize, mask: u32, d: Reg, a: &Src, b: &Src, f: impl Fn(u64, u64) -> u64) {
        let r = with_lanes!(self, wi, bank, a, x, with_lanes!(self, wi, bank, b, y, map2(x, y, &f)));
        self.put(wi, bank, d, mask, &r);
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn tri(
        &mut self,
        wi: usize,
        bank: usize,
        mask: u32,
        d: Reg,
        a: &Src,
        b: &Src,
        c: &Src,
        f: impl Fn(u64, u64, u64) -> u64,
    ) {
        let r = with_lanes!(
            self,
            wi,
            bank,
            a,
            x,
            with_lanes!(self, wi, bank, b, y, with_lanes!(self, wi, bank, c, z, map3(x, y, z, &f)))
        );
        self.put(wi, bank, d, mask, &r);
    }

    /// Executes `inst` for the lanes of `active` (a subset of `group`, which stands at `pc`).
    fn step(&mut self, wi: usize, pc: u32, group: u32, active: u32, bank: usize, inst: &Inst) -> Result<Next> {
        let next = Next::Pc(pc + 1);
        let mut m = active;
        // `.sync.aligned` warp-collective instructions: the warp's live lanes gather first (the
        // compiler guarantees convergence there on a GPU; here lanes that took different paths
        // meet at the instruction).
        let aligned = matches!(
            inst.op,
            Op::Wgmma { .. }
                | Op::WgmmaFence
                | Op::WgmmaCommit
                | Op::WgmmaWait { .. }
                | Op::SetMaxNReg { .. }
                | Op::StMatrix { .. }
        );
        if aligned && m != 0 {
            let live = self.warps[wi].live();
            self.skip_guarded(wi, pc, group & !m);
            let Some(here) = self.warp_sync(wi, pc, m, live)? else { return Ok(Next::Wait) };
            m = here;
            let r = match &inst.op {
                Op::SetMaxNReg { inc, n } => {
                    if !self.setmaxnreg(wi, pc, here, *inc, *n)? {
                        // Stay at the instruction, all lanes together, until registers free up.
                        return Ok(Next::RegWait);
                    }
                    Ok(())
                }
                Op::Wgmma { .. } => self.wgmma(wi, pc, here, m, bank, &inst.op),
                Op::StMatrix { trans, addr, a } => self.stmatrix(wi, pc, here, bank, *trans, addr, a),
                Op::WgmmaCommit => {
                    self.wgmma_commit(wi);
                    Ok(())
                }
                Op::WgmmaWait { n } => {
                    self.wgmma_wait(wi, *n);
                    Ok(())
                }
                _ => Ok(()),
            };
            r?;
            return Ok(self.past_warp_sync(wi, pc, group, here));
        }
        if m == 0 && !matches!(inst.op, Op::Bra { .. } | Op::BrxIdx { .. }) {
            return Ok(next);
        }
        match &inst.op {
            // The type's masks and extension are computed once, outside the lanes' loops.
            Op::Mov { ty, d, a } => {
                let mk = ty.mask();
                self.un(wi, bank, m, *d, a, |x| x & mk)
            }
            Op::Cvta { space, to, d, a } => {
                let base = match space {
                    Space::Shared | Space::SharedCluster => GENERIC_SHARED,
                    Space::Local => GENERIC_LOCAL,
                    Space::Param => GENERIC_PARAM,
                    _ => 0,
                };
                let to = *to;
                self.un(wi, bank, m, *d, a, |x| if to { x.wrapping_sub(base) } else { x.wrapping_add(base) })
            }
            Op::Selp { ty, d, a, b, p } => {
                let mk = ty.mask();
                self.tri(wi, bank, m, *d, a, b, p, |a, b, p| if p & 1 != 0 { a & mk } else { b & mk })
            }
            Op::Prmt { d, a, b, c } => self.tri(wi, bank, m, *d, a, b, c, prmt),
            Op::Add { ty, d, a, b } => {
                let mk = ty.mask();
                self.bin(wi, bank, m, *d, a, b, |a, b| a.wrapping_add(b) & mk)
            }
            Op::Sub { ty, d, a, b } => {
                let mk = ty.mask();
                self.bin(wi, bank, m, *d, a, b, |a, b| a.wrapping_sub(b) & mk)
            }
            Op::MulInt { ty, mode, d, a, b } => {
                let (ty, e) = (*ty, Ext::new(*ty));
                match *mode {
                    MulMode::Hi => self.bin(wi, bank, m, *d, a, b, |a, b| mul_int(ty, MulMode::Hi, a, b)),
                    mode => {
                        let pm = product_mask(ty, mode);
                        self.bin(wi, bank, m, *d, a, b, |a, b| e.of(a).wrapping_mul(e.of(b)) & pm)
                    }
                }
            }
            Op::MadInt { ty, mode, d, a, b, c } => {
                let (ty, mode, e) = (*ty, *mode, Ext::new(*ty));
                let wmask = if mode == MulMode::Wide { u64::MAX >> (64 - 2 * ty.bits().min(32)) } else { ty.mask() };
                if mode == MulMode::Hi {
                    self.tri(wi, bank, m, *d, a, b, c, |a, b, c| mul_int(ty, mode, a, b).wrapping_add(c) & wmask)
                } else {
                    let pm = product_mask(ty, mode);
                    self.tri(wi, bank, m, *d, a, b, c, |a, b, c| {
                        (e.of(a).wrapping_mul(e.of(b)) & pm).wrapping_add(c) & wmask
                    })
                }
            }
            Op::Div { ty, d, a, b } => {
                let ty = *ty;
                self.bin(wi, bank, m, *d, a, b, |a, b| div_int(ty, a, b, false))
            }
            Op::Rem { ty, d, a, b } => {
                let ty = *ty;
                self.bin(wi, bank, m, *d, a, b, |a, b| div_int(ty, a, b, true))
            }
            Op::Min { ty, d, a, b } | Op::Max { ty, d, a, b } => {
                let (e, signed, mk) = (Ext::new(*ty), ty.is_signed(), ty.mask());
                let is_min = matches!(inst.op, Op::Min { .. });
                self.bin(wi, bank, m, *d, a, b, |a, b| {
                    let (x, y) = (e.of(a), e.of(b));
                    let lt = if signed { (x as i64) < (y as i64) } else { x < y };
                    (if lt == is_min { x } else { y }) & mk
                })
            }
            Op::Neg { ty, d, a } => {
                let mk = ty.mask();
                self.un(wi, bank, m, *d, a, |x| x.wrapping_neg() & mk)
            }
            Op::Abs { ty, d, a } => {
                let (e, mk) = (Ext::new(*ty), ty.mask());
                self.un(wi, bank, m, *d, a, |x| (e.of(x) as i64).wrapping_abs() as u64 & mk)
            }
            Op::And { ty, d, a, b } => {
                let mk = ty.mask();
                self.bin(wi, bank, m, *d, a, b, |a, b| a & b & mk)
            }
            Op::Or { ty, d, a, b } => {
                let mk = ty.mask();
                self.bin(wi, bank, m, *d, a, b, |a, b| (a | b) & mk)
            }
            Op::Xor { ty, d, a, b } => {
                let mk = ty.mask();
                self.bin(wi, bank, m, *d, a, b, |a, b| (a ^ b) & mk)
            }
            Op::Not { ty, d, a } => {
                let mk = if *ty == Ty::Pred { 1 } else { ty.mask() };
                self.un(wi, bank, m, *d, a, |x| !x & mk)
            }
            Op::Shl { ty, d, a, b } => {
                let (bits, mk) = (ty.bits() as u64, ty.mask());
                self.bin(wi, bank, m, *d, a, b, |a, b| {
                    let s = b & 0xffff_ffff;
                    if s >= bits { 0 } else { (a << s) & mk }
                })
            }
            Op::Shr { ty, d, a, b } => {
                let (bits, mk, e) = (ty.bits() as u64, ty.mask(), Ext::new(*ty));
                if ty.is_signed() {
                    self.bin(wi, bank, m, *d, a, b, |a, b| {
                        let s = (b & 0xffff_ffff).min(bits);
                        ((e.of(a) as i64) >> s.min(63)) as u64 & mk
                    })
                } else {
                    self.bin(wi, bank, m, *d, a, b, |a, b| {
                        let s = (b & 0xffff_ffff).min(bits);
                        if s >= bits { 0 } else { (a & mk) >> s }
                    })
                }
            }
            Op::Bfe { ty, d, a, b, c } => {
                let ty = *ty;
                self.tri(wi, bank, m, *d, a, b, c, |a, b, c| bfe(ty, a, b, c))
            }
            Op::Bfi { ty, d, f, b, pos, len } => {
                let ty = *ty;
                let fv = self.fetch(wi, bank, f);
                let bv = self.fetch(wi, bank, b);
                let pv = self.fetch(wi, bank, pos);
                let lv = self.fetch(wi, bank, len);
                let mut r = [0u64; 32];
                for l in 0..32 {
                    r[l] = bfi(ty, fv[l], bv[l], pv[l], lv[l]);
                }
                self.put(wi, bank, *d, m, &r);
            }
            Op::Popc { ty, d, a } => {
                let mk = ty.mask();
                self.un(wi, bank, m, *d, a, |x| (x & mk).count_ones() as u64)
            }
            Op::Clz { ty, d, a } => {
                let (mk, pad) = (ty.mask(), 64 - ty.bits());
                self.un(wi, bank, m, *d, a, |x| ((x & mk).leading_zeros() - pad) as u64)
            }
            Op::Brev { ty, d, a } => {
                let (mk, pad) = (ty.mask(), 64 - ty.bits());
                self.un(wi, bank, m, *d, a, |x| (x & mk).reverse_bits() >> pad)
            }

            Op::FAdd { ty, rnd, d, a, b }
            | Op::FSub { ty, rnd, d, a, b }
            | Op::FMul { ty, rnd, d, a, b }
            | Op::FDiv { ty, rnd, d, a, b } => {
                let (ty, rnd) = (*ty, *rnd);
                let k = match inst.op {
                    Op::FAdd { .. } => 0,
                    Op::FSub { .. } => 1,
                    Op::FMul { .. } => 2,
                    _ => 3,
                };
                if ty == Ty::F64 {
                    self.bin(wi, bank, m, *d, a, b, |a, b| {
                        let (x, y) = (f64b(a), f64b(b));
                        let r = match k {
                            0 => x + y,
                            1 => x - y,
                            2 => x * y,
                            _ => x / y,
                        };
                        num::arith_nan_f64(r.to_bits(), a, b)
                    })
                } else if matches!(rnd, Rnd::None | Rnd::Rn) {
                    // One closure per operation (the common f32 case, kept free of a dispatch per lane).
                    match k {
                        0 => self.bin(wi, bank, m, *d, a, b, |a, b| of32(f32b(a) + f32b(b))),
                        1 => self.bin(wi, bank, m, *d, a, b, |a, b| of32(f32b(a) - f32b(b))),
                        2 => self.bin(wi, bank, m, *d, a, b, |a, b| of32(f32b(a) * f32b(b))),
                        _ => self.bin(wi, bank, m, *d, a, b, |a, b| of32(f32b(a) / f32b(b))),
                    }
                } else {
                    self.bin(wi, bank, m, *d, a, b, |a, b| {
                        let (x, y) = (a as u32, b as u32);
                        (match k {
                            0 => num::add_f32(x, y, rnd),
                            1 => num::sub_f32(x, y, rnd),
                            2 => num::mul_f32(x, y, rnd),
                            _ => num::div_f32(x, y, rnd),
                        }) as u64
                    })
                }
            }
            Op::Fma { ty, rnd, d, a, b, c } => {
                let rnd = *rnd;
                if *ty == Ty::F64 {
                    self.tri(wi, bank, m, *d, a, b, c, |a, b, c| {
                        num::arith_nan_f64_3(f64b(a).mul_add(f64b(b), f64b(c)).to_bits(), a, b, c)
                    })
                } else if matches!(rnd, Rnd::None | Rnd::Rn) {
                    self.tri(wi, bank, m, *d, a, b, c, |a, b, c| of32(f32b(a).mul_add(f32b(b), f32b(c))))
                } else {
                    self.tri(wi, bank, m, *d, a, b, c, |a, b, c| num::fma_f32(a as u32, b as u32, c as u32, rnd) as u64)
                }
            }
            Op::FMin { ty, d, a, b } => {
                if *ty == Ty::F64 {
                    self.bin(wi, bank, m, *d, a, b, num::min_f64)
                } else {
                    self.bin(wi, bank, m, *d, a, b, |a, b| num::min_f32(a as u32, b as u32) as u64)
                }
            }
            Op::FMax { ty, d, a, b } => {
                if *ty == Ty::F64 {
                    self.bin(wi, bank, m, *d, a, b, num::max_f64)
                } else {
                    self.bin(wi, bank, m, *d, a, b, |a, b| num::max_f32(a as u32, b as u32) as u64)
                }
            }
            Op::HMinMax { ty, max, nan, d, a, b } => {
                let bf = matches!(ty, Ty::Bf16 | Ty::Bf16x2);
                let pair = matches!(ty, Ty::F16x2 | Ty::Bf16x2);
                // One instantiation per form, so the lane loop carries no flag tests.
                macro_rules! go {
                    ($($bf:literal $max:literal $nan:literal),*) => {
                        match (bf, *max, *nan, pair) {
                            $(
                                ($bf, $max, $nan, true) => {
                                    self.bin(wi, bank, m, *d, a, b, num::minmax16x2::<$bf, $max, $nan, true>)
                                }
                                ($bf, $max, $nan, false) => {
                                    self.bin(wi, bank, m, *d, a, b, num::minmax16x2::<$bf, $max, $nan, false>)
                                }
                            )*
                        }
                    };
                }
                go!(false false false, false false true, false true false, false true true,
                    true false false, true false true, true true false, true true true)
            }
            Op::FNeg { ty, d, a } => {
                let s = if *ty == Ty::F64 { 1u64 << 63 } else { 1 << 31 };
                let mk = ty.mask();
                self.un(wi, bank, m, *d, a, |x| (x ^ s) & mk)
            }
            Op::FAbs { ty, d, a } => {
                let s = if *ty == Ty::F64 { 1u64 << 63 } else { 1 << 31 };
                let mk = ty.mask();
                self.un(wi, bank, m, *d, a, |x| x & !s & mk)
            }
            Op::Rcp { ty, rnd, d, a } => {
                let rnd = *rnd;
                if *ty == Ty::F64 {
                    self.un(wi, bank, m, *d, a, |x| num::arith_nan_f64((1.0 / f64b(x)).to_bits(), x, x))
                } else {
                    self.un(wi, bank, m, *d, a, |x| num::rcp_f32(x as u32, rnd) as u64)
                }
            }
            Op::Sqrt { ty, rnd, d, a } => {
                let rnd = *rnd;
                if *ty == Ty::F64 {
                    self.un(wi, bank, m, *d, a, |x| num::arith_nan_f64(f64b(x).sqrt().to_bits(), x, x))
                } else {
                    self.un(wi, bank, m, *d, a, |x| num::sqrt_f32(x as u32, rnd) as u64)
                }
            }
            Op::Setp { ty, cmp, bool_op, p, q, a, b } => {
                let (ty, cmp) = (*ty, *cmp);
                let t = with_lanes!(self, wi, bank, a, x, with_lanes!(self, wi, bank, b, y, setp_mask(ty, cmp, x, y)));
                let (tp, tq) = match bool_op {
                    None => (t, !t),
                    Some((op, c)) => {
                        let c = with_lanes!(self, wi, bank, c, z, lanes_where(z, 0u64, |z, _| z & 1 != 0));
                        match op {
                            BoolOp::And => (t & c, !t & c),
                            BoolOp::Or => (t | c, !t | c),
                            BoolOp::Xor => (t ^ c, !t ^ c),
                        }
                    }
                };
                let bits = |t: u32| -> [u64; 32] { std::array::from_fn(|l| ((t >> l) & 1) as u64) };
                self.put(wi, bank, *p, m, &bits(tp));
                if let Some(q) = q {
                    self.put(wi, bank, *q, m, &bits(tq));
                }
            }
            Op::Cvt { dty, sty, rnd, sat, satfinite, d, a, b } => {
                let (dty, sty, rnd, sat, satfinite) = (*dty, *sty, *rnd, *sat, *satfinite);
                let av = self.fetch(wi, bank, a);
                let bv = b.map(|b| self.fetch(wi, bank, &b));
                let mut r = [0u64; 32];
                for l in lanes(m) {
                    r[l] = cvt(dty, sty, rnd, sat, satfinite, av[l], bv.as_ref().map(|b| b[l]));
                }
                self.put(wi, bank, *d, m, &r);
            }

            Op::Ld { space, ty, d, addr } => {
                self.load(wi, pc, m, bank, *space, *ty, d, addr)?;
            }
            Op::St { space, ty, a, addr } => {
                self.store(wi, pc, m, bank, *space, *ty, a, addr)?;
            }
            Op::Atom { space, op, ty, d, addr, a, b } => {
                self.atom(wi, pc, m, bank, *space, *op, *ty, *d, addr, a, b.as_ref())?;
            }

            Op::Shfl { mode, d, p, a, b, c, mask } => {
                return self.shfl(wi, pc, group, m, bank, *mode, *d, *p, a, b, c, mask);
            }
            Op::BarWarpSync { mask } => {
                let mv = self.fetch(wi, bank, mask)[m.trailing_zeros() as usize] as u32;
                self.skip_guarded(wi, pc, group & !m);
                let Some(here) = self.warp_sync(wi, pc, m, mv)? else { return Ok(Next::Wait) };
                let w = &mut self.warps[wi];
                w.lanes.barrier(here, w.live());
                return Ok(self.past_warp_sync(wi, pc, group, here));
            }
            Op::BarSync { id, count } => {
                let idv = self.fetch(wi, bank, id);
                let l0 = m.trailing_zeros() as usize;
                let bid = idv[l0] as usize;
                if bid >= 16 {
                    return Err(self.fault(
                        ErrorKind::LaunchFailed,
                        wi,
                        l0,
                        pc,
                        format!("barrier id {bid} is not in 0..16"),
                    ));
                }
                if let Some(c) = count {
                    let n = self.fetch(wi, bank, c)[l0] as u32;
                    if self.bar_expected[bid] != 0 && self.bar_expected[bid] != n {
                        return Err(self.fault(
                            ErrorKind::LaunchFailed,
                            wi,
                            l0,
                            pc,
                            format!("barrier {bid} used with thread counts {} and {n} at once", self.bar_expected[bid]),
                        ));
                    }
                    self.bar_expected[bid] = n;
                }
                // Lanes of the group whose guard was false skip the barrier.
                let skip = group & !m;
                let w = &mut self.warps[wi];
                w.materialize();
                for l in lanes(skip) {
                    w.pc[l] = pc + 1;
                }
                for l in lanes(m) {
                    w.pc[l] = pc;
                    w.bar_id[l] = bid as u8;
                }
                w.at_bar |= m;
                self.bar_arrived[bid] += m.count_ones();
                return Ok(Next::Wait);
            }
            Op::Fence | Op::Nop => {}

            Op::Bra { target } => {
                return Ok(Next::Split { taken: m, target: *target });
            }
            Op::BrxIdx { index, table } => {
                let iv = self.fetch(wi, bank, index);
                let t = &self.m.branch_tables[*table as usize];
                let skip = group & !m;
                for l in lanes(m) {
                    if iv[l] as usize >= t.len() {
                        return Err(self.fault(
                            ErrorKind::LaunchFailed,
                            wi,
                            l,
                            pc,
                            format!("brx.idx index {} past its table of {}", iv[l], t.len()),
                        ));
                    }
                }
                let w = &mut self.warps[wi];
                w.materialize();
                for l in lanes(m) {
                    w.pc[l] = t[iv[l] as usize];
                }
                for l in lanes(skip) {
                    w.pc[l] = pc + 1;
                }
                return Ok(Next::PerLane);
            }
            Op::Call { func, args, .. } => {
                let callee = &self.m.functions[*func as usize];
                let caller = &self.m.functions[inst.func as usize];
                let cfb = caller.frame_bytes().div_ceil(16) * 16;
                let stack = self.plan.stack as usize;
                let skip = group & !m;
                let w = &mut self.warps[wi];
                w.materialize();
                for l in lanes(m) {
                    let base = w.fbase[l] as usize;
                    let nb = base + cfb as usize;
                    // Arguments: from the caller's scratch into the callee's parameter slots.
                    for (i, &off) in args.iter().enumerate() {
                        let Some(p) = callee.params.get(i) else { break };
                        let (src, dst) = (l * stack + base + off as usize, l * stack + nb + p.offset as usize);
                        w.local.copy_within(src..src + p.size as usize, dst);
                    }
                    w.frames[l].push(Frame { call_pc: pc, base: base as u32 });
                    w.fbase[l] = nb as u64;
                    w.pc[l] = callee.start;
                }
                for l in lanes(skip) {
                    w.pc[l] = pc + 1;
                }
                return Ok(Next::PerLane);
            }
            Op::Ret => {
                let callee = &self.m.functions[inst.func as usize];
                let stack = self.plan.stack as usize;
                let skip = group & !m;
                let w = &mut self.warps[wi];
                w.materialize();
                for l in lanes(m) {
                    let Some(fr) = w.frames[l].pop() else {
                        w.exited |= 1 << l;
                        continue;
                    };
                    if let Op::Call { rets, .. } = &self.m.code[fr.call_pc as usize].op {
                        for (i, &off) in rets.iter().enumerate() {
                            let Some(p) = callee.rets.get(i) else { break };
                            let src = l * stack + w.fbase[l] as usize + p.offset as usize;
                            let dst = l * stack + fr.base as usize + off as usize;
                            w.local.copy_within(src..src + p.size as usize, dst);
                        }
                    }
                    w.fbase[l] = fr.base as u64;
                    w.pc[l] = fr.call_pc + 1;
                }
                for l in lanes(skip) {
                    w.pc[l] = pc + 1;
                }
                return Ok(Next::PerLane);
            }
            Op::Exit => {
                let skip = group & !m;
                let w = &mut self.warps[wi];
                w.materialize();
                w.exited |= m;
                for l in lanes(skip) {
                    w.pc[l] = pc + 1;
                }
                // Lanes parked at a warp-synchronous instruction that waits for these never finish.
                if w.at_wsync != 0 && w.wsync_mask & m != 0 {
                    let parked = w.at_wsync.trailing_zeros() as usize;
                    let (at, mask) = (w.pc[parked], w.wsync_mask);
                    return Err(self.fault(
                        ErrorKind::LaunchFailed,
                        wi,
                        parked,
                        at,
                        format!(
                            "warp-synchronous instruction with member mask {mask:#010x}: lane {} exits without executing it",
                            (mask & m).trailing_zeros()
                        ),
                    ));
                }
                return Ok(Next::PerLane);
            }
            Op::Trap => {
                let l = m.trailing_zeros() as usize;
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    l,
                    pc,
                    "trap (a device-side panic or assertion)".into(),
                ));
            }
            Op::SetMaxNReg { .. }
            | Op::Wgmma { .. }
            | Op::WgmmaFence
            | Op::WgmmaCommit
            | Op::WgmmaWait { .. }
            | Op::StMatrix { .. } => {}
            Op::TmaStore { map, coords, src } => self.tma_store(wi, pc, m, bank, map, coords, src)?,
            Op::BulkCommit => self.bulk_commit(wi, m),
            Op::BulkWait { n, .. } => self.bulk_wait(wi, m, *n),
            Op::FenceProxyAsync { shared } => {
                if *shared {
                    self.fence_proxy_async(wi);
                }
            }
            Op::MbarInit { addr, count } => self.mbar_init(wi, pc, m, bank, addr, count)?,
            Op::MbarArrive { d, addr, tx, cluster: false, release_cluster, relaxed } => {
                self.mbar_arrive(wi, pc, m, bank, *d, addr, tx.as_ref(), (!*relaxed, *release_cluster))?
            }
            Op::MbarArrive { addr, tx, cluster: true, release_cluster, relaxed, .. } => {
                self.mbar_arrive_cluster(wi, pc, m, bank, addr, tx.as_ref(), (!*relaxed, *release_cluster))?
            }
            Op::Mapa { d, a, rank } => self.mapa(wi, pc, m, bank, *d, a, rank)?,
            Op::ClusterArrive { relaxed } => self.cluster_arrive(wi, pc, m, *relaxed)?,
            Op::ClusterWait => {
                if let Some(n) = self.cluster_wait(wi, pc, group, m)? {
                    return Ok(n);
                }
            }
            Op::MbarExpectTx { addr, tx } => self.mbar_expect_tx(wi, pc, m, bank, addr, tx)?,
            Op::MbarTryWait { p, addr, parity, test, acquire_cluster, relaxed } => {
                // A failed poll stops the lanes that made it until the phase moves (see `Next::Park`).
                if self.mbar_try_wait(wi, pc, m, bank, *p, addr, parity, (!*relaxed, *acquire_cluster))? {
                    return Ok(Next::Park { polled: m, test: *test });
                }
            }
            Op::CpAsyncBulkTensor { dst, map, coords, mbar, multicast } => {
                self.tma_issue(wi, pc, m, bank, dst, map, coords, mbar, multicast.as_ref())?
            }
        }
        Ok(next)
    }
}

// ---------------------------------------------------------------------------------------------
// Integer helpers

fn mul_int(ty: Ty, mode: MulMode, a: u64, b: u64) -> u64 {
    let bits = ty.bits();
    let (x, y) = (ext(a, ty), ext(b, ty));
    match mode {
        MulMode::Lo => x.wrapping_mul(y) & ty.mask(),
        MulMode::Wide => {
            let p = if ty.is_signed() { (x as i64).wrapping_mul(y as i64) as u64 } else { x.wrapping_mul(y) };
            if bits >= 32 { p } else { p & ((1u64 << (2 * bits)) - 1) }
        }
        MulMode::Hi => {
            let p = if ty.is_signed() {
                ((x as i64 as i128) * (y as i64 as i128)) as u128
            } else {
                (x as u128) * (y as u128)
            };
            ((p >> bits) as u64) & ty.mask()
        }
    }
}

fn div_int(ty: Ty, a: u64, b: u64, rem: bool) -> u64 {
    let (x, y) = (ext(a, ty), ext(b, ty));
    let r = if ty.is_signed() {
        let (x, y) = (x as i64, y as i64);
        if y == 0 {
            // Division by zero: the hardware's all-ones quotient and the dividend as remainder.
            if rem { x as u64 } else { u64::MAX }
        } else if rem {
            x.wrapping_rem(y) as u64
        } else {
            x.wrapping_div(y) as u64
        }
    } else if y == 0 {
        if rem { x } else { u64::MAX }
    } else if rem {
        x % y
    } else {
        x / y
    };
    r & ty.mask()
}

/// `bfe`: `len` bits of `a` from bit `pos` (both from the low byte of their operand), the bits
/// past the field or past the type's width filled with 0 (`.u`) or the field's top bit (`.s`).
#[inline]
fn bfe(ty: Ty, a: u64, b: u64, c: u64) -> u64 {
    let msb = ty.bits() - 1;
    let pos = (b & 0xff) as u32;
    let len = (c & 0xff) as u32;
    let x = a & ty.mask();
    let sbit = if ty.is_signed() && len > 0 { (x >> (pos + len - 1).min(msb)) & 1 } else { 0 };
    // Bits taken from `x`: those below `len` whose source bit `pos + i` is inside the type.
    let n = if pos > msb { 0 } else { len.min(msb + 1 - pos) };
    let low = low_bits(n);
    let field = if n == 0 { 0 } else { (x >> pos) & low };
    if sbit != 0 { field | (ty.mask() & !low) } else { field }
}

/// `bfi`: `f`'s low `len` bits into `b` at bit `pos`, as far as the type's width allows.
fn bfi(ty: Ty, f: u64, b: u64, pos: u64, len: u64) -> u64 {
    let msb = ty.bits() - 1;
    let pos = (pos & 0xff) as u32;
    let len = (len & 0xff) as u32;
    let n = if pos > msb { 0 } else { len.min(msb + 1 - pos) };
    if n == 0 {
        return b & ty.mask();
    }
    let field = low_bits(n) << pos;
    (b & ty.mask() & !field) | ((f << pos) & field)
}

/// A mask of the `n` (at most 64) low bits.
#[inline(always)]
fn low_bits(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

fn prmt(a: u64, b: u64, c: u64) -> u64 {
    let bytes = ((b & 0xffff_ffff) << 32) | (a & 0xffff_ffff);
    let mut d = 0u64;
    for i in 0..4 {
        let sel = (c >> (4 * i)) & 0xf;
        let byte = (bytes >> (8 * (sel & 7))) & 0xff;
        let v = if sel & 8 != 0 { if byte & 0x80 != 0 { 0xff } else { 0 } } else { byte };
        d |= v << (8 * i);
    }
    d
}

/// The lanes (a bit each) where `lanes(a, b)` holds.
#[inline(always)]
fn lanes_where(a: impl Lanes, b: impl Lanes, f: impl Fn(u64, u64) -> bool) -> u32 {
    let mut m = 0u32;
    for l in 0..32 {
        m |= (f(a.at(l), b.at(l)) as u32) << l;
    }
    m
}

/// `setp.cmp.ty` over 32 lanes (a bit each): `.f32`/`.f64` compare as floats (the `u` forms
/// true when either is NaN), every other type as an integer of its width (sign-extended for
/// `.sN`), its unordered forms as the ordered ones. One loop per comparison, so that the lanes
/// run without a dispatch each.
#[inline(never)]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn setp_mask(ty: Ty, cmp: Cmp, a: impl Lanes, b: impl Lanes) -> u32 {
    macro_rules! int {
        ($key:expr) => {{
            let key = $key;
            match cmp {
                Cmp::Eq | Cmp::Equ => lanes_where(a, b, |x, y| key(x) == key(y)),
                Cmp::Ne | Cmp::Neu => lanes_where(a, b, |x, y| key(x) != key(y)),
                Cmp::Lt | Cmp::Ltu => lanes_where(a, b, |x, y| key(x) < key(y)),
                Cmp::Le | Cmp::Leu => lanes_where(a, b, |x, y| key(x) <= key(y)),
                Cmp::Gt | Cmp::Gtu => lanes_where(a, b, |x, y| key(x) > key(y)),
                Cmp::Ge | Cmp::Geu => lanes_where(a, b, |x, y| key(x) >= key(y)),
                Cmp::Num => u32::MAX,
                Cmp::Nan => 0,
            }
        }};
    }
    macro_rules! float {
        ($key:expr) => {{
            let key = $key;
            let nan = |x: u64, y: u64| key(x).is_nan() || key(y).is_nan();
            match cmp {
                Cmp::Eq => lanes_where(a, b, |x, y| key(x) == key(y)),
                Cmp::Ne => lanes_where(a, b, |x, y| !nan(x, y) && key(x) != key(y)),
                Cmp::Lt => lanes_where(a, b, |x, y| key(x) < key(y)),
                Cmp::Le => lanes_where(a, b, |x, y| key(x) <= key(y)),
                Cmp::Gt => lanes_where(a, b, |x, y| key(x) > key(y)),
                Cmp::Ge => lanes_where(a, b, |x, y| key(x) >= key(y)),
                Cmp::Equ => lanes_where(a, b, |x, y| nan(x, y) || key(x) == key(y)),
                Cmp::Neu => lanes_where(a, b, |x, y| key(x) != key(y)),
                Cmp::Ltu => lanes_where(a, b, |x, y| !(key(x) >= key(y))),
                Cmp::Leu => lanes_where(a, b, |x, y| !(key(x) > key(y))),
                Cmp::Gtu => lanes_where(a, b, |x, y| !(key(x) <= key(y))),
                Cmp::Geu => lanes_where(a, b, |x, y| !(key(x) < key(y))),
                Cmp::Num => lanes_where(a, b, |x, y| !nan(x, y)),
                Cmp::Nan => lanes_where(a, b, nan),
            }
        }};
    }
    match ty {
        Ty::F32 => float!(|x: u64| f32b(x) as f64),
        Ty::F64 => float!(f64b),
        t if t.is_signed() => {
            let sh = 64 - t.bits();
            int!(move |x: u64| ((x << sh) as i64) >> sh)
        }
        t => {
            let mk = t.mask();
            int!(move |x: u64| x & mk)
        }
    }
}

fn is_int(t: Ty) -> bool {
    !t.is_float() && t != Ty::Pred
}

/// `cvt.rnd.sat.dty.sty d, a[, b]`.
fn cvt(dty: Ty, sty: Ty, rnd: Rnd, sat: bool, satfinite: bool, a: u64, b: Option<u64>) -> u64 {
    use Ty::*;
    let _ = satfinite;
    match (dty, sty) {
        (Bf16x2 | F16x2, F32) => {
            let one = |x: u64| if dty == Bf16x2 { num::f32_to_bf16(x as u32, rnd, sat) } else { num::f32_to_f16(x as u32, rnd, sat) } as u64;
            (one(a) << 16) | one(b.unwrap_or(0))
        }
        (E4m3x2 | E5m2x2, F32) => {
            let one = |x: u64| if dty == E4m3x2 { num::f32_to_e4m3_satfinite(x as u32) } else { num::f32_to_e5m2_satfinite(x as u32) } as u64;
            (one(a) << 8) | one(b.unwrap_or(0))
        }
        (F16x2, E4m3x2 | E5m2x2) => {
            let one = |x: u64| if sty == E4m3x2 { num::e4m3_to_f16(x as u8) } else { num::e5m2_to_f16(x as u8) } as u64;
            (one((a >> 8) & 0xff) << 16) | one(a & 0xff)
        }
        (F32, F32) => {
            let x = a as u32;
            let x = match rnd {
                Rnd::Rni | Rnd::Rzi | Rnd::Rmi | Rnd::Rpi => num::round_int_f32(x, rnd),
                _ => x,
            };
            (if sat { num::sat_f32(x) } else { num::canon_f32(x) }) as u64
        }
        (F64, F64) => {
            let x = match rnd {
                Rnd::Rni | Rnd::Rzi | Rnd::Rmi | Rnd::Rpi => num::round_int_f64(a, rnd),
                _ => a,
            };
            if sat { num::sat_f64(x) } else { num::canon_f64(x) }
        }
        (F32, F64) => num::f64_to_f32(a, rnd, sat) as u64,
        (F64, F32) => {
            let x = num::f32_to_f64(a as u32);
            if sat { num::sat_f64(x) } else { x }
        }
        (F16, F32) => num::f32_to_f16(a as u32, rnd, sat) as u64,
        (Bf16, F32) => num::f32_to_bf16(a as u32, rnd, sat) as u64,
        (F32, F16) => {
            let x = num::f16_to_f32(a as u16);
            (if sat { num::sat_f32(x) } else { x }) as u64
        }
        (F32, Bf16) => {
            let x = num::bf16_to_f32(a as u16);
            (if sat { num::sat_f32(x) } else { x }) as u64
        }
        (F64, F16) => num::f32_to_f64(num::f16_to_f32(a as u16)),
        (d, F32 | F64 | F16 | Bf16) if is_int(d) => {
            let (x, from64) = match sty {
                F64 => (a, true),
                F32 => (a & 0xffff_ffff, false),
                F16 => (num::f16_to_f32(a as u16) as u64, false),
                _ => (num::bf16_to_f32(a as u16) as u64, false),
            };
            num::float_to_int(x, from64, rnd, d.is_signed(), d.bits())
        }
        (F32 | F64, s) if is_int(s) => num::int_to_float(a & s.mask(), s.is_signed(), s.bits(), dty == F64, rnd),
        (F16, s) if is_int(s) => num::int_to_f16(a & s.mask(), s.is_signed(), s.bits(), rnd) as u64,
        (Bf16, s) if is_int(s) && s.bits() <= 16 => {
            // Exact in f32 (at most 16 significant bits), so one rounding.
            let x = num::int_to_float(a & s.mask(), s.is_signed(), s.bits(), false, Rnd::Rn) as u32;
            num::f32_to_bf16(x, rnd, sat) as u64
        }
        (d, s) => {
            // Integer to integer: extend from the source type, then truncate (or saturate).
            let v = ext(a, s);
            if sat {
                let (lo, hi): (i128, i128) = if d.is_signed() {
                    (-(1i128 << (d.bits() - 1)), (1i128 << (d.bits() - 1)) - 1)
                } else {
                    (0, (1i128 << d.bits()) - 1)
                };
                let x = if s.is_signed() { v as i64 as i128 } else { v as i128 };
                // A signed result is sign-extended to the register's width (all 64 bits here).
                ext(x.clamp(lo, hi) as u64 & d.mask(), d)
            } else {
                ext(v & d.mask(), d)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

impl Run<'_> {
    /// The address of each active lane's access.
    #[inline(always)]
    fn addrs(&self, wi: usize, bank: usize, addr: &Addr) -> [u64; 32] {
        let mut a = self.fetch(wi, bank, &addr.base);
        for v in a.iter_mut() {
            *v = v.wrapping_add(addr.offset as u64);
        }
        a
    }

    /// Resolves one lane's access of `len` bytes at `a` in `space`, checking bounds and alignment.
    #[allow(clippy::too_many_arguments)]
    fn locate(&mut self, wi: usize, lane: usize, pc: u32, space: Space, a: u64, len: u32, align: u32) -> Result<Loc> {
        if a % align as u64 != 0 {
            return Err(self.fault(
                ErrorKind::MisalignedAddress,
                wi,
                lane,
                pc,
                format!(
                    "misaligned {len}-byte access at address 0x{a:x} ({space:?} space; needs {align}-byte alignment)"
                ),
            ));
        }
        let (space, a) = match space {
            Space::Generic => {
                if (GENERIC_SHARED..GENERIC_SHARED + WINDOW).contains(&a) {
                    (Space::Shared, a - GENERIC_SHARED)
                } else if (GENERIC_LOCAL..GENERIC_LOCAL + WINDOW).contains(&a) {
                    (Space::Local, a - GENERIC_LOCAL)
                } else if (GENERIC_PARAM..GENERIC_PARAM + WINDOW).contains(&a) {
                    // Read-only: a store faults in `write_bytes`, as `st.param` would.
                    (Space::Param, a - GENERIC_PARAM)
                } else {
                    (Space::Global, a)
                }
            }
            Space::SharedCluster => (Space::Shared, self.own_cluster_address(wi, lane, pc, a)?),
            s => (s, a),
        };
        match space {
            Space::Global | Space::Const => {
                let allocs = &self.snap.allocs;
                let i = if self.last_alloc < allocs.len() && allocs[self.last_alloc].contains(a, len as u64) {
                    Some(self.last_alloc)
                } else {
                    self.snap.find(a, len as u64)
                };
                match i {
                    Some(i) => {
                        self.last_alloc = i;
                        Ok(Loc::Global(i, a))
                    }
                    None => {
                        let desc = describe_in(allocs, &self.sim.memory.freed(), a);
                        Err(self.fault(
                            ErrorKind::IllegalAddress,
                            wi,
                            lane,
                            pc,
                            format!("out-of-bounds global access of {len} bytes at 0x{a:x}: the address {desc}"),
                        ))
                    }
                }
            }
            Space::Shared => {
                let end = SHARED_BASE + self.shared.data.len() as u64;
                if a < SHARED_BASE || a + len as u64 > end {
                    return Err(self.fault(
                        ErrorKind::IllegalAddress,
                        wi,
                        lane,
                        pc,
                        format!(
                            "out-of-bounds shared access of {len} bytes at shared address 0x{a:x}: the launch has {} bytes of shared memory (dynamic: {}) at [0x{SHARED_BASE:x}, 0x{end:x})",
                            self.shared.data.len(),
                            self.cfg.dynamic_smem
                        ),
                    ));
                }
                Ok(Loc::Shared((a - SHARED_BASE) as usize))
            }
            Space::Local => {
                let stack = self.plan.stack as u64;
                if a + len as u64 > stack {
                    return Err(self.fault(
                        ErrorKind::IllegalAddress,
                        wi,
                        lane,
                        pc,
                        format!("out-of-bounds local access of {len} bytes at local address 0x{a:x} (the lane's stack has {stack} bytes)"),
                    ));
                }
                Ok(Loc::Local((lane as u64 * stack + a) as usize))
            }
            Space::Param => {
                if a + len as u64 > self.params.len() as u64 {
                    return Err(self.fault(
                        ErrorKind::IllegalAddress,
                        wi,
                        lane,
                        pc,
                        format!(
                            "parameter access of {len} bytes at offset {a} past the kernel's {} parameter bytes",
                            self.params.len()
                        ),
                    ));
                }
                Ok(Loc::Param(a as usize))
            }
            Space::Generic | Space::SharedCluster => unreachable!("resolved above"),
        }
    }

    fn alloc(&self, i: usize) -> &Arc<Allocation> {
        &self.snap.allocs[i]
    }

    /// Reads `len` bytes for lane `lane`, with the checks of a non-atomic read.
    fn read_bytes(
        &mut self,
        wi: usize,
        lane: usize,
        pc: u32,
        loc: &Loc,
        len: usize,
        out: &mut [u8; 16],
        atomic: bool,
    ) -> Result<()> {
        match *loc {
            Loc::Global(i, a) => {
                let al = &self.snap.allocs[i];
                // SAFETY: `locate` checked [a, a+len) is inside the allocation.
                unsafe {
                    std::ptr::copy_nonoverlapping(al.data_ptr(a), out.as_mut_ptr(), len);
                    let sh = std::slice::from_raw_parts(al.shadow_ptr(a), len);
                    if !all_written(sh) {
                        return Err(self.unwritten_global(wi, lane, pc, i, a, len));
                    }
                }
                self.stats.global_bytes_read += len as u64;
                if !atomic {
                    self.race(wi, lane, pc, i, a, len, false)?;
                }
            }
            Loc::Shared(o) => {
                out[..len].copy_from_slice(&self.shared.data[o..o + len]);
                if !all_written(&self.shared.init[o..o + len]) {
                    return Err(self.unwritten_shared(wi, lane, pc, o, len));
                }
                if !atomic {
                    self.shared_race(wi, lane, pc, o, len, None)?;
                }
                if !self.copy_tags.is_empty() {
                    self.check_tma_ready(wi, lane, pc, o, len)?;
                }
            }
            Loc::Local(o) => out[..len].copy_from_slice(&self.warps[wi].local[o..o + len]),
            Loc::Param(o) => out[..len].copy_from_slice(&self.params[o..o + len]),
        }
        Ok(())
    }

    /// The error of a read of shared bytes never written (one of `[o, o + len)`).
    #[cold]
    fn unwritten_shared(&self, wi: usize, lane: usize, pc: u32, o: usize, len: usize) -> SimError {
        let k = self.shared.init[o..o + len].iter().position(|&s| s == 0).unwrap_or(0);
        self.fault(
            ErrorKind::LaunchFailed,
            wi,
            lane,
            pc,
            format!("read of shared memory never written: shared address 0x{:x}", SHARED_BASE + (o + k) as u64),
        )
    }

    /// Writes `bytes` at shared offset `o` for `lane`, with the checks of a write (the race
    /// check unless `atomic`).
    fn write_shared(&mut self, wi: usize, lane: usize, pc: u32, o: usize, bytes: &[u8], atomic: bool) -> Result<()> {
        let len = bytes.len();
        if !atomic {
            self.shared_race(wi, lane, pc, o, len, Some(bytes))?;
        }
        if !self.bulk_reads.is_empty() {
            self.check_bulk_overwrite(wi, lane, pc, o, len, "store to shared memory")?;
        }
        if !self.shared.remote.is_empty() {
            self.check_remote_overwrite(wi, lane, pc, o, len, "store to shared memory")?;
        }
        self.tick += 1;
        self.shared.generic[o..o + len].fill(self.tick);
        if self.wgmma_in_flight != 0 {
            if let Some(op) = (o..o + len).find_map(|k| self.wgmma_reading(k)) {
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    lane,
                    pc,
                    format!(
                        "store to shared memory read by a wgmma in flight (PTX line {}) before a wgmma.wait_group retired it",
                        self.m.code[op as usize].line
                    ),
                ));
            }
        }
        self.shared.data[o..o + len].copy_from_slice(bytes);
        self.shared.init[o..o + len].fill(1);
        Ok(())
    }

    /// The error of a read of global bytes never written (one of `[a, a + len)` in allocation `i`).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn unwritten_global(&self, wi: usize, lane: usize, pc: u32, i: usize, a: u64, len: usize) -> SimError {
        let al = &self.snap.allocs[i];
        let k = al.first_unwritten(a, len as u64).unwrap_or(a);
        self.fault(
            ErrorKind::LaunchFailed,
            wi,
            lane,
            pc,
            format!(
                "read of global memory never written: byte 0x{k:x} (offset {} of the {}-byte allocation at 0x{:x})",
                k - al.base,
                al.size,
                al.base
            ),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn write_bytes(&mut self, wi: usize, lane: usize, pc: u32, loc: &Loc, bytes: &[u8], atomic: bool) -> Result<()> {
        let len = bytes.len();
        match *loc {
            Loc::Global(i, a) => {
                if !atomic {
                    self.race(wi, lane, pc, i, a, len, true)?;
                }
                let al = self.alloc(i);
                // SAFETY: `locate` checked the range.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), al.data_ptr(a), len);
                    std::ptr::write_bytes(al.shadow_ptr(a), INIT, len);
                }
                self.stats.global_bytes_written += len as u64;
            }
            Loc::Shared(o) => self.write_shared(wi, lane, pc, o, bytes, atomic)?,
            Loc::Local(o) => self.warps[wi].local[o..o + len].copy_from_slice(bytes),
            Loc::Param(o) => {
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    lane,
                    pc,
                    format!(
                        "store to kernel parameter space (offset {o} of the parameter buffer): parameters are read-only"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn race_id(&self) -> u64 {
        (self.cta_linear as u64 % (MULTI - 1)) + 1
    }

    /// The race check of a non-atomic global access by this CTA (see `Allocation::race_access`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn race(&self, wi: usize, lane: usize, pc: u32, i: usize, a: u64, len: usize, write: bool) -> Result<()> {
        let al = &self.snap.allocs[i];
        match al.race_access((a - al.base) as usize, len, self.launch_tag, self.race_id(), write) {
            Ok(()) => Ok(()),
            Err(r) => Err(self.race_error(wi, lane, pc, i, r, write)),
        }
    }

    fn cta_name(&self, linear: u32) -> String {
        let [gx, gy, _] = self.cfg.grid;
        format!("({}, {}, {})", linear % gx, (linear / gx) % gy, linear / (gx * gy))
    }

    #[cold]
    fn race_error(&self, wi: usize, lane: usize, pc: u32, i: usize, r: Race, write: bool) -> SimError {
        let al = &self.snap.allocs[i];
        let why = if r.other == MULTI {
            "other CTAs read it".to_string()
        } else {
            let did = if !r.wrote {
                "read"
            } else if write {
                "also wrote"
            } else {
                "wrote"
            };
            format!("CTA {} {did} it", self.cta_name(r.other as u32 - 1))
        };
        let what = if write { "writes" } else { "reads" };
        self.fault(
            ErrorKind::LaunchFailed,
            wi,
            lane,
            pc,
            format!(
                "race between CTAs: this thread {what} global byte 0x{:x} (offset {} of the {}-byte allocation at 0x{:x}) and {why} in the same launch",
                al.base + r.offset as u64,
                r.offset,
                al.size,
                al.base
            ),
        )
    }

    /// Shared-memory ordering: another warp's write (or, for a write, read) of these bytes since
    /// the last barrier of the whole CTA is a race, unless a barrier of some of the warps or an
    /// mbarrier orders it before this access (this warp passed a barrier with the other warp, or
    /// waited on a phase that the other warp arrived on, after that access: `exec::hopper`,
    /// "Order through mbarriers"). Between lanes of this warp, a barrier of both lanes or an
    /// mbarrier phase (`LaneOrder`); a store of the bytes already there is no race with another
    /// lane's store (every lane storing the same value). `written`: the bytes of a write.
    fn shared_race(
        &mut self,
        wi: usize,
        lane: usize,
        pc: u32,
        o: usize,
        len: usize,
        written: Option<&[u8]>,
    ) -> Result<()> {
        let write = written.is_some();
        let me = (self.epoch << 6) | (wi as u32 + 1);
        let epoch = self.epoch;
        let track = self.shared.tick_order;
        let stamp = (self.tick << 6) | (wi as u64 + 1);
        let lo = self.warps[wi].lanes;
        let mut bad = None;
        for k in o..o + len {
            let w = self.shared.w[k];
            let mut new_wl = lo.stamp(lane);
            if w >> 6 == epoch {
                if w != me {
                    if !self.ordered_after(wi, (w & 63) as usize - 1, self.shared.generic[k]) {
                        bad = Some((k, format!("warp {} wrote it", (w & 63) - 1), false));
                        break;
                    }
                } else {
                    // A read must follow the first of the lanes' unordered stores (they stored
                    // the same bytes); a store must follow all of them.
                    let s = self.shared.wl[k];
                    let after_first = lo.after(s & !SAME_STORES, lane);
                    let others = s & SAME_STORES != 0;
                    if !after_first || (write && others && !lo.after_all(s)) {
                        match written {
                            Some(b) if b[k - o] == self.shared.data[k] => new_wl = s | SAME_STORES,
                            _ => {
                                let who = if after_first {
                                    "other lanes".to_string()
                                } else {
                                    format!("lane {}", s & (SAME_STORES - 1))
                                };
                                bad = Some((k, format!("{who} of this warp wrote it"), true));
                                break;
                            }
                        }
                    }
                }
            }
            let r = self.shared.r[k];
            if write {
                if r >> 6 == epoch {
                    if r != me && !self.reads_ordered(wi, k, r) {
                        let who =
                            if r & 63 == 63 { "other warps".to_string() } else { format!("warp {}", (r & 63) - 1) };
                        bad = Some((k, format!("{who} read it"), false));
                        break;
                    }
                    if r == me && !lo.after(self.shared.rl[k], lane) {
                        let l = self.shared.rl[k] & 63;
                        let who = if l == SEVERAL_LANES { "other lanes".to_string() } else { format!("lane {l}") };
                        bad = Some((k, format!("{who} of this warp read it"), true));
                        break;
                    }
                }
                self.shared.w[k] = me;
                self.shared.wl[k] = new_wl;
            } else if r >> 6 != epoch || r == me {
                self.shared.rl[k] = if r == me { lo.read(self.shared.rl[k], lane) } else { lo.stamp(lane) };
                self.shared.r[k] = me;
                if track {
                    self.shared.rt[k] = stamp;
                }
            } else if !track {
                self.shared.r[k] = (epoch << 6) | 63;
            } else if self.shared.rt[k] != stamp {
                // another warp read it in this epoch (or this warp, before a tick passed)
                self.note_reader(k, r, wi);
                self.shared.r[k] = (epoch << 6) | 63;
                self.shared.rt[k] = stamp;
            }
        }
        if let Some((k, why, lanes)) = bad {
            let what = if write { "writes" } else { "reads" };
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                lane,
                pc,
                format!(
                    "shared-memory race: this thread {what} shared address 0x{:x} and {why} since the last barrier of the whole CTA, with no barrier of both {} between and no mbarrier phase ordering it before",
                    SHARED_BASE + k as u64,
                    if lanes { "lanes (bar.warp.sync)" } else { "warps" },
                ),
            ));
        }
        Ok(())
    }

    /// Whether warp `wi` acquired a release of warp `other` made after that warp's access at
    /// tick `t` (an mbarrier phase it waited on, a barrier of some warps they both passed).
    #[inline]
    fn ordered_after(&self, wi: usize, other: usize, t: u64) -> bool {
        other < MAX_WARPS && self.warps[wi].hop.ordered[other] > t
    }

    /// Whether a write by warp `wi` of shared byte `k` is ordered after its reads by other warps
    /// in the current epoch (`r`: its `Shared::r`).
    fn reads_ordered(&self, wi: usize, k: usize, r: u32) -> bool {
        if r & 63 != 63 {
            return self.ordered_after(wi, (r & 63) as usize - 1, self.shared.rt[k] >> 6);
        }
        match self.shared.readers.get(&k) {
            Some((e, readers)) if *e == self.epoch => {
                readers.iter().all(|&(w, t)| w as usize == wi || self.ordered_after(wi, w as usize, t))
            }
            // several readers whose reads were not kept: not known (a race)
            _ => false,
        }
    }

    /// Warp `wi` reads shared byte `k`, which another warp read in this epoch (`r`: its
    /// `Shared::r`): the readers' last reads, by warp.
    fn note_reader(&mut self, k: usize, r: u32, wi: usize) {
        let (epoch, tick) = (self.epoch, self.tick);
        let last = self.shared.rt[k];
        let e = if r & 63 != 63 {
            // the first reader's last read, then this one
            let e = self.shared.readers.entry(k).or_default();
            *e = (epoch, vec![((last & 63) as u8 - 1, last >> 6)]);
            e
        } else {
            match self.shared.readers.get_mut(&k) {
                Some(e) if e.0 == epoch => e,
                // several readers whose reads were not kept: it stays unknown (a race)
                _ => return,
            }
        };
        match e.1.iter_mut().find(|(w, _)| *w as usize == wi) {
            Some(x) => x.1 = tick,
            None => e.1.push((wi as u8, tick)),
        }
    }

    fn count_sectors(&mut self, addrs: &[u64; 32], mask: u32, len: u64) {
        if !self.sim.config().profile {
            return;
        }
        self.sectors.clear();
        for l in lanes(mask) {
            let a = addrs[l];
            // Not global: the shared, local and param windows.
            if (GENERIC_SHARED..GENERIC_PARAM + WINDOW).contains(&a) {
                continue;
            }
            let mut s = a >> 5;
            while s <= (a + len - 1) >> 5 {
                self.sectors.push(s);
                s += 1;
            }
        }
        // Lanes usually go up through memory: sort only when they do not.
        if !self.sectors.is_sorted() {
            self.sectors.sort_unstable();
        }
        self.sectors.dedup();
        self.stats.sectors += self.sectors.len() as u64;
    }

    /// Where the accesses of the lanes of `m` land when all of them are aligned and inside one
    /// state space's bounds (the common case): what `locate` would find for each lane, so that
    /// the per-lane checks left are those on the bytes (written, races). `None`: resolve lane by
    /// lane.
    #[inline]
    fn bulk(&mut self, space: Space, addrs: &[u64; 32], m: u32, len: usize) -> Option<Bulk> {
        if !len.is_power_of_two() {
            return None;
        }
        let (mut lo, mut hi, mut or) = (u64::MAX, 0u64, 0u64);
        for (l, &a) in addrs.iter().enumerate() {
            if (m >> l) & 1 != 0 {
                lo = lo.min(a);
                hi = hi.max(a);
                or |= a;
            }
        }
        let len = len as u64;
        if or & (len - 1) != 0 || hi.checked_add(len).is_none() {
            return None;
        }
        let in_window = |base: u64| lo >= base && hi < base + WINDOW;
        let shared = |bias: u64| {
            let end = SHARED_BASE + self.shared.data.len() as u64;
            (lo - bias >= SHARED_BASE && hi - bias + len <= end).then_some(Bulk::Shared(bias + SHARED_BASE))
        };
        match space {
            // Generic addresses above every window are global; those in the param window go
            // lane by lane (`locate`), so that a generic store there faults.
            Space::Global | Space::Const => self.one_allocation(lo, hi + len - lo).map(Bulk::Global),
            Space::Generic if lo >= GENERIC_PARAM + WINDOW => self.one_allocation(lo, hi + len - lo).map(Bulk::Global),
            Space::Generic if in_window(GENERIC_SHARED) => shared(GENERIC_SHARED),
            Space::Generic if in_window(GENERIC_LOCAL) => {
                (hi - GENERIC_LOCAL + len <= self.plan.stack as u64).then_some(Bulk::Local(GENERIC_LOCAL))
            }
            Space::Shared | Space::SharedCluster => shared(0),
            Space::Local => (hi + len <= self.plan.stack as u64).then_some(Bulk::Local(0)),
            Space::Param => (hi + len <= self.params.len() as u64).then_some(Bulk::Param),
            Space::Generic => None,
        }
    }

    /// The allocation holding `[lo, lo + span)`.
    #[inline]
    fn one_allocation(&mut self, lo: u64, span: u64) -> Option<usize> {
        let allocs = &self.snap.allocs;
        let i = if self.last_alloc < allocs.len() && allocs[self.last_alloc].contains(lo, span) {
            self.last_alloc
        } else {
            self.snap.find(lo, span)?
        };
        self.last_alloc = i;
        Some(i)
    }

    /// `load` when `bulk` resolved the lanes' accesses: the checks and effects of `read_bytes`
    /// lane by lane, the registers written at the end.
    #[allow(clippy::too_many_arguments)]
    fn load_bulk(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        ty: Ty,
        d: &[Reg],
        addrs: &[u64; 32],
        at: Bulk,
    ) -> Result<()> {
        let esz = ty.bytes() as usize;
        let len = esz * d.len();
        let mut vals = [[0u64; 32]; 4];
        let (n, e) = (d.len(), Ext::new(ty));
        // Lane `l`'s destination values from the bytes it read.
        macro_rules! set {
            ($l:expr, $x:expr) => {{
                let (l, x) = ($l, $x);
                for (k, v) in vals.iter_mut().take(n).enumerate() {
                    v[l] = e.of(element(x, k, esz));
                }
            }};
        }
        match at {
            Bulk::Global(i) => {
                let al = &self.snap.allocs[i];
                let (tag, me) = (self.launch_tag, self.race_id());
                for l in lanes(m) {
                    let a = addrs[l];
                    // SAFETY: `bulk` checked that `[a, a + len)` is inside the allocation.
                    let x = unsafe { load_le(al.data_ptr(a), len) };
                    // SAFETY: as above; the shadow has one byte per data byte.
                    let sh = unsafe { std::slice::from_raw_parts(al.shadow_ptr(a), len) };
                    if !all_written(sh) {
                        return Err(self.unwritten_global(wi, l, pc, i, a, len));
                    }
                    if let Err(r) = al.race_access((a - al.base) as usize, len, tag, me, false) {
                        return Err(self.race_error(wi, l, pc, i, r, false));
                    }
                    set!(l, x);
                }
                self.stats.global_bytes_read += (len as u32 * m.count_ones()) as u64;
                self.count_sectors(addrs, m, len as u64);
            }
            Bulk::Shared(bias) => {
                for l in lanes(m) {
                    let o = (addrs[l] - bias) as usize;
                    let data = &self.shared.data[o..o + len];
                    // SAFETY: `data` has `len` bytes.
                    let x = unsafe { load_le(data.as_ptr(), len) };
                    if !all_written(&self.shared.init[o..o + len]) {
                        return Err(self.unwritten_shared(wi, l, pc, o, len));
                    }
                    self.shared_race(wi, l, pc, o, len, None)?;
                    if !self.copy_tags.is_empty() {
                        self.check_tma_ready(wi, l, pc, o, len)?;
                    }
                    set!(l, x);
                }
            }
            Bulk::Local(bias) => {
                let stack = self.plan.stack as usize;
                let local = &self.warps[wi].local;
                for l in lanes(m) {
                    let o = l * stack + (addrs[l] - bias) as usize;
                    let data = &local[o..o + len];
                    // SAFETY: `data` has `len` bytes.
                    set!(l, unsafe { load_le(data.as_ptr(), len) });
                }
            }
            Bulk::Param => {
                for l in lanes(m) {
                    let o = addrs[l] as usize;
                    let data = &self.params[o..o + len];
                    // SAFETY: `data` has `len` bytes.
                    set!(l, unsafe { load_le(data.as_ptr(), len) });
                }
            }
        }
        for (k, &r) in d.iter().enumerate() {
            self.put(wi, bank, r, m, &vals[k]);
        }
        Ok(())
    }

    /// `store` when `bulk` resolved the lanes' accesses (not `Param`): the checks and effects of
    /// `write_bytes` lane by lane. `vals` holds each source's lanes.
    #[allow(clippy::too_many_arguments)]
    fn store_bulk(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        esz: usize,
        vals: &[[u64; 32]],
        addrs: &[u64; 32],
        at: Bulk,
    ) -> Result<()> {
        let len = esz * vals.len();
        match at {
            Bulk::Global(i) => {
                let al = &self.snap.allocs[i];
                let (tag, me) = (self.launch_tag, self.race_id());
                for l in lanes(m) {
                    let a = addrs[l];
                    if let Err(r) = al.race_access((a - al.base) as usize, len, tag, me, true) {
                        return Err(self.race_error(wi, l, pc, i, r, true));
                    }
                    // SAFETY: `bulk` checked that `[a, a + len)` is inside the allocation; the
                    // shadow has one byte per data byte.
                    unsafe {
                        store_le(al.data_ptr(a), len, pack(vals, l, esz));
                        store_le(al.shadow_ptr(a), len, u128::from_le_bytes([INIT; 16]));
                    }
                }
                self.stats.global_bytes_written += (len as u32 * m.count_ones()) as u64;
                self.count_sectors(addrs, m, len as u64);
            }
            Bulk::Shared(bias) => {
                for l in lanes(m) {
                    let o = (addrs[l] - bias) as usize;
                    self.write_shared(wi, l, pc, o, &pack(vals, l, esz).to_le_bytes()[..len], false)?;
                }
            }
            Bulk::Local(bias) => {
                let stack = self.plan.stack as usize;
                for l in lanes(m) {
                    let o = l * stack + (addrs[l] - bias) as usize;
                    self.warps[wi].local[o..o + len].copy_from_slice(&pack(vals, l, esz).to_le_bytes()[..len]);
                }
            }
            Bulk::Param => unreachable!("stores to parameter space go lane by lane"),
        }
        Ok(())
    }

    /// Writes a load's `d.len()` elements of `ty`, the bytes in `buf`, to lane `l` of registers
    /// `d` (extended as the type asks).
    fn put_loaded(&mut self, wi: usize, bank: usize, ty: Ty, d: &[Reg], l: usize, buf: &[u8; 16]) {
        let esz = ty.bytes() as usize;
        let regs = &mut self.warps[wi].regs;
        for (k, &r) in d.iter().enumerate() {
            let mut b8 = [0u8; 8];
            b8[..esz].copy_from_slice(&buf[k * esz..(k + 1) * esz]);
            regs[(bank + r as usize) * 32 + l] = ext(u64::from_le_bytes(b8), ty);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn load(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        space: Space,
        ty: Ty,
        d: &[Reg],
        addr: &Addr,
    ) -> Result<()> {
        let esz = ty.bytes() as usize;
        let len = esz * d.len();
        let addrs = self.addrs(wi, bank, addr);
        if len > 16 {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                m.trailing_zeros() as usize,
                pc,
                format!("{len}-byte access: wider than 16 bytes"),
            ));
        }
        if d.len() <= 4
            && let Some(at) = self.bulk(space, &addrs, m, len)
        {
            return self.load_bulk(wi, pc, m, bank, ty, d, &addrs, at);
        }
        if space == Space::SharedCluster {
            // Addresses that may name another CTA of the cluster (`mapa`).
            return self.load_cluster(wi, pc, m, bank, ty, d, &addrs);
        }
        let mut buf = [0u8; 16];
        let mut global = false;
        for l in lanes(m) {
            let loc = self.locate(wi, l, pc, space, addrs[l], len as u32, len as u32)?;
            global |= matches!(loc, Loc::Global(..));
            self.read_bytes(wi, l, pc, &loc, len, &mut buf, false)?;
            // Destinations are written lane by lane: the addresses were all read above.
            self.put_loaded(wi, bank, ty, d, l, &buf);
        }
        if global {
            self.count_sectors(&addrs, m, len as u64);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        space: Space,
        ty: Ty,
        a: &[Src],
        addr: &Addr,
    ) -> Result<()> {
        let esz = ty.bytes() as usize;
        let len = esz * a.len();
        if len > 16 {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                m.trailing_zeros() as usize,
                pc,
                format!("{len}-byte access: wider than 16 bytes"),
            ));
        }
        let addrs = self.addrs(wi, bank, addr);
        let mut vals = [[0u64; 32]; 4];
        for (k, s) in a.iter().take(4).enumerate() {
            vals[k] = self.fetch(wi, bank, s);
        }
        if a.len() <= 4
            && space != Space::Param
            && let Some(at) = self.bulk(space, &addrs, m, len)
        {
            return self.store_bulk(wi, pc, m, esz, &vals[..a.len()], &addrs, at);
        }
        let mut buf = [0u8; 16];
        let mut global = false;
        for l in lanes(m) {
            let loc = self.locate(wi, l, pc, space, addrs[l], len as u32, len as u32)?;
            global |= matches!(loc, Loc::Global(..));
            for (k, v) in vals.iter().take(a.len()).enumerate() {
                for j in 0..esz {
                    buf[k * esz + j] = (v[l] >> (8 * j)) as u8;
                }
            }
            self.write_bytes(wi, l, pc, &loc, &buf[..len], false)?;
        }
        if global {
            self.count_sectors(&addrs, m, len as u64);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn atom(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        space: Space,
        op: AtomOp,
        ty: Ty,
        d: Option<Reg>,
        addr: &Addr,
        a: &Src,
        b: Option<&Src>,
    ) -> Result<()> {
        let esz = ty.bytes() as usize;
        let addrs = self.addrs(wi, bank, addr);
        let av = self.fetch(wi, bank, a);
        let bv = b.map(|b| self.fetch(wi, bank, b));
        let mut old = [0u64; 32];
        let mut buf = [0u8; 16];
        for l in lanes(m) {
            let loc = self.locate(wi, l, pc, space, addrs[l], esz as u32, esz as u32)?;
            self.read_bytes(wi, l, pc, &loc, esz, &mut buf, true)?;
            let mut x = 0u64;
            for (j, &b) in buf[..esz].iter().enumerate() {
                x |= (b as u64) << (8 * j);
            }
            let x = ext(x, ty);
            let v = ext(av[l], ty);
            let new = match op {
                AtomOp::Add if ty == Ty::F32 => of32(f32b(x) + f32b(v)),
                AtomOp::Add if ty == Ty::F64 => of64(f64b(x) + f64b(v)),
                AtomOp::Add => x.wrapping_add(v),
                AtomOp::And => x & v,
                AtomOp::Or => x | v,
                AtomOp::Xor => x ^ v,
                AtomOp::Exch => v,
                AtomOp::Min | AtomOp::Max => {
                    let lt = if ty.is_signed() { (x as i64) < (v as i64) } else { x < v };
                    if lt == (op == AtomOp::Min) { x } else { v }
                }
                AtomOp::Cas => {
                    if x == v {
                        bv.as_ref().map_or(x, |b| b[l])
                    } else {
                        x
                    }
                }
                AtomOp::Inc => {
                    if x >= v {
                        0
                    } else {
                        x + 1
                    }
                }
                AtomOp::Dec => {
                    if x == 0 || x > v {
                        v
                    } else {
                        x - 1
                    }
                }
            } & ty.mask();
            for (j, b) in buf[..esz].iter_mut().enumerate() {
                *b = (new >> (8 * j)) as u8;
            }
            self.write_bytes(wi, l, pc, &loc, &buf[..esz], true)?;
            old[l] = x & ty.mask();
        }
        if let Some(d) = d {
            self.put(wi, bank, d, m, &old);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Warp-synchronous instructions

    /// Moves the lanes of `skip` (the group's lanes whose guard is false) past `pc`.
    fn skip_guarded(&mut self, wi: usize, pc: u32, skip: u32) {
        if skip != 0 {
            let w = &mut self.warps[wi];
            w.materialize();
            for l in lanes(skip) {
                w.pc[l] = pc + 1;
            }
        }
    }

    /// Gathers the lanes of `mask` at this instruction. `Some(lanes)` when every lane of the mask
    /// is here (the group, joined by lanes parked here earlier); `None` when the group must wait.
    fn warp_sync(&mut self, wi: usize, pc: u32, active: u32, mask: u32) -> Result<Option<u32>> {
        let w = &mut self.warps[wi];
        if active == mask && w.at_wsync == 0 {
            // The whole mask is here and no lane waits elsewhere (the common case).
            return Ok(Some(active));
        }
        w.materialize();
        let parked_here = lanes(w.at_wsync).filter(|&l| w.pc[l] == pc).fold(0u32, |m, l| m | 1 << l);
        let here = active | parked_here;
        if active & !mask != 0 {
            let l = active.trailing_zeros() as usize;
            let mask_msg = format!(
                "lane {} executes it but is not in its member mask {mask:#010x}",
                (active & !mask).trailing_zeros()
            );
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l,
                pc,
                format!("warp-synchronous instruction: {mask_msg}"),
            ));
        }
        let missing = mask & !here;
        if missing == 0 {
            w.at_wsync &= !parked_here;
            return Ok(Some(here));
        }
        let gone = missing & (w.exited | !w.valid);
        if gone != 0 {
            let l = active.trailing_zeros() as usize;
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l,
                pc,
                format!(
                    "warp-synchronous instruction with member mask {mask:#010x}: lane {} has exited or does not exist",
                    gone.trailing_zeros()
                ),
            ));
        }
        // Park: the other lanes of the mask run until they arrive here.
        let w = &mut self.warps[wi];
        for l in lanes(active) {
            w.pc[l] = pc;
        }
        w.at_wsync |= active;
        w.wsync_mask = mask;
        Ok(None)
    }

    /// Moves the lanes `here` that completed a warp-synchronous instruction at `pc` on: as the
    /// group (`Next::Pc`) when they are exactly the group that ran it, else lane by lane.
    fn past_warp_sync(&mut self, wi: usize, pc: u32, group: u32, here: u32) -> Next {
        if here == group {
            return Next::Pc(pc + 1);
        }
        let w = &mut self.warps[wi];
        w.materialize();
        for l in lanes(here) {
            w.pc[l] = pc + 1;
        }
        Next::PerLane
    }

    #[allow(clippy::too_many_arguments)]
    fn shfl(
        &mut self,
        wi: usize,
        pc: u32,
        group: u32,
        m: u32,
        bank: usize,
        mode: ShflMode,
        d: Reg,
        p: Option<Reg>,
        a: &Src,
        b: &Src,
        c: &Src,
        mask: &Src,
    ) -> Result<Next> {
        let l0 = m.trailing_zeros() as usize;
        let mv = self.fetch(wi, bank, mask)[l0] as u32;
        self.skip_guarded(wi, pc, group & !m);
        let Some(here) = self.warp_sync(wi, pc, m, mv)? else { return Ok(Next::Wait) };
        let av = self.fetch(wi, bank, a);
        let bv = self.fetch(wi, bank, b);
        let cv = self.fetch(wi, bank, c);
        let mut r = [0u64; 32];
        let mut rp = [0u64; 32];
        for l in lanes(here) {
            let lane = l as u32;
            let bval = (bv[l] & 0x1f) as u32;
            let cval = (cv[l] & 0x1f) as u32;
            let seg = ((cv[l] >> 8) & 0x1f) as u32;
            let max_lane = (lane & seg) | (cval & !seg);
            let min_lane = lane & seg;
            let (j, ok) = match mode {
                ShflMode::Up => {
                    let j = lane as i32 - bval as i32;
                    (j, j >= max_lane as i32)
                }
                ShflMode::Down => {
                    let j = (lane + bval) as i32;
                    (j, j <= max_lane as i32)
                }
                ShflMode::Bfly => {
                    let j = (lane ^ bval) as i32;
                    (j, j <= max_lane as i32)
                }
                ShflMode::Idx => {
                    let j = (min_lane | (bval & !seg)) as i32;
                    (j, j <= max_lane as i32)
                }
            };
            let src = if ok { j as usize } else { l };
            if here & (1 << src) == 0 || mv & (1 << src) == 0 {
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    l,
                    pc,
                    format!("shfl.sync reads lane {src}, which is not in the member mask {mv:#010x} or not executing the shuffle"),
                ));
            }
            r[l] = av[src] & 0xffff_ffff;
            rp[l] = ok as u64;
        }
        self.put(wi, bank, d, here, &r);
        if let Some(p) = p {
            self.put(wi, bank, p, here, &rp);
        }
        Ok(self.past_warp_sync(wi, pc, group, here))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bfe` and `bfi` agree with their bit-by-bit definitions.
    #[test]
    fn bit_fields_agree_with_their_definitions() {
        let bfe_ref = |ty: Ty, a: u64, b: u64, c: u64| {
            let msb = ty.bits() - 1;
            let (pos, len) = ((b & 0xff) as u32, (c & 0xff) as u32);
            let x = a & ty.mask();
            let sbit = if ty.is_signed() && len > 0 { (x >> (pos + len - 1).min(msb)) & 1 } else { 0 };
            (0..=msb).fold(0u64, |d, i| d | (if i < len && pos + i <= msb { (x >> (pos + i)) & 1 } else { sbit }) << i)
        };
        let bfi_ref = |ty: Ty, f: u64, b: u64, pos: u64, len: u64| {
            let msb = ty.bits() - 1;
            let (pos, len) = ((pos & 0xff) as u32, (len & 0xff) as u32);
            let mut d = b & ty.mask();
            for i in 0..len.min(msb + 1) {
                if pos + i > msb {
                    break;
                }
                d = (d & !(1 << (pos + i))) | (((f >> i) & 1) << (pos + i));
            }
            d
        };
        let values = [0u64, 1, 0x8000_0000, 0xdead_beef_f00d_cafe, u64::MAX, 0x7fff_ffff, 0x8000_0000_0000_0001];
        let fields = [0u64, 1, 3, 7, 8, 13, 31, 32, 33, 63, 64, 65, 100, 255, 256 + 5];
        for ty in [Ty::U32, Ty::S32, Ty::U64, Ty::S64, Ty::B32, Ty::B64] {
            for &a in &values {
                for &p in &fields {
                    for &l in &fields {
                        assert_eq!(bfe(ty, a, p, l), bfe_ref(ty, a, p, l), "bfe {ty:?} {a:#x} {p} {l}");
                        assert_eq!(bfi(ty, a, !a, p, l), bfi_ref(ty, a, !a, p, l), "bfi {ty:?} {a:#x} {p} {l}");
                    }
                }
            }
        }
    }

    /// `setp_mask` agrees lane by lane with a comparison written out per type and operator.
    #[test]
    fn setp_agrees_with_its_definition() {
        fn compare(ty: Ty, cmp: Cmp, a: u64, b: u64) -> bool {
            use std::cmp::Ordering::*;
            let ord = match ty {
                Ty::F32 | Ty::F64 => {
                    let (x, y) = if ty == Ty::F32 { (f32b(a) as f64, f32b(b) as f64) } else { (f64b(a), f64b(b)) };
                    let unordered = x.is_nan() || y.is_nan();
                    let o = x.partial_cmp(&y);
                    return match cmp {
                        Cmp::Eq => o == Some(Equal),
                        Cmp::Ne => !unordered && o != Some(Equal),
                        Cmp::Lt => o == Some(Less),
                        Cmp::Le => matches!(o, Some(Less | Equal)),
                        Cmp::Gt => o == Some(Greater),
                        Cmp::Ge => matches!(o, Some(Greater | Equal)),
                        Cmp::Equ => unordered || o == Some(Equal),
                        Cmp::Neu => unordered || o != Some(Equal),
                        Cmp::Ltu => unordered || o == Some(Less),
                        Cmp::Leu => unordered || matches!(o, Some(Less | Equal)),
                        Cmp::Gtu => unordered || o == Some(Greater),
                        Cmp::Geu => unordered || matches!(o, Some(Greater | Equal)),
                        Cmp::Num => !unordered,
                        Cmp::Nan => unordered,
                    };
                }
                _ => {
                    let (x, y) = (ext(a, ty), ext(b, ty));
                    if ty.is_signed() { (x as i64).cmp(&(y as i64)) } else { x.cmp(&y) }
                }
            };
            match cmp {
                Cmp::Eq | Cmp::Equ => ord == Equal,
                Cmp::Ne | Cmp::Neu => ord != Equal,
                Cmp::Lt | Cmp::Ltu => ord == Less,
                Cmp::Le | Cmp::Leu => ord != Greater,
                Cmp::Gt | Cmp::Gtu => ord == Greater,
                Cmp::Ge | Cmp::Geu => ord != Less,
                Cmp::Num => true,
                Cmp::Nan => false,
            }
        }
        let cmps = [
            Cmp::Eq,
            Cmp::Ne,
            Cmp::Lt,
            Cmp::Le,
            Cmp::Gt,
            Cmp::Ge,
            Cmp::Equ,
            Cmp::Neu,
            Cmp::Ltu,
            Cmp::Leu,
            Cmp::Gtu,
            Cmp::Geu,
            Cmp::Num,
            Cmp::Nan,
        ];
        let f32s =
            [0f32, -0.0, 1.0, -1.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 3.0e-40].map(|x| x.to_bits() as u64);
        let f64s = [0f64, -0.0, 1.0, -1.5, f64::INFINITY, f64::NAN, 3.0e-310].map(f64::to_bits);
        let ints = [0u64, 1, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, u64::MAX, 0x1_0000_0001, 1 << 63];
        for ty in
            [Ty::F32, Ty::F64, Ty::U8, Ty::S8, Ty::S16, Ty::U32, Ty::S32, Ty::B32, Ty::U64, Ty::S64, Ty::F16, Ty::Pred]
        {
            let vals: &[u64] = match ty {
                Ty::F32 => &f32s,
                Ty::F64 => &f64s,
                _ => &ints,
            };
            for &cmp in &cmps {
                for &x in vals {
                    let ys: [u64; 32] = std::array::from_fn(|l| vals[l % vals.len()]);
                    let got = setp_mask(ty, cmp, x, &ys);
                    for (l, &y) in ys.iter().enumerate() {
                        assert_eq!((got >> l) & 1 != 0, compare(ty, cmp, x, y), "{ty:?} {cmp:?} {x:#x} {y:#x}");
                    }
                }
            }
        }
    }

    /// `Ext` and the `.lo`/`.wide` products agree with `ext` and `mul_int`.
    #[test]
    fn extension_and_products_agree_with_their_definitions() {
        let vals = [
            0u64,
            1,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            u64::MAX,
            0x1234_5678_9abc_def0,
        ];
        for ty in [Ty::U8, Ty::S8, Ty::U16, Ty::S16, Ty::U32, Ty::S32, Ty::B32, Ty::U64, Ty::S64, Ty::B64, Ty::Pred] {
            for &a in &vals {
                assert_eq!(Ext::new(ty).of(a), ext(a, ty), "{ty:?} {a:#x}");
                for &b in &vals {
                    for mode in [MulMode::Lo, MulMode::Wide] {
                        let e = Ext::new(ty);
                        assert_eq!(
                            e.of(a).wrapping_mul(e.of(b)) & product_mask(ty, mode),
                            mul_int(ty, mode, a, b),
                            "{ty:?} {mode:?} {a:#x} {b:#x}"
                        );
                    }
                }
            }
        }
    }
}
