//! The lowered form of a PTX module: what the parser produces once at load and the executor runs.
//!
//! Every function's instructions sit in one flat array of the module (`Module::code`), so a
//! program counter is a plain index and a branch target is resolved to one. Registers are dense
//! indices local to their function (`Function::reg_count`); the executor gives each function a
//! bank of its own in a warp's register file. Every register, whatever its PTX type, holds its
//! value in the low bits of a `u64` (upper bits zero); a `.pred` register holds 0 or 1.

/// A register index, local to its function.
pub type Reg = u32;

/// A PTX scalar type (the instruction's type suffix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Pred,
    B8,
    B16,
    B32,
    B64,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F16x2,
    Bf16,
    Bf16x2,
    F32,
    F64,
    E4m3x2,
    E5m2x2,
}

impl Ty {
    /// Size in bytes (`.pred`: 1, as a register; never stored to memory).
    #[inline]
    pub fn bytes(self) -> u32 {
        match self {
            Ty::Pred | Ty::B8 | Ty::U8 | Ty::S8 => 1,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 | Ty::Bf16 | Ty::E4m3x2 | Ty::E5m2x2 => 2,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 | Ty::F16x2 | Ty::Bf16x2 => 4,
            Ty::B64 | Ty::U64 | Ty::S64 | Ty::F64 => 8,
        }
    }
    #[inline]
    pub fn bits(self) -> u32 {
        self.bytes() * 8
    }
    #[inline]
    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }
    #[inline]
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2 | Ty::F32 | Ty::F64 | Ty::E4m3x2 | Ty::E5m2x2)
    }
    /// Mask of the value bits in a register.
    #[inline]
    pub fn mask(self) -> u64 {
        match self.bits() {
            64 => u64::MAX,
            b => (1u64 << b) - 1,
        }
    }
}

/// A special register (`%tid.x`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sreg {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    WarpId,
    /// The `.local` address of the lane's current call frame (see `Function::frame_bytes`). The
    /// parser lowers `__local_depotN` to `FrameBase + frame_params`, and a `.func`'s own `.param`
    /// names (its arguments, return values, and the `.param` scratch of the calls it makes) to
    /// `.local` accesses at `FrameBase + offset`.
    FrameBase,
    Clock,
    /// `%cluster_ctarank`: the CTA's rank in its cluster (x fastest).
    ClusterCtarank,
    /// `%cluster_nctarank`: CTAs per cluster.
    ClusterNctarank,
    /// `%clusterid.d`, `%nclusterid.d`: the cluster's index in the grid, clusters in the grid.
    Clusterid(u8),
    Nclusterid(u8),
    /// `%cluster_ctaid.d`, `%cluster_nctaid.d`: the CTA's index in its cluster, the cluster shape.
    ClusterCtaid(u8),
    ClusterNctaid(u8),
    /// `%is_explicit_cluster`: 1 when the launch has a cluster shape (the kernel's
    /// `.reqnctapercluster`), 0 for the implicit 1 × 1 × 1 cluster.
    IsExplicitCluster,
}

/// A source operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    Reg(Reg),
    /// Raw bits (an integer, or a float given as `0fXXXXXXXX` / `0dXXXXXXXXXXXXXXXX` or decimal).
    Imm(u64),
    Sreg(Sreg),
}

/// A memory state space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// No state space: a generic address (global, or inside the shared/local/param windows).
    Generic,
    Global,
    Shared,
    /// `.shared::cluster`: an address of the executing CTA's shared memory (as `.shared`), or one
    /// `mapa` made for another CTA of the cluster (`layout::cluster_shared`).
    SharedCluster,
    Local,
    /// Kernel parameters (entry) or call arguments (`.func`).
    Param,
    Const,
}

/// An address operand `[base+offset]`. A symbol (the dynamic shared memory, a `.param`) is folded
/// into `base = Imm(its address in its state space)` by the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    pub base: Src,
    pub offset: i64,
}

/// Comparison of `setp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Unordered forms (floats): true if either is NaN.
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    /// Ordered: neither is NaN. `Nan`: either is NaN.
    Num,
    Nan,
}

/// The boolean combiner of `setp.CMP.BOOL` (`setp.lt.and.f32 p, a, b, q`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

/// Rounding modifier of float arithmetic and `cvt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rnd {
    /// None given (exact conversions, integer truncation, or the default `.rn`).
    None,
    Rn,
    Rz,
    Rm,
    Rp,
    /// Integer rounding of a float: `.rni .rzi .rmi .rpi`.
    Rni,
    Rzi,
    Rmi,
    Rpi,
}

/// The multiply form of integer `mul`/`mad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MulMode {
    Lo,
    Hi,
    /// Result twice the operand width (`.wide`): the instruction's `ty` is the operand type.
    Wide,
}

/// Shuffle mode of `shfl.sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

/// Atomic / reduction operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    And,
    Or,
    Xor,
    Exch,
    Cas,
    Inc,
    Dec,
}

/// One lowered instruction. `guard` is the `@%p` / `@!%p` predicate.
#[derive(Clone, Debug)]
pub struct Inst {
    pub op: Op,
    pub guard: Option<(Reg, bool)>,
    /// 1-based line of the PTX text, for error reports.
    pub line: u32,
    /// Index of the function this instruction belongs to (`Module::functions`).
    pub func: u32,
}

/// The operation and its operands. Destination registers come first.
#[derive(Clone, Debug)]
pub enum Op {
    // ---- data movement ----
    /// `mov` (also `mov` of a symbol address, folded to an immediate, and `cvta.*` to/from a
    /// window when the executor must translate: see `Cvta`).
    Mov {
        ty: Ty,
        d: Reg,
        a: Src,
    },
    /// `cvta.SPACE` (`to == false`: state-space address -> generic) or `cvta.to.SPACE`.
    Cvta {
        space: Space,
        to: bool,
        d: Reg,
        a: Src,
    },
    /// `selp.ty d, a, b, p`.
    Selp {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
        p: Src,
    },
    /// `prmt.b32 d, a, b, c` (default mode only).
    Prmt {
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
    },

    // ---- integer and bitwise ----
    Add {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    Sub {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    /// Integer multiply (`mul.lo/.hi/.wide`).
    MulInt {
        ty: Ty,
        mode: MulMode,
        d: Reg,
        a: Src,
        b: Src,
    },
    /// Integer multiply-add (`mad.lo/.hi/.wide`).
    MadInt {
        ty: Ty,
        mode: MulMode,
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
    },
    Div {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    Rem {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    Min {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    Max {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    Neg {
        ty: Ty,
        d: Reg,
        a: Src,
    },
    Abs {
        ty: Ty,
        d: Reg,
        a: Src,
    },
    /// `and/or/xor` (also on `.pred`).
    And {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    Or {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    Xor {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    Not {
        ty: Ty,
        d: Reg,
        a: Src,
    },
    Shl {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    /// `shr.u*` logical, `shr.s*` arithmetic, `shr.b*` logical.
    Shr {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    /// `bfe.ty d, a, pos, len`.
    Bfe {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `bfi.b32/b64 d, f, b, pos, len`.
    Bfi {
        ty: Ty,
        d: Reg,
        f: Src,
        b: Src,
        pos: Src,
        len: Src,
    },
    Popc {
        ty: Ty,
        d: Reg,
        a: Src,
    },
    Clz {
        ty: Ty,
        d: Reg,
        a: Src,
    },
    Brev {
        ty: Ty,
        d: Reg,
        a: Src,
    },

    // ---- floating point (ty F32 or F64) ----
    FAdd {
        ty: Ty,
        rnd: Rnd,
        d: Reg,
        a: Src,
        b: Src,
    },
    FSub {
        ty: Ty,
        rnd: Rnd,
        d: Reg,
        a: Src,
        b: Src,
    },
    FMul {
        ty: Ty,
        rnd: Rnd,
        d: Reg,
        a: Src,
        b: Src,
    },
    Fma {
        ty: Ty,
        rnd: Rnd,
        d: Reg,
        a: Src,
        b: Src,
        c: Src,
    },
    FDiv {
        ty: Ty,
        rnd: Rnd,
        d: Reg,
        a: Src,
        b: Src,
    },
    FMin {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    FMax {
        ty: Ty,
        d: Reg,
        a: Src,
        b: Src,
    },
    /// `min`/`max` on 16-bit floats (`.f16`, `.bf16`, or two of them packed, `.f16x2`,
    /// `.bf16x2`), `nan`: the `.NaN` form (a NaN operand gives the canonical NaN).
    HMinMax {
        ty: Ty,
        max: bool,
        nan: bool,
        d: Reg,
        a: Src,
        b: Src,
    },
    FNeg {
        ty: Ty,
        d: Reg,
        a: Src,
    },
    FAbs {
        ty: Ty,
        d: Reg,
        a: Src,
    },
    Rcp {
        ty: Ty,
        rnd: Rnd,
        d: Reg,
        a: Src,
    },
    Sqrt {
        ty: Ty,
        rnd: Rnd,
        d: Reg,
        a: Src,
    },

    // ---- comparison and conversion ----
    /// `setp.cmp[.bool].ty p[|q], a, b[, c]`: `q` (the complement) and `c` with `bool`.
    Setp {
        ty: Ty,
        cmp: Cmp,
        bool_op: Option<(BoolOp, Src)>,
        p: Reg,
        q: Option<Reg>,
        a: Src,
        b: Src,
    },
    /// `cvt[.rnd][.sat].dty.sty d, a`. For the packed forms (`cvt.rn.bf16x2.f32 d, a, b`,
    /// `cvt.rn.satfinite.e4m3x2.f32 d, a, b`), `b` is the second source: the
    /// PTX ISA puts the conversion of `a` in the upper half of `d` and that of `b` in the lower.
    Cvt {
        dty: Ty,
        sty: Ty,
        rnd: Rnd,
        sat: bool,
        satfinite: bool,
        d: Reg,
        a: Src,
        b: Option<Src>,
    },

    // ---- memory ----
    /// `ld[.space][.volatile|.nc][.vN].ty {d..}, [addr]`: `d.len()` is the vector width (1, 2, 4).
    Ld {
        space: Space,
        ty: Ty,
        d: Vec<Reg>,
        addr: Addr,
    },
    /// `st[.space][.vN].ty [addr], {a..}`.
    St {
        space: Space,
        ty: Ty,
        a: Vec<Src>,
        addr: Addr,
    },
    /// `atom[.space].op.ty d, [addr], a[, b]` (`b`: the new value of `cas`).
    Atom {
        space: Space,
        op: AtomOp,
        ty: Ty,
        d: Option<Reg>,
        addr: Addr,
        a: Src,
        b: Option<Src>,
    },

    // ---- warp and CTA ----
    /// `shfl.sync.mode.b32 d[|p], a, b, c, membermask`.
    Shfl {
        mode: ShflMode,
        d: Reg,
        p: Option<Reg>,
        a: Src,
        b: Src,
        c: Src,
        mask: Src,
    },
    /// `bar.warp.sync membermask`.
    BarWarpSync {
        mask: Src,
    },
    /// `bar.sync id[, count]` / `barrier.sync`.
    BarSync {
        id: Src,
        count: Option<Src>,
    },
    /// `membar.*` / `fence.*` with no other effect in the simulator (sequentially consistent).
    Fence,

    // ---- Hopper asynchronous machinery (sm_90a) ----
    /// `mbarrier.init.shared[::cta].b64 [addr], count`.
    MbarInit {
        addr: Addr,
        count: Src,
    },
    /// `mbarrier.arrive[.expect_tx][.sem.scope].shared[::cta|::cluster].b64 state|_, [addr][, tx]`:
    /// `d` receives the state token (`None` for the sink `_`); `tx` the expected transaction
    /// bytes; `cluster` for `.shared::cluster`, whose address may name a barrier of another CTA
    /// of the cluster (from `mapa`); `release_cluster` for release semantics at cluster scope
    /// (`.release.cluster`, or `.cluster` alone), which orders the arriving CTA's shared-memory
    /// writes before the reads of a peer that acquires the phase (`.acquire.cluster`).
    MbarArrive {
        d: Option<Reg>,
        addr: Addr,
        tx: Option<Src>,
        cluster: bool,
        release_cluster: bool,
        /// `.relaxed`: no release at all (the default is `.release.cta`).
        relaxed: bool,
    },
    /// `mbarrier.expect_tx.shared[::cta].b64 [addr], tx`.
    MbarExpectTx {
        addr: Addr,
        tx: Src,
    },
    /// `mbarrier.try_wait.parity[.sem.scope][.shared::cta].b64 p, [addr], parity` (`test_wait`
    /// with `test`); `acquire_cluster` for acquire semantics at cluster scope
    /// (`.acquire.cluster`, or `.cluster` alone).
    MbarTryWait {
        p: Reg,
        addr: Addr,
        parity: Src,
        test: bool,
        acquire_cluster: bool,
        /// `.relaxed`: no acquire at all (the default is `.acquire.cta`).
        relaxed: bool,
    },
    /// `cp.async.bulk.tensor.Nd.shared::cluster.global[.tile].mbarrier::complete_tx::bytes
    /// [dst], [map, {coords}], [mbar]`; with `.multicast::cluster` a 16-bit `ctaMask` operand:
    /// the box lands at the same shared offset in every CTA of the mask, completing its bytes on
    /// the mbarrier at the same offset in each. `map` is the generic address of a tensor map in
    /// the kernel's parameters (the param window) or in global memory.
    CpAsyncBulkTensor {
        dst: Addr,
        map: Src,
        coords: Vec<Src>,
        mbar: Addr,
        multicast: Option<Src>,
    },
    /// `mapa.shared::cluster.u32|u64 d, a, rank`: the `.shared::cluster` address of the variable
    /// at shared address `a` in the cluster's CTA `rank`.
    Mapa {
        d: Reg,
        a: Src,
        rank: Src,
    },
    /// `barrier.cluster.arrive[.release|.relaxed][.aligned]` (release semantics unless
    /// `relaxed`).
    ClusterArrive {
        relaxed: bool,
    },
    /// `barrier.cluster.wait[.acquire][.aligned]`: waits until every non-exited thread of the
    /// cluster has arrived in the phase this thread arrived in.
    ClusterWait,
    /// `cp.async.bulk.tensor.Nd.global.shared::cta[.tile].bulk_group [map, {coords}], [src]`: a
    /// TMA store of one box from shared memory, in the calling thread's bulk async-group (`map`
    /// as in `CpAsyncBulkTensor`).
    TmaStore {
        map: Src,
        coords: Vec<Src>,
        src: Addr,
    },
    /// `cp.async.bulk.commit_group`: the calling thread's uncommitted bulk copies form a group.
    BulkCommit,
    /// `cp.async.bulk.wait_group[.read] n`: waits until at most `n` of the thread's newest
    /// committed groups are pending (`.read`: until their reads of shared memory are done).
    BulkWait {
        n: u32,
        read: bool,
    },
    /// `fence.proxy.async[.shared::cta|.shared::cluster|.global]`: orders the thread's generic-proxy
    /// accesses before its later async-proxy operations; `shared` when it covers shared memory.
    FenceProxyAsync {
        shared: bool,
    },
    /// `stmatrix.sync.aligned.m8n8.xN[.trans].shared[::cta].b16 [addr], {a..}`: `a.len()` (1, 2
    /// or 4) 8 × 8 matrices of b16 from the warp's registers; lanes `8q .. 8q + 8` give the row
    /// addresses of matrix `q`.
    StMatrix {
        trans: bool,
        addr: Addr,
        a: Vec<Src>,
    },
    /// `wgmma.mma_async.sync.aligned.mMnNkK.dty.aty.bty {d..}, a_desc, b_desc, scale_d,
    /// imm_scale_a, imm_scale_b[, tnsp_a, tnsp_b]`.
    Wgmma {
        m: u32,
        n: u32,
        k: u32,
        dty: Ty,
        aty: Ty,
        bty: Ty,
        d: Vec<Reg>,
        a_desc: Src,
        b_desc: Src,
        scale_d: Src,
        scale_a: i32,
        scale_b: i32,
        tnsp_a: u32,
        tnsp_b: u32,
    },
    WgmmaFence,
    WgmmaCommit,
    /// `wgmma.wait_group.sync.aligned n`.
    WgmmaWait {
        n: u32,
    },
    /// `setmaxnreg.inc|dec.sync.aligned.u32 n`.
    SetMaxNReg {
        inc: bool,
        n: u32,
    },

    // ---- control ----
    /// `bra[.uni] target` (a resolved program counter).
    Bra {
        target: u32,
    },
    /// `brx.idx index, table`: `table` indexes `Module::branch_tables`.
    BrxIdx {
        index: Src,
        table: u32,
    },
    /// `call[.uni] (rets), func, (args)`: the callee's argument/return `.param` names are resolved
    /// to frame offsets by the parser (`args`: caller param-space addresses copied in order).
    Call {
        func: u32,
        args: Vec<u32>,
        rets: Vec<u32>,
    },
    Ret,
    Exit,
    Trap,
    /// An instruction with no effect in the simulator (`prefetch`, `pmevent`, ...).
    Nop,
}

/// A function (`.entry` kernel or `.func`) of the module.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub is_entry: bool,
    /// Index of its first instruction in `Module::code`.
    pub start: u32,
    /// One past its last instruction.
    pub end: u32,
    pub reg_count: u32,
    /// Parameters: (offset in the parameter buffer, size in bytes, alignment).
    pub params: Vec<Param>,
    /// Size of the parameter buffer: an entry's kernel parameters (`.param` space, read from the
    /// launch's buffer), or a `.func`'s arguments and return values (the start of its frame).
    pub param_bytes: u32,
    /// Return values of a `.func` (offsets in its param buffer after the arguments).
    pub rets: Vec<Param>,
    /// Bytes of its local depot (`.local .b8 __local_depotN[...]`), 0 if none.
    pub local_bytes: u32,
    /// Bytes of `.param` scratch it declares for its own calls (`{ .param .b64 param0; ... }`).
    pub call_param_bytes: u32,
    /// A lane's frame for this function in `.local` space: `[frame_params | depot | call scratch]`
    /// where `frame_params` is `param_bytes` for a `.func` and 0 for an entry. A call places the
    /// callee's frame right after the caller's.
    pub frame_params: u32,
    /// `.maxntid` if given.
    pub maxntid: Option<[u32; 3]>,
    /// `.reqntid` if given.
    pub reqntid: Option<[u32; 3]>,
    /// `.reqnctapercluster` if given: the launch runs clusters of this shape.
    pub reqnctapercluster: Option<[u32; 3]>,
    /// Line of its header.
    pub line: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub offset: u32,
    pub size: u32,
    pub align: u32,
}

impl Function {
    /// Bytes of one lane's frame of this function.
    pub fn frame_bytes(&self) -> u32 {
        self.frame_params + self.local_bytes + self.call_param_bytes
    }
}

/// Where the state spaces sit. `.shared` addresses of a CTA start at `SHARED_BASE` (static
/// variables, then the dynamic shared memory); `.local` addresses of a lane start at 0; `.param`
/// addresses of a kernel's parameters are offsets in its parameter buffer. Generic addresses in
/// `[GENERIC_SHARED, +WINDOW)`, `[GENERIC_LOCAL, +WINDOW)` and `[GENERIC_PARAM, +WINDOW)` are
/// those windows (`cvta`); every other generic address is global. Device allocations start at
/// `GLOBAL_BASE`.
pub mod layout {
    pub const SHARED_BASE: u64 = 0x400;
    pub const WINDOW: u64 = 1 << 32;
    pub const GENERIC_SHARED: u64 = 0x0000_0100_0000_0000;
    pub const GENERIC_LOCAL: u64 = 0x0000_0200_0000_0000;
    /// Where an entry's parameters begin in the constant bank that holds them on sm_90
    /// (`c[0x0][0x210]`): ptxas aligns each parameter at its bank address, so its offset in the
    /// parameter buffer is `align_up(PARAM_BANK + end of the previous, align) - PARAM_BANK`
    /// (a 64-byte aligned parameter after 112 bytes of others is at offset 112, not 128).
    pub const PARAM_BANK: u32 = 0x210;
    /// The generic address of an entry's parameter offset 0 (read-only: `__grid_constant__`
    /// parameters such as tensor maps), `PARAM_BANK` above a 4 KiB boundary, so that a
    /// parameter's generic address has the alignment of its bank address, as on the GPU.
    pub const GENERIC_PARAM: u64 = 0x0000_0300_0000_0000 + PARAM_BANK as u64;
    pub const GLOBAL_BASE: u64 = 0x0000_7000_0000_0000;
    /// `.shared::cluster` addresses of another CTA's shared memory (what `mapa` returns):
    /// `(rank + 1) << CLUSTER_SHIFT` above its `.shared` address. Addresses below
    /// `1 << CLUSTER_SHIFT` are the executing CTA's own.
    pub const CLUSTER_SHIFT: u32 = 24;

    /// The `.shared::cluster` address of shared address `a` (`.shared`, or already a cluster
    /// address) in the cluster's CTA `rank`.
    pub fn cluster_shared(a: u64, rank: u32) -> u64 {
        (a & ((1 << CLUSTER_SHIFT) - 1)) | ((rank as u64 + 1) << CLUSTER_SHIFT)
    }

    /// The CTA rank a `.shared::cluster` address names (`None`: the executing CTA) and its
    /// `.shared` address there.
    pub fn cluster_target(a: u64) -> (Option<u32>, u64) {
        let hi = a >> CLUSTER_SHIFT;
        if hi == 0 { (None, a) } else { (Some(hi as u32 - 1), a & ((1 << CLUSTER_SHIFT) - 1)) }
    }
}

/// A loaded module.
#[derive(Clone, Debug, Default)]
pub struct Module {
    pub functions: Vec<Function>,
    pub code: Vec<Inst>,
    /// `.branchtargets` tables of `brx.idx`, resolved to program counters.
    pub branch_tables: Vec<Vec<u32>>,
    /// Bytes of static `.shared` variables (laid out first in a CTA's shared memory); dynamic
    /// shared memory (`.extern .shared`) starts at `dynamic_smem_offset`.
    pub static_smem_bytes: u32,
    pub dynamic_smem_offset: u32,
    /// `.version` and `.target` as written.
    pub version: String,
    pub target: String,
    /// The source text's lines, for reports (kept so an error can quote the instruction).
    pub lines: Vec<String>,
}

impl Module {
    pub fn function(&self, name: &str) -> Option<(u32, &Function)> {
        self.functions.iter().enumerate().find(|(_, f)| f.name == name).map(|(i, f)| (i as u32, f))
    }
    /// The source line of `line` (1-based), trimmed.
    pub fn source_line(&self, line: u32) -> &str {
        self.lines.get((line as usize).wrapping_sub(1)).map(|s| s.trim()).unwrap_or("")
    }
}
