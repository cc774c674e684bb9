//! Thread-block clusters (sm_90): the CTAs of a kernel with `.reqnctapercluster` run cluster by
//! cluster, together.
//!
//! - **Scheduling.** The CTAs of a cluster take turns: at each turn one CTA is swapped into
//!   `Run`'s fields (`Run::swap_to`) and one of its warps runs as in a launch without clusters
//!   (until it blocks, or for a random quantum with `Config::seed`, which also picks the CTA and
//!   lands copies in flight at random points). A deadlock is reported when no warp of any CTA of
//!   the cluster can run and no copy is left to land.
//! - **Addresses.** A `.shared::cluster` address below `1 << CLUSTER_SHIFT` is the executing
//!   CTA's `.shared` address; `mapa.shared::cluster` sets the bits above to `rank + 1`
//!   (`layout::cluster_shared`).
//! - **Remote mbarrier arrive** (`mbarrier.arrive[.release.cluster].shared::cluster.b64 _, [a]`
//!   with an address from `mapa`): arrives on the barrier of that CTA.
//! - **Multicast TMA** (`cp.async.bulk.tensor...multicast::cluster`, 16-bit `ctaMask`): one
//!   copy per CTA of the mask, each landing at the same shared offset and completing its bytes
//!   on the mbarrier at the same offset of its CTA, with that CTA's checks (a wgmma in flight
//!   reading the bytes, a TMA store still reading them, and the readers' waits on the phase).
//! - **`barrier.cluster.arrive` / `.wait`**: a phase completes once every non-exited thread of
//!   the cluster has arrived; a wait returns once the phase its thread arrived in has completed.
//! - **Initialization.** An mbarrier of another CTA may be arrived on or multicast into only by a
//!   warp that has returned from a `barrier.cluster.wait` whose phase completed after the barrier
//!   was initialized (the PTX ISA orders the init before remote uses only through such a
//!   barrier: `fence.mbarrier_init.release.cluster`, then the cluster barrier).
//! - **Exit.** A CTA's shared memory is released when it exits: an mbarrier arrive on, a
//!   multicast copy into, or a read of a CTA that has exited is an error; so is a CTA exiting
//!   while a copy into it is in flight, or while a peer that arrived on its mbarriers, multicast
//!   into it or read it has not passed a cluster-barrier phase since (it may still do so).
//! - **Distributed shared memory.** `ld.shared::cluster` at an address that names another CTA
//!   reads that CTA's `Shared` in place (`peers[rank]`, no swap), lane by lane (`load_cluster`);
//!   launches without clusters, and loads at the executing CTA's own addresses, keep the usual
//!   paths. Stores and atomics into another CTA are reported as not modelled.
//! - **Cluster-scope order.** Every CTA counts its shared-memory writes and remote reads
//!   (`Run::tick`; `Shared::generic` holds each byte's last write tick). A release (an
//!   `mbarrier.arrive` with `.release.cluster`, a `barrier.cluster.arrive` that is not
//!   `.relaxed`) records, by rank, the releasing CTA's tick and what the releasing warp has
//!   acquired of the others (`release_ticks`): for an mbarrier in the phase it arrives in
//!   (`Release`), for the cluster barrier in its current phase. A warp acquires (its
//!   `Warp::acquired`, by rank) the releases of an mbarrier's completed phases when its
//!   `try_wait`/`test_wait` with `.acquire.cluster` succeeds, those of the cluster barrier when
//!   it returns from `barrier.cluster.wait`, and the others' at a `bar.sync` it waits at with
//!   them (`share_acquired`). A remote read of a byte whose write tick is past what the warp
//!   acquired of its CTA is an error (`read_peer`); each remote read is recorded in the read
//!   CTA's `Shared::remote` (reader rank and tick), and a later write of the byte by a warp that
//!   has not acquired the reader's tick is an error (`check_remote_overwrite`). Limits: a release
//!   covers all of its CTA's writes before it, whichever warp made them; only the last remote
//!   read of a byte is kept; bytes a TMA load wrote are not checked on a remote read.

use super::*;
use crate::ir::layout::cluster_target;

/// The releases on one mbarrier (of cluster CTA `cta`, at `slot`), by releasing rank (cluster
/// scope, `N = MAX_CLUSTER`) or warp (CTA scope, `N = MAX_WARPS`, `exec::hopper`): the newest
/// tick (`Run::tick` of the releasing CTA) released by an arrive in phase `phase` (not known
/// complete when last looked at), and by the arrives of every phase before it.
#[derive(Clone, Copy)]
pub(super) struct Release<const N: usize> {
    pub cta: u32,
    pub slot: usize,
    phase: u32,
    cur: [u64; N],
    pub done: [u64; N],
}

impl<const N: usize> Release<N> {
    pub fn new(cta: u32, slot: usize, phase: u32) -> Self {
        Release { cta, slot, phase, cur: [0; N], done: [0; N] }
    }

    /// Once the barrier has completed `completed` phases, the arrives of `phase` belong to a
    /// completed phase.
    pub fn settle(&mut self, completed: u32) {
        if self.phase < completed {
            max_into(&mut self.done, &self.cur);
            self.cur = [0; N];
            self.phase = completed;
        }
    }

    /// An arrive in phase `phase` releases `rel`.
    fn release(&mut self, phase: u32, rel: &[u64; N]) {
        self.settle(phase);
        max_into(&mut self.cur, rel);
    }
}

/// Records in `rs` a release `rel` by an arrive in phase `phase` of the mbarrier at `slot` of
/// cluster CTA `cta`.
pub(super) fn record_in<const N: usize>(rs: &mut Vec<Release<N>>, cta: u32, slot: usize, phase: u32, rel: &[u64; N]) {
    match rs.iter_mut().find(|r| r.cta == cta && r.slot == slot) {
        Some(r) => r.release(phase, rel),
        None => {
            let mut r = Release::new(cta, slot, phase);
            r.release(phase, rel);
            rs.push(r);
        }
    }
}

/// An acquire into `acq` of what the arrives of the mbarrier at `slot` of cluster CTA `cta`
/// released in its first `completed` phases (the releases recorded in `rs`).
pub(super) fn acquire_from<const N: usize>(
    rs: &mut [Release<N>],
    cta: u32,
    slot: usize,
    completed: u32,
    acq: &mut [u64; N],
) {
    if let Some(r) = rs.iter_mut().find(|r| r.cta == cta && r.slot == slot) {
        r.settle(completed);
        max_into(acq, &r.done);
    }
}

/// `a[i] = max(a[i], b[i])` for every index (rank, or warp).
pub(super) fn max_into<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x = (*x).max(y);
    }
}

/// The tick part of a `Shared::remote` entry.
const TICK_BITS: u32 = 60;

impl Run<'_> {
    /// Exchanges the CTA state in `Run`'s fields with `peers[i]`.
    fn exchange(&mut self, i: usize) {
        let mut peers = std::mem::take(&mut self.cluster.peers);
        let p = &mut peers[i];
        std::mem::swap(&mut self.shared, &mut p.shared);
        std::mem::swap(&mut self.warps, &mut p.warps);
        std::mem::swap(&mut self.ctaid, &mut p.ctaid);
        std::mem::swap(&mut self.cta_linear, &mut p.cta_linear);
        std::mem::swap(&mut self.bar_arrived, &mut p.bar_arrived);
        std::mem::swap(&mut self.bar_expected, &mut p.bar_expected);
        std::mem::swap(&mut self.epoch, &mut p.epoch);
        std::mem::swap(&mut self.mbars, &mut p.mbars);
        std::mem::swap(&mut self.copy_tags, &mut p.copy_tags);
        std::mem::swap(&mut self.tma_tag, &mut p.tma_tag);
        std::mem::swap(&mut self.copies_in_flight, &mut p.copies_in_flight);
        std::mem::swap(&mut self.wgmma_in_flight, &mut p.wgmma_in_flight);
        std::mem::swap(&mut self.mbar_version, &mut p.mbar_version);
        std::mem::swap(&mut self.woken_at, &mut p.woken_at);
        std::mem::swap(&mut self.tick, &mut p.tick);
        std::mem::swap(&mut self.bulk_reads, &mut p.bulk_reads);
        self.cluster.peers = peers;
    }

    /// Makes CTA `rank` of the cluster the one in `Run`'s fields.
    pub(super) fn swap_to(&mut self, rank: u32) {
        let cur = self.cluster.rank;
        if rank == cur {
            return;
        }
        self.exchange(cur as usize);
        self.exchange(rank as usize);
        self.cluster.rank = rank;
    }

    /// Runs the cluster whose first CTA is `base` (a multiple of the cluster shape).
    pub(super) fn run_cluster(&mut self, base: [u32; 3]) -> Result<()> {
        let [kx, ky, _] = self.cluster.dims;
        let size = self.cluster.size;
        if self.cluster.peers.len() != size as usize {
            // Buffers for the other CTAs, allocated once per launch.
            let n = self.plan.smem_bytes as usize;
            let nwarps = self.plan.threads.div_ceil(32);
            let mut spare = Spare::default();
            let running = self.cluster.rank;
            self.cluster.peers = (0..size)
                .map(|r| {
                    if r == running {
                        CtaState::default()
                    } else {
                        CtaState {
                            shared: Shared {
                                data: vec![0; n],
                                init: vec![0; n],
                                w: vec![0; n],
                                r: vec![0; n],
                                wl: vec![0; n],
                                rl: vec![0; n],
                                generic: vec![0; n],
                                rt: vec![0; n],
                                ..Shared::default()
                            },
                            warps: new_warps(self.plan, nwarps, &mut spare),
                            mbars: vec![Mbar::default(); n / 8],
                            tma_tag: vec![0; n],
                            epoch: 1,
                            woken_at: u64::MAX,
                            ..CtaState::default()
                        }
                    }
                })
                .collect();
        }
        self.cluster.done.fill(false);
        self.cluster.touched.fill(u32::MAX);
        self.cluster.phase = 0;
        self.cluster.pending = false;
        self.cluster.releases.clear();
        self.cluster.bar_cur = [0; MAX_CLUSTER];
        self.cluster.bar_done = [0; MAX_CLUSTER];
        for r in 0..size {
            self.swap_to(r);
            let (x, y, z) = (r % kx, (r / kx) % ky, r / (kx * ky));
            self.init_cta([base[0] + x, base[1] + y, base[2] + z]);
        }
        let mut cur = vec![0usize; size as usize];
        let mut next_rank = 0u32;
        loop {
            let mut progressed = false;
            for k in 0..size {
                let r =
                    if self.rng.is_some() { (self.next_rand() % size as u64) as u32 } else { (next_rank + k) % size };
                if self.cluster.done[r as usize] {
                    continue;
                }
                self.swap_to(r);
                self.unpark();
                if self.land_random_copy()? {
                    progressed = true;
                    break;
                }
                if let Some(wi) = self.run_one_warp(cur[r as usize])? {
                    progressed = true;
                    cur[r as usize] = wi + 1;
                    // A CTA whose threads have all exited releases its shared memory now (its
                    // own copies in flight land first).
                    if self.copies_in_flight.is_empty() && self.warps.iter().all(|w| w.live() == 0) {
                        self.cta_exits()?;
                    }
                }
                if progressed {
                    next_rank = r + 1;
                    break;
                }
            }
            if progressed {
                continue;
            }
            // Seeded picks may miss a runnable warp: look at every CTA before concluding.
            let mut any = false;
            for r in 0..size {
                if self.cluster.done[r as usize] {
                    continue;
                }
                self.swap_to(r);
                self.unpark();
                if self.warps.iter().any(|w| w.can_run()) {
                    any = true;
                    break;
                }
                // Copies still in flight land before anything is concluded.
                if let Some(c) = self.copies_in_flight.pop() {
                    self.land(c)?;
                    any = true;
                    break;
                }
                if self.warps.iter().all(|w| w.live() == 0) {
                    self.cta_exits()?;
                    any = true;
                    break;
                }
                self.release_barriers()?;
                self.unpark();
                if self.warps.iter().any(|w| w.can_run()) {
                    any = true;
                    break;
                }
            }
            if any {
                continue;
            }
            if self.cluster.done.iter().all(|&d| d) {
                return Ok(());
            }
            // `try_wait` returns false once its time limit passes: wake each CTA's pollers once
            // per change of its mbarriers.
            for r in 0..size {
                if self.cluster.done[r as usize] {
                    continue;
                }
                self.swap_to(r);
                any |= self.wake_pollers();
            }
            if any {
                continue;
            }
            let mut msg = format!(
                "{}: deadlock in the cluster of CTA {:?}: no warp of its CTAs can run.",
                self.kernel.name(),
                base
            );
            for r in 0..size {
                if self.cluster.done[r as usize] {
                    msg += &format!(" CTA rank {r} has exited.");
                    continue;
                }
                self.swap_to(r);
                msg += &format!(" [rank {r}] {}", self.deadlock().message);
            }
            if self.cluster.pending {
                msg += " The cluster barrier's current phase has arrivals, not yet from every non-exited thread.";
            }
            return Err(SimError::new(ErrorKind::LaunchFailed, msg));
        }
    }

    /// The CTA in `Run`'s fields has no live thread left: its exit checks, then it is done.
    fn cta_exits(&mut self) -> Result<()> {
        self.check_bulk_reads_at_exit()?;
        self.check_warpgroups()?;
        let (me, size) = (self.cluster.rank, self.cluster.size);
        let name = |c: [u32; 3]| format!("({}, {}, {})", c[0], c[1], c[2]);
        for p in 0..size {
            if p == me || self.cluster.done[p as usize] {
                continue;
            }
            let peer = &self.cluster.peers[p as usize];
            if let Some(c) = peer.copies_in_flight.iter().find(|c| c.rank == me) {
                return Err(SimError::new(
                    ErrorKind::LaunchFailed,
                    format!(
                        "{}: CTA {} exits while a multicast TMA copy into its shared memory (issued by CTA {}, PTX line {}) is in flight",
                        self.kernel.name(),
                        name(self.ctaid),
                        name(peer.ctaid),
                        self.m.code[c.pc as usize].line
                    ),
                ));
            }
            let t = self.cluster.touched[(p * size + me) as usize];
            if t != u32::MAX && t >= self.cluster.phase {
                return Err(SimError::new(
                    ErrorKind::LaunchFailed,
                    format!(
                        "{}: CTA {} exits while CTA {} (cluster rank {p}), still running, may write into or read its shared memory: CTA {} arrived on its mbarriers, multicast into it or read it (ld.shared::cluster) and no barrier.cluster phase has completed since (a barrier.cluster.arrive/wait before exit orders those accesses before the exit)",
                        self.kernel.name(),
                        name(self.ctaid),
                        name(peer.ctaid),
                        name(peer.ctaid)
                    ),
                ));
            }
        }
        self.cluster.done[me as usize] = true;
        // Its threads no longer count at the cluster barrier.
        if self.cluster.pending {
            self.release_cluster_barrier();
        }
        Ok(())
    }

    /// Records that lane `lane` of warp `wi` accesses the shared memory of cluster CTA `target`.
    fn touch(&mut self, wi: usize, lane: usize, target: u32) {
        let c = &mut self.cluster;
        if target == c.rank {
            return;
        }
        let arrived = (self.warps[wi].cl_arrived >> lane) & 1;
        c.touched[(c.rank * c.size + target) as usize] = c.phase + arrived;
    }

    /// An error unless cluster CTA `target` exists and has not exited.
    fn check_peer(&self, wi: usize, lane: usize, pc: u32, target: u32, what: &str) -> Result<()> {
        if target >= self.cluster.size {
            return Err(self.fault(
                ErrorKind::IllegalAddress,
                wi,
                lane,
                pc,
                format!("{what} CTA rank {target} of a cluster of {} CTAs", self.cluster.size),
            ));
        }
        if self.cluster.done[target as usize] {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                lane,
                pc,
                format!("{what} cluster CTA rank {target}, which has exited (its shared memory is released)"),
            ));
        }
        Ok(())
    }

    /// `mbarrier.arrive.shared::cluster` of lanes `m` at the addresses of `addr`: each on the
    /// barrier of the CTA its address names (`release_cta`: with release semantics at CTA scope,
    /// on the executing CTA's barriers; `release_cluster`: at cluster scope, recorded for the
    /// barrier's phase).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mbar_arrive_cluster(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        addr: &Addr,
        tx: Option<&Src>,
        (release_cta, release_cluster): (bool, bool),
    ) -> Result<()> {
        let txv = tx.map(|t| self.fetch(wi, bank, t));
        let release = release_cluster && self.cluster.size > 1;
        // one number for the lanes of this arrive (`LaneOrder::arrive`)
        let number = if release_cta { self.warps[wi].lanes.arrive() } else { 0 };
        for l in lanes(m) {
            let (target, a) = cluster_target(self.mbar_addr(wi, bank, addr, l));
            let me = self.cluster.rank;
            let target = target.unwrap_or(me);
            let t = txv.as_ref().map_or(0, |t| t[l] as u32);
            let rel = if release { self.release_ticks(wi) } else { [0; MAX_CLUSTER] };
            if target == me {
                let phase = self.arrive_one(wi, l, pc, a, t)?;
                if release_cta {
                    self.release_local(wi, ((a - SHARED_BASE) / 8) as usize, phase);
                    self.release_lanes(wi, l, number, ((a - SHARED_BASE) / 8) as usize, phase);
                }
                if release {
                    self.record_release(me, ((a - SHARED_BASE) / 8) as usize, phase, &rel);
                }
                continue;
            }
            self.check_peer(wi, l, pc, target, "mbarrier.arrive on a barrier of")?;
            self.touch(wi, l, target);
            let from = self.ctaid;
            let seen = self.warps[wi].cl_seen;
            self.swap_to(target);
            self.cluster.landing_from = Some(from);
            let r = self.check_remote_mbar(wi, l, pc, a, seen).and_then(|()| self.arrive_one(wi, l, pc, a, t));
            self.cluster.landing_from = None;
            self.swap_to(me);
            let phase = r?;
            if release {
                self.record_release(target, ((a - SHARED_BASE) / 8) as usize, phase, &rel);
            }
        }
        Ok(())
    }

    /// What a cluster-scope release by warp `wi` covers, by rank: this CTA's writes and remote
    /// reads so far (its tick), and what the warp has acquired of the other CTAs' (releases are
    /// cumulative).
    pub(super) fn release_ticks(&self, wi: usize) -> [u64; MAX_CLUSTER] {
        let mut r = self.warps[wi].acquired;
        r[self.cluster.rank as usize] = self.tick;
        r
    }

    /// Records a cluster-scope release `rel` by an arrive in phase `phase` of the mbarrier at
    /// `slot` of cluster CTA `cta`.
    pub(super) fn record_release(&mut self, cta: u32, slot: usize, phase: u32, rel: &[u64; MAX_CLUSTER]) {
        record_in(&mut self.cluster.releases, cta, slot, phase, rel);
    }

    /// A cluster-scope acquire by warp `wi` of the mbarrier at `slot` of this CTA, which has
    /// completed `completed` phases: the warp acquires what the arrives of those phases released.
    pub(super) fn acquire_releases(&mut self, wi: usize, slot: usize, completed: u32) {
        let cta = self.cluster.rank;
        acquire_from(&mut self.cluster.releases, cta, slot, completed, &mut self.warps[wi].acquired);
    }

    /// The mbarrier at `slot` of this CTA is initialized again: its releases are gone.
    pub(super) fn forget_releases(&mut self, slot: usize) {
        let cta = self.cluster.rank;
        self.cluster.releases.retain(|r| !(r.cta == cta && r.slot == slot));
    }

    /// Barrier `id` of this CTA releases its waiters: each of their warps has then acquired what
    /// any of them had (a CTA barrier orders everything before it in the CTA before everything
    /// after it).
    pub(super) fn share_acquired(&mut self, id: u8) {
        let mut acq = [0u64; MAX_CLUSTER];
        for w in self.warps.iter().filter(|w| w.waiting_at(id) != 0) {
            max_into(&mut acq, &w.acquired);
        }
        for w in self.warps.iter_mut().filter(|w| w.waiting_at(id) != 0) {
            w.acquired = acq;
        }
    }

    /// The `.shared` address of this CTA that the `.shared::cluster` address `a` of a store or
    /// an atomic names: those into another CTA's shared memory are not modelled.
    pub(super) fn own_cluster_address(&self, wi: usize, lane: usize, pc: u32, a: u64) -> Result<u64> {
        match cluster_target(a) {
            (None, _) => Ok(a),
            (Some(t), local) if t == self.cluster.rank => Ok(local),
            (Some(t), local) => {
                self.check_peer(wi, lane, pc, t, "access to the shared memory of")?;
                Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    lane,
                    pc,
                    format!(
                        "store or atomic at shared address 0x{local:x} of cluster CTA rank {t} (a .shared::cluster address of another CTA): the simulator models loads from another CTA's shared memory (ld.shared::cluster), not stores or atomics into it"
                    ),
                ))
            }
        }
    }

    /// `ld.shared::cluster` by lanes `m` at `addrs`: an address that names another CTA of the
    /// cluster (`mapa`) reads that CTA's shared memory (`read_peer`); any other is this CTA's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn load_cluster(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        ty: Ty,
        d: &[Reg],
        addrs: &[u64; 32],
    ) -> Result<()> {
        let esz = ty.bytes() as usize;
        let len = esz * d.len();
        let me = self.cluster.rank;
        let mut buf = [0u8; 16];
        for l in lanes(m) {
            match cluster_target(addrs[l]) {
                (Some(t), a) if t != me => self.read_peer(wi, l, pc, t, a, len, &mut buf)?,
                (_, a) => {
                    let loc = self.locate(wi, l, pc, Space::Shared, a, len as u32, len as u32)?;
                    self.read_bytes(wi, l, pc, &loc, len, &mut buf, false)?;
                }
            }
            // Destinations are written lane by lane: the addresses were all read before.
            self.put_loaded(wi, bank, ty, d, l, &buf);
        }
        Ok(())
    }

    /// Lane `l` of warp `wi` reads `len` bytes at shared address `a` of cluster CTA `t` (not this
    /// one) into `out`. The CTA must exist and not have exited, the access be aligned and inside
    /// its shared memory, every byte written, and each byte's last generic write ordered before
    /// the read by a cluster-scope release of `t` that this warp acquired. The read is recorded
    /// for the exit check (`touch`) and for `t`'s later writes of the bytes
    /// (`check_remote_overwrite`).
    #[allow(clippy::too_many_arguments)]
    fn read_peer(
        &mut self,
        wi: usize,
        l: usize,
        pc: u32,
        t: u32,
        a: u64,
        len: usize,
        out: &mut [u8; 16],
    ) -> Result<()> {
        self.check_peer(wi, l, pc, t, "ld.shared::cluster from")?;
        if a % len as u64 != 0 {
            return Err(self.fault(
                ErrorKind::MisalignedAddress,
                wi,
                l,
                pc,
                format!("misaligned {len}-byte access at shared address 0x{a:x} of cluster CTA rank {t} (needs {len}-byte alignment)"),
            ));
        }
        let size = self.shared.data.len();
        let end = SHARED_BASE + size as u64;
        if a < SHARED_BASE || a + len as u64 > end {
            return Err(self.fault(
                ErrorKind::IllegalAddress,
                wi,
                l,
                pc,
                format!(
                    "out-of-bounds shared::cluster access of {len} bytes at shared address 0x{a:x} of cluster CTA rank {t}: the launch has {size} bytes of shared memory per CTA at [0x{SHARED_BASE:x}, 0x{end:x})"
                ),
            ));
        }
        self.touch(wi, l, t);
        let o = (a - SHARED_BASE) as usize;
        let acquired = self.warps[wi].acquired[t as usize];
        self.tick += 1;
        let stamp = ((self.cluster.rank as u64 + 1) << TICK_BITS) | self.tick;
        let peer = &mut self.cluster.peers[t as usize].shared;
        out[..len].copy_from_slice(&peer.data[o..o + len]);
        let unwritten = peer.init[o..o + len].iter().position(|&b| b == 0);
        let late = (o..o + len).find(|&k| peer.generic[k] > acquired);
        if unwritten.is_none() && late.is_none() {
            if peer.remote.is_empty() {
                peer.remote.resize(size, 0);
            }
            peer.remote[o..o + len].fill(stamp);
            return Ok(());
        }
        let peer_cta = self.cluster.peers[t as usize].ctaid;
        let name = format!("cluster CTA rank {t} (CTA ({}, {}, {}))", peer_cta[0], peer_cta[1], peer_cta[2]);
        let msg = match (unwritten, late) {
            (Some(k), _) => format!(
                "ld.shared::cluster reads shared memory never written: shared address 0x{:x} of {name}",
                a + k as u64
            ),
            (None, k) => format!(
                "ld.shared::cluster reads shared address 0x{:x} of {name}, written after the last release of cluster CTA rank {t} that this warp acquired: an mbarrier.arrive.release.cluster by rank {t} after the write, on an mbarrier of this CTA whose phase this warp then waited on with mbarrier.try_wait.parity.acquire.cluster (or a barrier.cluster arrive/wait), orders the write before the read",
                SHARED_BASE + k.unwrap_or(o) as u64
            ),
        };
        Err(self.fault(ErrorKind::LaunchFailed, wi, l, pc, msg))
    }

    /// Warp `wi` (lane `lane`) writes shared bytes `[o, o + len)` of this CTA (by `what`): each
    /// remote read of them by another CTA of the cluster must be ordered before the write, by a
    /// cluster-scope release of the reader after its read that this warp acquired.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_remote_overwrite(
        &mut self,
        wi: usize,
        lane: usize,
        pc: u32,
        o: usize,
        len: usize,
        what: &str,
    ) -> Result<()> {
        let acquired = self.warps[wi].acquired;
        let bad = (o..o + len).find(|&k| {
            let e = self.shared.remote[k];
            e != 0 && acquired[((e >> TICK_BITS) - 1) as usize] < e & ((1 << TICK_BITS) - 1)
        });
        if let Some(k) = bad {
            let reader = (self.shared.remote[k] >> TICK_BITS) - 1;
            let c = self.cluster.peers.get(reader as usize).map_or([0; 3], |p| p.ctaid);
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                lane,
                pc,
                format!(
                    "{what} overwrites shared address 0x{:x}, which cluster CTA rank {reader} (CTA ({}, {}, {})) read through ld.shared::cluster, and this warp has acquired no release of rank {reader} after that read: an mbarrier.arrive.release.cluster by rank {reader} after the read, on an mbarrier of this CTA whose phase this warp then waited on with mbarrier.try_wait.parity.acquire.cluster (or a barrier.cluster arrive/wait), orders the read before the write",
                    SHARED_BASE + k as u64,
                    c[0],
                    c[1],
                    c[2]
                ),
            ));
        }
        // The reads are ordered before this write, and so before whatever is ordered after it.
        self.shared.remote[o..o + len].fill(0);
        Ok(())
    }

    /// A remote operation on the mbarrier at shared address `a` of the CTA in `Run`'s fields (a
    /// peer of the issuing warp, which has seen `seen` cluster-barrier phases complete): the
    /// barrier must be initialized, and a cluster-barrier phase must have completed between its
    /// initialization and the issuing warp's last wait.
    fn check_remote_mbar(&self, wi: usize, l: usize, pc: u32, a: u64, seen: u32) -> Result<()> {
        let slot = self.mbar_slot(wi, l, pc, a)?;
        let b = self.mbars[slot];
        if !b.live || seen <= b.init_cluster {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                l,
                pc,
                format!(
                    "remote use of the mbarrier at shared address 0x{a:x}, {}",
                    if b.live {
                        "whose initialization no barrier.cluster wait of this warp has ordered before it (fence.mbarrier_init.release.cluster, then barrier.cluster.arrive/wait)"
                    } else {
                        "which is not initialized"
                    }
                ),
            ));
        }
        Ok(())
    }

    /// The rank a `mapa` maps to, or an error.
    pub(super) fn mapa(&mut self, wi: usize, pc: u32, m: u32, bank: usize, d: Reg, a: &Src, rank: &Src) -> Result<()> {
        let av = self.fetch(wi, bank, a);
        let rv = self.fetch(wi, bank, rank);
        let mut out = [0u64; 32];
        for l in lanes(m) {
            let r = rv[l] as u32;
            if r >= self.cluster.size {
                return Err(self.fault(
                    ErrorKind::LaunchFailed,
                    wi,
                    l,
                    pc,
                    format!("mapa to CTA rank {r} of a cluster of {} CTAs", self.cluster.size),
                ));
            }
            let x = av[l];
            let x = if (GENERIC_SHARED..GENERIC_SHARED + WINDOW).contains(&x) { x - GENERIC_SHARED } else { x };
            let (_, local) = cluster_target(x);
            if local < SHARED_BASE || local >= SHARED_BASE + self.shared.data.len() as u64 {
                return Err(self.fault(
                    ErrorKind::IllegalAddress,
                    wi,
                    l,
                    pc,
                    format!(
                        "mapa of 0x{x:x}: not an address inside the launch's {} bytes of shared memory",
                        self.shared.data.len()
                    ),
                ));
            }
            out[l] = crate::ir::layout::cluster_shared(local, r);
        }
        self.put(wi, bank, d, m, &out);
        Ok(())
    }

    /// The value of a cluster special register for this CTA.
    pub(super) fn cluster_sreg(&self, sr: Sreg) -> u64 {
        let c = &self.cluster;
        (match sr {
            Sreg::ClusterCtarank => c.rank,
            Sreg::ClusterNctarank => c.size,
            Sreg::Clusterid(d) => self.ctaid[d as usize] / c.dims[d as usize],
            Sreg::Nclusterid(d) => self.cfg.grid[d as usize] / c.dims[d as usize],
            Sreg::ClusterCtaid(d) => self.ctaid[d as usize] % c.dims[d as usize],
            Sreg::ClusterNctaid(d) => c.dims[d as usize],
            Sreg::IsExplicitCluster => c.explicit as u32,
            _ => 0,
        }) as u64
    }

    /// A multicast copy's landing: into the CTA `c.rank` names (swapped in for it).
    pub(super) fn land(&mut self, c: Copy) -> Result<()> {
        let me = self.cluster.rank;
        if c.rank == me {
            return self.tma_complete(c);
        }
        if self.cluster.done[c.rank as usize] {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                c.wi,
                c.lane,
                c.pc,
                format!("multicast TMA copy into cluster CTA rank {}, which has exited", c.rank),
            ));
        }
        let from = self.ctaid;
        self.swap_to(c.rank);
        self.cluster.landing_from = Some(from);
        let r = self.tma_complete(c);
        self.cluster.landing_from = None;
        self.swap_to(me);
        r
    }

    /// Checks a multicast copy's CTA mask and records the accesses to the peers' memory; the
    /// ranks of the mask.
    pub(super) fn multicast_ranks(
        &mut self,
        wi: usize,
        lane: usize,
        pc: u32,
        mask: u64,
        mbar: u64,
    ) -> Result<Vec<u32>> {
        let mask = mask as u16;
        if mask == 0 {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                lane,
                pc,
                "multicast TMA copy with an empty ctaMask".into(),
            ));
        }
        let mut ranks = Vec::new();
        for r in 0..16u32 {
            if mask & (1 << r) != 0 {
                self.check_peer(wi, lane, pc, r, "multicast TMA copy into")?;
                self.touch(wi, lane, r);
                let me = self.cluster.rank;
                if r != me {
                    let (from, seen) = (self.ctaid, self.warps[wi].cl_seen);
                    self.swap_to(r);
                    self.cluster.landing_from = Some(from);
                    let res = self.check_remote_mbar(wi, lane, pc, mbar, seen);
                    self.cluster.landing_from = None;
                    self.swap_to(me);
                    res?;
                }
                ranks.push(r);
            }
        }
        Ok(ranks)
    }

    /// `barrier.cluster.arrive` by lanes `m` (a release unless `relaxed`).
    pub(super) fn cluster_arrive(&mut self, wi: usize, pc: u32, m: u32, relaxed: bool) -> Result<()> {
        let w = &self.warps[wi];
        let twice = (w.cl_arrived | w.cl_passed) & m;
        if twice != 0 {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                twice.trailing_zeros() as usize,
                pc,
                "barrier.cluster.arrive by a thread that arrived before and has not executed barrier.cluster.wait since".into(),
            ));
        }
        self.warps[wi].cl_arrived |= m;
        if !relaxed && self.cluster.size > 1 {
            let rel = self.release_ticks(wi);
            max_into(&mut self.cluster.bar_cur, &rel);
        }
        self.cluster.pending = true;
        self.release_cluster_barrier();
        Ok(())
    }

    /// `barrier.cluster.wait` by lanes `m` of `group`: `None` when they pass at once, else they
    /// wait (parked at the barrier until their phase completes).
    pub(super) fn cluster_wait(&mut self, wi: usize, pc: u32, group: u32, m: u32) -> Result<Option<Next>> {
        let w = &mut self.warps[wi];
        let none = m & !(w.cl_arrived | w.cl_passed);
        if none != 0 {
            return Err(self.fault(
                ErrorKind::LaunchFailed,
                wi,
                none.trailing_zeros() as usize,
                pc,
                "barrier.cluster.wait by a thread that has not executed barrier.cluster.arrive".into(),
            ));
        }
        if w.cl_passed & m == m {
            w.cl_passed &= !m;
            w.cl_seen = self.cluster.phase;
            max_into(&mut w.acquired, &self.cluster.bar_done);
            return Ok(None);
        }
        let skip = group & !m;
        w.materialize();
        for l in lanes(skip) {
            w.pc[l] = pc + 1;
        }
        for l in lanes(m) {
            w.pc[l] = pc;
            w.bar_id[l] = CLUSTER_BAR;
        }
        w.at_bar |= m;
        Ok(Some(Next::Wait))
    }

    /// Completes the cluster barrier's phase once every non-exited thread of the cluster has
    /// arrived, and releases the waiters whose phase has completed.
    pub(super) fn release_cluster_barrier(&mut self) {
        let me = self.cluster.rank as usize;
        let (mut all, mut any) = (true, false);
        let mut scan = |warps: &[Warp]| {
            for w in warps {
                if w.live() & !w.cl_arrived != 0 {
                    all = false;
                }
                any |= w.cl_arrived != 0;
            }
        };
        scan(&self.warps);
        for (r, p) in self.cluster.peers.iter().enumerate() {
            if r != me {
                scan(&p.warps);
            }
        }
        let complete = all && any;
        let phase = self.cluster.phase + complete as u32;
        if complete {
            let cur = std::mem::replace(&mut self.cluster.bar_cur, [0; MAX_CLUSTER]);
            max_into(&mut self.cluster.bar_done, &cur);
        }
        let done = self.cluster.bar_done;
        let release = |warps: &mut [Warp], epoch: &mut u32| {
            if complete {
                *epoch += 1;
            }
            for w in warps {
                if complete {
                    w.cl_passed |= w.cl_arrived;
                    w.cl_arrived = 0;
                }
                let waiting: u32 = w.waiting_at(CLUSTER_BAR) & w.cl_passed;
                if waiting != 0 {
                    w.materialize();
                    w.at_bar &= !waiting;
                    w.cl_passed &= !waiting;
                    w.cl_seen = phase;
                    max_into(&mut w.acquired, &done);
                    for l in lanes(waiting) {
                        w.pc[l] += 1;
                    }
                }
            }
        };
        release(&mut self.warps, &mut self.epoch);
        let mut peers = std::mem::take(&mut self.cluster.peers);
        for (r, p) in peers.iter_mut().enumerate() {
            if r != me {
                release(&mut p.warps, &mut p.epoch);
            }
        }
        self.cluster.peers = peers;
        if complete {
            self.cluster.phase += 1;
            self.cluster.pending = false;
        }
    }
}
