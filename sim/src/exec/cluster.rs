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
//! - **Exit.** A CTA's shared memory is released when it exits: an mbarrier arrive on, or a
//!   multicast copy into, a CTA that has exited is an error; so is a CTA exiting while a copy
//!   into it is in flight, or while a peer that arrived on its mbarriers or multicast into it has
//!   not passed a cluster-barrier phase since (it may still do so).

use super::*;
use crate::ir::layout::cluster_target;

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
                                generic: vec![0; n],
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
                if self.woken_at != self.mbar_version && self.warps.iter().any(|w| w.hop.parked.is_some()) {
                    self.woken_at = self.mbar_version;
                    for w in &mut self.warps {
                        w.hop.parked = None;
                    }
                    any = true;
                }
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
                        "{}: CTA {} exits while CTA {} (cluster rank {p}), still running, may write into its shared memory: CTA {} arrived on its mbarriers or multicast into it and no barrier.cluster phase has completed since (a barrier.cluster.arrive/wait before exit orders those accesses before the exit)",
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
    /// barrier of the CTA its address names.
    pub(super) fn mbar_arrive_cluster(
        &mut self,
        wi: usize,
        pc: u32,
        m: u32,
        bank: usize,
        addr: &Addr,
        tx: Option<&Src>,
    ) -> Result<()> {
        let txv = tx.map(|t| self.fetch(wi, bank, t));
        for l in lanes(m) {
            let (target, a) = cluster_target(self.mbar_addr(wi, bank, addr, l));
            let me = self.cluster.rank;
            let target = target.unwrap_or(me);
            let t = txv.as_ref().map_or(0, |t| t[l] as u32);
            if target == me {
                self.arrive_one(wi, l, pc, a, t)?;
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
            r?;
        }
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

    /// `barrier.cluster.arrive` by lanes `m`.
    pub(super) fn cluster_arrive(&mut self, wi: usize, pc: u32, m: u32) -> Result<()> {
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
        let release = |warps: &mut [Warp], epoch: &mut u32| {
            if complete {
                *epoch += 1;
            }
            for w in warps {
                if complete {
                    w.cl_passed |= w.cl_arrived;
                    w.cl_arrived = 0;
                }
                let waiting: u32 =
                    lanes(w.at_bar & w.cl_passed).filter(|&l| w.bar_id[l] == CLUSTER_BAR).fold(0, |m, l| m | 1 << l);
                if waiting != 0 {
                    w.materialize();
                    w.at_bar &= !waiting;
                    w.cl_passed &= !waiting;
                    w.cl_seen = phase;
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
