//! PTX text → [`Module`]: the parser that lowers a module once, at load, to the IR the executor
//! runs (see `ir.rs` for what each operation means).
//!
//! The text is read in three steps: comments are blanked out (line numbers kept), the text is cut
//! into statements (at `;`, and at the `{`/`}` of blocks and `name:` labels, so a statement may
//! span lines), and each statement is lowered. A form the simulator does not implement exactly is
//! an [`ErrorKind::InvalidPtx`] error naming the line and the form, never skipped.
//!
//! Conventions of the lowering (what the executor relies on):
//! - Registers get dense indices per function, assigned at first use (`%r17` is one index however
//!   it was declared). A `.reg` declared inside a nested `{ }` block gets an index of its own
//!   (shadowing an outer name); a closed block's indices are reused by later blocks.
//! - `Inst::guard` is `Some((p, negated))`: `@%p` gives `(p, false)`, `@!%p` gives `(p, true)`.
//! - Immediates are raw bits masked to the operand's type (`-1` in an `.s32` operand is
//!   `0xffff_ffff`; a `.pred` immediate is 0 or 1). A float literal is converted to the operand's
//!   type (`0f` in an `.f64` operand is widened, `0d` in an `.f32` operand rounded to nearest).
//! - A signed load into a register wider than its type (`ld.s8 %rs1`, `ld.s32 %rd1`) is the
//!   `Ld` followed by a `Cvt` (`.s16.s8`, `.s64.s32`) that sign-extends to the register's declared
//!   width; every other `Ld` leaves the `ty`-wide value zero-extended.
//! - `mov.b32 {lo, hi}, %r` (and `.b64`) is lowered to `Shr`/`And` per element; `mov.b32 %r,
//!   {lo, hi}` to `Shl`/`Or`; the sink `_` is dropped.
//! - Symbols: `.shared` variables fold to `Imm(SHARED_BASE + offset)` (static variables first,
//!   then the dynamic shared memory at `Module::dynamic_smem_offset`); an entry's `[name_param_k+o]`
//!   to `Space::Param` at `Addr { base: Imm(param offset), offset: o }`, and an entry's parameter
//!   name as a source operand (`mov.b64 %rd, name_param_k`) to `Imm(param offset)`, its `.param`
//!   address (`cvta.param` adds `layout::GENERIC_PARAM`); a `.func`'s own `.param`
//!   names and every function's call scratch (`{ .param .b64 param0; ... }`) to `Space::Local` at
//!   `Addr { base: Sreg(FrameBase), offset: frame offset + o }`; `.local` variables (the depot) to
//!   `FrameBase + frame_params + their offset` (`mov` of the depot is an `Add`).
//! - A frame is `[frame_params | locals | call scratch]`, each part a multiple of 16 bytes; the
//!   scratch of successive call blocks overlaps (one block at a time is live).
//! - `Op::Call::args`/`rets` are the caller-frame offsets of the scratch `.param`s named in the
//!   call, in order; the callee's `Function::params`/`rets` give where each is copied to.
//! - Branch targets and `Module::branch_tables` entries are indices into `Module::code`.
//! - Packed `cvt` (`cvt.rn.bf16x2.f32 d, a, b`): `a` and `b` are the PTX operands in order; the
//!   PTX ISA puts the conversion of `a` in the upper half of `d` and that of `b` in the lower.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::{ErrorKind, Result, SimError};
use crate::ir::{
    Addr, AtomOp, BoolOp, Cmp, Function, Inst, Module, MulMode, Op, Param, Reg, Rnd, ShflMode, Space, Src, Sreg, Ty,
    layout,
};

/// Parses and lowers a whole PTX module.
pub fn parse_module(ptx: &str) -> Result<Module> {
    let clean = strip_comments(ptx)?;
    let toks = split(&clean)?;
    let mut p = Parser {
        m: Module::default(),
        shared: FxMap::default(),
        funcs: FxMap::default(),
        calls: Vec::new(),
        address_size: false,
    };
    p.m.lines = ptx.lines().map(str::to_owned).collect();
    p.run(&toks)?;
    Ok(p.m)
}

fn err(line: u32, msg: impl Display) -> SimError {
    SimError::new(ErrorKind::InvalidPtx, format!("line {line}: {msg}"))
}

// ---------------------------------------------------------------------------------------------
// Hashing: short names, looked up several times per instruction.

/// The FxHash function (as in rustc): fast on short keys, no DoS concern for a parser.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

// ---------------------------------------------------------------------------------------------
// Lexing.

/// The text with `//` and `/* */` comments replaced by spaces (newlines kept).
fn strip_comments(ptx: &str) -> Result<String> {
    let mut b = ptx.as_bytes().to_vec();
    let (mut i, mut line) = (0, 1u32);
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\n' {
                        return Err(err(line, "unterminated string"));
                    }
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    b[i] = b' ';
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = line;
                b[i] = b' ';
                b[i + 1] = b' ';
                i += 2;
                loop {
                    if i + 1 >= b.len() {
                        return Err(err(start, "unterminated /* comment"));
                    }
                    if b[i] == b'*' && b[i + 1] == b'/' {
                        b[i] = b' ';
                        b[i + 1] = b' ';
                        i += 2;
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                    } else {
                        b[i] = b' ';
                    }
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Whole comments (which start and end at ASCII bytes) became ASCII spaces: still UTF-8.
    String::from_utf8(b).map_err(|_| err(0, "the PTX text is not UTF-8"))
}

#[derive(Clone, Copy, Debug)]
enum Item<'a> {
    /// A statement ended by `;`.
    Stmt(&'a str),
    /// A function header: a statement ended by the `{` of its body (the `Open` that follows).
    Header(&'a str),
    Open,
    Close,
    Label(&'a str),
}

#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    item: Item<'a>,
    line: u32,
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'%')
}

/// Cuts the (comment-free) text into statements, block braces and labels.
fn split(text: &str) -> Result<Vec<Tok<'_>>> {
    let b = text.as_bytes();
    let mut toks = Vec::with_capacity(b.len() / 24);
    let (mut i, mut line) = (0usize, 1u32);
    let mut start: Option<(usize, u32)> = None;
    let mut nest = 0i32;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => line += 1,
            b' ' | b'\t' | b'\r' => {}
            b';' if start.is_some() && nest == 0 => {
                let (s, l) = start.take().unwrap_or((i, line));
                toks.push(Tok { item: Item::Stmt(text[s..i].trim_end()), line: l });
            }
            b';' if start.is_none() => {} // an empty statement
            b'{' if start.is_none() => toks.push(Tok { item: Item::Open, line }),
            b'{' if nest == 0 && start.is_some_and(|(s, _)| b[s] == b'.') => {
                let (s, l) = start.take().unwrap_or((i, line));
                toks.push(Tok { item: Item::Header(text[s..i].trim_end()), line: l });
                toks.push(Tok { item: Item::Open, line });
            }
            b'}' if start.is_none() => toks.push(Tok { item: Item::Close, line }),
            b'{' | b'(' | b'[' => {
                if start.is_none() {
                    start = Some((i, line));
                }
                nest += 1;
            }
            b'}' | b')' | b']' => {
                nest -= 1;
                if nest < 0 {
                    let l = start.map_or(line, |s| s.1);
                    return Err(err(l, format!("unbalanced '{}'", c as char)));
                }
            }
            b'"' => {
                if start.is_none() {
                    start = Some((i, line));
                }
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
            }
            _ => {
                if start.is_none() && c == b'.' {
                    // Directives that end at the end of their line, without ';'.
                    let rest = &b[i..];
                    let word = rest
                        .iter()
                        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'.' || *c == b'_'))
                        .unwrap_or(rest.len());
                    if matches!(&rest[..word], b".version" | b".target" | b".address_size" | b".loc" | b".file") {
                        let end = rest.iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
                        toks.push(Tok { item: Item::Stmt(text[i..end].trim_end()), line });
                        i = end;
                        continue;
                    }
                }
                if start.is_none() {
                    // A label `name:` (not `a::b`) at the start of a statement.
                    let mut j = i;
                    while j < b.len() && is_ident_byte(b[j]) {
                        j += 1;
                    }
                    if j > i && b.get(j) == Some(&b':') && b.get(j + 1) != Some(&b':') {
                        toks.push(Tok { item: Item::Label(&text[i..j]), line });
                        i = j + 1;
                        continue;
                    }
                    start = Some((i, line));
                }
            }
        }
        i += 1;
    }
    if let Some((_, l)) = start {
        return Err(err(l, "statement without ';' at the end of the text"));
    }
    Ok(toks)
}

/// Splits operands at the commas outside brackets, trimmed; empty text gives none.
fn split_top(s: &str) -> Vec<&str> {
    let s = s.trim();
    let mut out = Vec::with_capacity(4);
    if s.is_empty() {
        return out;
    }
    let (mut depth, mut from) = (0i32, 0usize);
    for (i, c) in s.bytes().enumerate() {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                out.push(s[from..i].trim());
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[from..].trim());
    out
}

/// The items of `{a, b}` (or `(a, b)` with `open = '('`).
fn list(s: &str, open: char, close: char) -> Option<Vec<&str>> {
    let inner = s.trim().strip_prefix(open)?.strip_suffix(close)?;
    Some(split_top(inner))
}

// ---------------------------------------------------------------------------------------------
// Literals and type names.

fn parse_ty(s: &str) -> Option<Ty> {
    Some(match s {
        "pred" => Ty::Pred,
        "b8" => Ty::B8,
        "b16" => Ty::B16,
        "b32" => Ty::B32,
        "b64" => Ty::B64,
        "u8" => Ty::U8,
        "u16" => Ty::U16,
        "u32" => Ty::U32,
        "u64" => Ty::U64,
        "s8" => Ty::S8,
        "s16" => Ty::S16,
        "s32" => Ty::S32,
        "s64" => Ty::S64,
        "f16" => Ty::F16,
        "f16x2" => Ty::F16x2,
        "bf16" => Ty::Bf16,
        "bf16x2" => Ty::Bf16x2,
        "f32" => Ty::F32,
        "f64" => Ty::F64,
        "e4m3x2" => Ty::E4m3x2,
        "e5m2x2" => Ty::E5m2x2,
        _ => return None,
    })
}

fn is_int(ty: Ty) -> bool {
    !ty.is_float() && ty != Ty::Pred
}

fn is_f32_f64(ty: Ty) -> bool {
    matches!(ty, Ty::F32 | Ty::F64)
}

fn space_word(s: &str) -> Option<Space> {
    Some(match s {
        "global" => Space::Global,
        "shared" | "shared::cta" => Space::Shared,
        "shared::cluster" => Space::SharedCluster,
        "local" => Space::Local,
        "param" | "param::entry" | "param::func" => Space::Param,
        "const" => Space::Const,
        _ => return None,
    })
}

fn rnd_word(s: &str) -> Option<Rnd> {
    Some(match s {
        "rn" => Rnd::Rn,
        "rz" => Rnd::Rz,
        "rm" => Rnd::Rm,
        "rp" => Rnd::Rp,
        "rni" => Rnd::Rni,
        "rzi" => Rnd::Rzi,
        "rmi" => Rnd::Rmi,
        "rpi" => Rnd::Rpi,
        _ => return None,
    })
}

/// An integer literal: decimal, `0x` hex, `0b` binary, `0` octal, optional `-` and `U` suffix;
/// the two's complement bits.
fn parse_int(s: &str) -> Option<u64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let t = t.strip_suffix('U').unwrap_or(t);
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if let Some(bin) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        u64::from_str_radix(bin, 2).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()?
    } else if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) {
        t.parse::<u64>().ok()?
    } else {
        return None;
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// An immediate operand as the raw bits of an operand of type `ty`.
fn parse_imm(s: &str, ty: Ty) -> Option<u64> {
    let hex = |h: &str, n: usize| (h.len() == n).then(|| u64::from_str_radix(h, 16).ok()).flatten();
    let float = |f: f64| match ty {
        Ty::F32 => Some((f as f32).to_bits() as u64),
        Ty::F64 => Some(f.to_bits()),
        _ => None,
    };
    if let Some(h) = s.strip_prefix("0f").or_else(|| s.strip_prefix("0F")) {
        let bits = hex(h, 8)?;
        return match ty {
            Ty::F64 => Some((f32::from_bits(bits as u32) as f64).to_bits()),
            Ty::F32 | Ty::B32 | Ty::U32 | Ty::S32 => Some(bits),
            _ => None,
        };
    }
    if let Some(h) = s.strip_prefix("0d").or_else(|| s.strip_prefix("0D")) {
        let bits = hex(h, 16)?;
        return match ty {
            Ty::F32 => float(f64::from_bits(bits)),
            Ty::F64 | Ty::B64 | Ty::U64 | Ty::S64 => Some(bits),
            _ => None,
        };
    }
    if let Some(v) = parse_int(s) {
        return match ty {
            Ty::Pred => Some((v != 0) as u64),
            // An integer literal in a float operand: only zero (the same bits in every type).
            t if t.is_float() => (v == 0).then_some(0),
            t => Some(v & t.mask()),
        };
    }
    if s.bytes().any(|c| c == b'.' || c == b'e' || c == b'E') && ty.is_float() {
        return float(s.parse::<f64>().ok()?);
    }
    None
}

fn sreg(s: &str) -> Option<Sreg> {
    let dim = |d: &str| match d {
        "x" => Some(0),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    };
    Some(match s {
        "%laneid" => Sreg::LaneId,
        "%warpid" => Sreg::WarpId,
        "%clock" => Sreg::Clock,
        "%cluster_ctarank" => Sreg::ClusterCtarank,
        "%cluster_nctarank" => Sreg::ClusterNctarank,
        "%is_explicit_cluster" => Sreg::IsExplicitCluster,
        _ => {
            let (name, d) = s.split_once('.')?;
            let d = dim(d)?;
            match name {
                "%tid" => Sreg::Tid(d),
                "%ntid" => Sreg::Ntid(d),
                "%ctaid" => Sreg::Ctaid(d),
                "%nctaid" => Sreg::Nctaid(d),
                "%clusterid" => Sreg::Clusterid(d),
                "%nclusterid" => Sreg::Nclusterid(d),
                "%cluster_ctaid" => Sreg::ClusterCtaid(d),
                "%cluster_nctaid" => Sreg::ClusterNctaid(d),
                _ => return None,
            }
        }
    })
}

fn align_up(v: u32, a: u32) -> u32 {
    v.div_ceil(a.max(1)) * a.max(1)
}

/// A variable or parameter declaration: `.space [.align N] [.vN] .type name[[N]]`.
struct VarDecl<'a> {
    name: &'a str,
    /// Size of one element.
    elem: u32,
    /// `None` for `name[]`.
    count: Option<u32>,
    align: u32,
}

/// Parses the words after the state space (`.align 4 .b8 name[256]`).
fn var_decl(s: &str, line: u32) -> Result<VarDecl<'_>> {
    let bad = || err(line, format!("unsupported declaration '{}'", s.trim()));
    let mut words = s.split_whitespace();
    let (mut align, mut vec, mut elem) = (None, 1u32, None);
    let mut name = None;
    while let Some(w) = words.next() {
        match w {
            ".align" => align = Some(words.next().and_then(|n| n.parse::<u32>().ok()).ok_or_else(bad)?),
            ".v2" => vec = 2,
            ".v4" => vec = 4,
            // Pointer attributes of kernel parameters: hints only.
            ".ptr" | ".global" | ".const" | ".local" | ".shared" => {}
            w if w.starts_with('.') => {
                let ty = parse_ty(&w[1..]).filter(|t| *t != Ty::Pred).ok_or_else(bad)?;
                elem = Some(ty.bytes() * vec);
            }
            w => {
                if name.is_some() {
                    return Err(bad());
                }
                name = Some(w);
            }
        }
    }
    let (elem, name) = (elem.ok_or_else(bad)?, name.ok_or_else(bad)?);
    let (name, count) = match name.split_once('[') {
        None => (name, Some(1)),
        Some((n, rest)) => {
            let c = rest.strip_suffix(']').ok_or_else(bad)?.trim();
            (n, if c.is_empty() { None } else { Some(c.parse::<u32>().map_err(|_| bad())?) })
        }
    };
    Ok(VarDecl { name, elem, count, align: align.unwrap_or(elem) })
}

/// The directive words an optional linkage prefix (`.visible`, `.weak`, ...) stripped, and whether
/// `.extern` was among them.
fn strip_linkage(s: &str) -> (&str, bool) {
    let mut s = s.trim_start();
    let mut ext = false;
    loop {
        let w = s.split(char::is_whitespace).next().unwrap_or("");
        match w {
            ".visible" | ".weak" | ".common" => {}
            ".extern" => ext = true,
            _ => return (s, ext),
        }
        s = s[w.len()..].trim_start();
    }
}

// ---------------------------------------------------------------------------------------------
// Module scope.

struct Parser<'a> {
    m: Module,
    /// `.shared` symbol → its `.shared` address.
    shared: FxMap<&'a str, u64>,
    /// Defined function → index.
    funcs: FxMap<&'a str, u32>,
    calls: Vec<PendingCall<'a>>,
    address_size: bool,
}

/// A call whose callee index is patched once every function is known.
struct PendingCall<'a> {
    pc: usize,
    callee: &'a str,
    arg_sizes: Vec<u32>,
    ret_sizes: Vec<u32>,
    line: u32,
}

/// A function header.
struct Header<'a> {
    name: &'a str,
    is_entry: bool,
    params: Vec<VarDecl<'a>>,
    rets: Vec<VarDecl<'a>>,
    maxntid: Option<[u32; 3]>,
    reqntid: Option<[u32; 3]>,
    reqnctapercluster: Option<[u32; 3]>,
}

/// A parameter of a function header: `.param [.align N] .type name[[N]]`.
fn param_decl(p: &str, line: u32) -> Result<VarDecl<'_>> {
    let bad = || err(line, format!("unsupported parameter '{p}'"));
    let d = var_decl(p.strip_prefix(".param").ok_or_else(bad)?, line)?;
    if d.count.is_none() {
        return Err(bad());
    }
    Ok(d)
}

fn parse_header(s: &str, line: u32) -> Result<Header<'_>> {
    let bad = |what: &str| err(line, format!("unsupported function header ({what}): '{}'", s.trim()));
    let (rest, _) = strip_linkage(s);
    let (is_entry, mut rest) = if let Some(r) = rest.strip_prefix(".entry") {
        (true, r.trim_start())
    } else if let Some(r) = rest.strip_prefix(".func") {
        (false, r.trim_start())
    } else {
        return Err(bad("not .entry/.func"));
    };
    fn paren(r: &str) -> Option<(Vec<&str>, usize)> {
        let close = r.find(')')?;
        Some((split_top(&r[1..close]), close + 1))
    }
    let mut rets = Vec::new();
    if !is_entry && rest.starts_with('(') {
        let (items, end) = paren(rest).ok_or_else(|| bad("missing ')'"))?;
        rets = items;
        rest = rest[end..].trim_start();
    }
    let name_end = rest.find(|c: char| c == '(' || c.is_whitespace()).unwrap_or(rest.len());
    let name = &rest[..name_end];
    if name.is_empty() {
        return Err(bad("no name"));
    }
    rest = rest[name_end..].trim_start();
    let mut params = Vec::new();
    if rest.starts_with('(') {
        let (items, end) = paren(rest).ok_or_else(|| bad("missing ')'"))?;
        params = items;
        rest = rest[end..].trim_start();
    }
    let mut h = Header {
        name,
        is_entry,
        params: params.iter().map(|p| param_decl(p, line)).collect::<Result<_>>()?,
        rets: rets.iter().map(|p| param_decl(p, line)).collect::<Result<_>>()?,
        maxntid: None,
        reqntid: None,
        reqnctapercluster: None,
    };
    // Performance directives: `.maxntid x[, y[, z]]`, ...
    let mut words = rest.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let mut args = String::new();
        while let Some(a) = words.next_if(|a| !a.starts_with('.')) {
            args.push_str(a);
        }
        let dims = || -> Result<[u32; 3]> {
            let v: Vec<u32> = args
                .split(',')
                .map(|n| n.trim().parse::<u32>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad("bad dimensions"))?;
            if v.is_empty() || v.len() > 3 {
                return Err(bad("bad dimensions"));
            }
            Ok([v[0], v.get(1).copied().unwrap_or(1), v.get(2).copied().unwrap_or(1)])
        };
        match w {
            ".maxntid" => h.maxntid = Some(dims()?),
            ".reqntid" => h.reqntid = Some(dims()?),
            ".reqnctapercluster" => {
                let d = dims()?;
                if d.contains(&0) {
                    return Err(bad("a zero .reqnctapercluster dimension"));
                }
                h.reqnctapercluster = Some(d);
            }
            // Launch-time cluster shapes are not modelled: a kernel with `.explicitcluster` and
            // no `.reqnctapercluster` runs in 1 × 1 × 1 clusters.
            ".explicitcluster" | ".maxclusterrank" => {}
            // Occupancy and register hints, no effect on what the code computes.
            ".minnctapersm" | ".maxnreg" | ".maxnctapersm" | ".noreturn" => {}
            _ => return Err(bad(&format!("directive {w}"))),
        }
    }
    Ok(h)
}

impl<'a> Parser<'a> {
    fn run(&mut self, toks: &[Tok<'a>]) -> Result<()> {
        self.layout_shared(toks)?;
        let mut i = 0;
        while i < toks.len() {
            let t = toks[i];
            match t.item {
                Item::Header(s) => {
                    let h = parse_header(s, t.line)?;
                    i = self.function(h, toks, i + 1, t.line)?;
                    continue;
                }
                Item::Stmt(s) => self.module_directive(s, t.line)?,
                Item::Open | Item::Close => return Err(err(t.line, "brace outside a function")),
                Item::Label(l) => {
                    return Err(err(t.line, format!("label '{l}' outside a function")));
                }
            }
            i += 1;
        }
        if !self.address_size {
            return Err(err(1, "missing '.address_size 64'"));
        }
        self.resolve_calls()
    }

    fn module_directive(&mut self, s: &'a str, line: u32) -> Result<()> {
        let (body, _) = strip_linkage(s);
        let mut words = body.split_whitespace();
        let d = words.next().unwrap_or("");
        let arg = body[d.len()..].trim();
        match d {
            ".version" => self.m.version = arg.to_owned(),
            ".target" => self.m.target = arg.to_owned(),
            ".address_size" if arg == "64" => self.address_size = true,
            // Laid out by `layout_shared`.
            ".shared" => {}
            // A function declaration (its definition, if any, comes later).
            ".entry" | ".func" => {
                parse_header(s, line)?;
            }
            ".file" => {}
            _ => return Err(err(line, format!("unsupported directive '{}'", s.trim()))),
        }
        Ok(())
    }

    /// Lays out every `.shared` variable: static ones from `SHARED_BASE` in declaration order,
    /// then the dynamic shared memory (`.extern .shared name[]`).
    fn layout_shared(&mut self, toks: &[Tok<'a>]) -> Result<()> {
        let mut next = 0u32;
        let mut dyn_align = 16u32;
        let mut dynamic = Vec::new();
        for t in toks {
            let Item::Stmt(s) = t.item else { continue };
            let (body, ext) = strip_linkage(s);
            let Some(rest) = body.strip_prefix(".shared") else {
                continue;
            };
            let d = var_decl(rest, t.line)?;
            if !d.align.is_power_of_two() {
                return Err(err(t.line, "alignment not a power of two"));
            }
            match (ext, d.count) {
                (true, None) => {
                    dyn_align = dyn_align.max(d.align);
                    dynamic.push(d.name);
                }
                (false, Some(n)) => {
                    let off = align_up(next, d.align);
                    next = off + d.elem * n;
                    if self.shared.insert(d.name, layout::SHARED_BASE + off as u64).is_some() {
                        return Err(err(t.line, format!("'{}' declared twice", d.name)));
                    }
                }
                _ => {
                    return Err(err(t.line, format!("unsupported .shared declaration '{}'", s.trim())));
                }
            }
        }
        self.m.static_smem_bytes = next;
        self.m.dynamic_smem_offset = align_up(next, dyn_align);
        for name in dynamic {
            self.shared.insert(name, layout::SHARED_BASE + self.m.dynamic_smem_offset as u64);
        }
        Ok(())
    }

    fn resolve_calls(&mut self) -> Result<()> {
        for c in std::mem::take(&mut self.calls) {
            let &idx = self
                .funcs
                .get(c.callee)
                .ok_or_else(|| err(c.line, format!("call of undefined function '{}'", c.callee)))?;
            let f = &self.m.functions[idx as usize];
            let sizes = |ps: &[Param]| ps.iter().map(|p| p.size).collect::<Vec<_>>();
            if f.is_entry || sizes(&f.params) != c.arg_sizes || sizes(&f.rets) != c.ret_sizes {
                return Err(err(c.line, format!("call of '{}' does not match its declaration", c.callee)));
            }
            if let Op::Call { func, .. } = &mut self.m.code[c.pc].op {
                *func = idx;
            }
        }
        Ok(())
    }

    /// Lowers a function body; `i` is the index of its opening brace. Returns the index after
    /// its closing brace.
    fn function(&mut self, h: Header<'a>, toks: &[Tok<'a>], mut i: usize, line: u32) -> Result<usize> {
        let idx = self.m.functions.len() as u32;
        if self.funcs.insert(h.name, idx).is_some() {
            return Err(err(line, format!("function '{}' defined twice", h.name)));
        }
        // Parameters (and a .func's return values after them), in declaration order.
        let mut syms = FxMap::default();
        let mut off = 0u32;
        // An entry's parameters are aligned at their constant-bank addresses (see
        // `layout::PARAM_BANK`), a `.func`'s in its frame.
        let bias = if h.is_entry { crate::ir::layout::PARAM_BANK } else { 0 };
        let mut layout = |decls: &[VarDecl<'a>]| -> Result<Vec<Param>> {
            decls
                .iter()
                .map(|d| {
                    if !d.align.is_power_of_two() {
                        return Err(err(line, "alignment not a power of two"));
                    }
                    let size = d.elem * d.count.unwrap_or(1);
                    off = align_up(off + bias, d.align) - bias;
                    let p = Param { offset: off, size, align: d.align };
                    off += size;
                    if syms.insert(d.name, (p.offset, size)).is_some() {
                        return Err(err(line, format!("parameter '{}' declared twice", d.name)));
                    }
                    Ok(p)
                })
                .collect()
        };
        let params = layout(&h.params)?;
        let rets = layout(&h.rets)?;
        let param_bytes = if h.is_entry { off } else { align_up(off, 16) };
        let frame_params = if h.is_entry { 0 } else { param_bytes };
        let start = self.m.code.len() as u32;
        self.m.functions.push(Function {
            name: h.name.to_owned(),
            is_entry: h.is_entry,
            start,
            end: start,
            reg_count: 0,
            params,
            param_bytes,
            rets,
            local_bytes: 0,
            call_param_bytes: 0,
            frame_params,
            maxntid: h.maxntid,
            reqntid: h.reqntid,
            reqnctapercluster: h.reqnctapercluster,
            line,
        });
        let mut l = Lower {
            p: self,
            idx,
            is_entry: h.is_entry,
            params: syms,
            frame_params,
            locals: FxMap::default(),
            local_bytes: 0,
            code_started: false,
            regs: Regs::default(),
            scopes: Vec::new(),
            scratch_next: 0,
            scratch_max: 0,
            labels: FxMap::default(),
            branches: Vec::new(),
            tables: FxMap::default(),
            table_fix: Vec::new(),
            brx: Vec::new(),
            line,
            guard: None,
            form: "",
        };
        loop {
            let Some(t) = toks.get(i) else {
                return Err(err(line, format!("function '{}' has no closing brace", h.name)));
            };
            l.line = t.line;
            match t.item {
                Item::Open => l.scopes.push(Scope { scratch_save: l.scratch_next, ..Scope::default() }),
                Item::Close => {
                    let Some(sc) = l.scopes.pop() else {
                        return Err(err(t.line, "unbalanced '}'"));
                    };
                    l.regs.pool.extend(sc.regs.iter().map(|r| r.1));
                    l.regs.pool.extend(sc.ranges.iter().flat_map(|&(_, base, n)| base..base + n));
                    l.scratch_next = sc.scratch_save;
                    if l.scopes.is_empty() {
                        l.finish()?;
                        return Ok(i + 1);
                    }
                }
                Item::Label(name) => match toks.get(i + 1) {
                    Some(Tok { item: Item::Stmt(s), .. }) if s.starts_with(".branchtargets") => {
                        l.line = toks[i + 1].line;
                        l.branch_table(name, s)?;
                        i += 1;
                    }
                    _ => {
                        let pc = l.p.m.code.len() as u32;
                        if l.labels.insert(name, pc).is_some() {
                            return Err(err(t.line, format!("label '{name}' defined twice")));
                        }
                    }
                },
                Item::Stmt(s) if s.starts_with('.') => l.directive(s)?,
                Item::Stmt(s) => {
                    l.code_started = true;
                    l.inst(s)?;
                }
                Item::Header(_) => return Err(err(t.line, "function header inside a function")),
            }
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Function scope.

/// Register names of a function (outside nested blocks).
#[derive(Default)]
struct Regs<'a> {
    /// `%r<N>` declarations: prefix → (N, type).
    ranges: FxMap<&'a str, (u32, Ty)>,
    /// Names with an index.
    named: FxMap<&'a str, Reg>,
    /// Declared type of each index (its width decides how a signed load extends).
    tys: Vec<Ty>,
    /// Indices of closed nested blocks, free for later blocks.
    pool: Vec<Reg>,
}

impl Regs<'_> {
    fn alloc(&mut self, ty: Ty) -> Reg {
        self.tys.push(ty);
        self.tys.len() as Reg - 1
    }
    /// An index for a nested block: a free one if any.
    fn alloc_nested(&mut self, ty: Ty) -> Reg {
        match self.pool.pop() {
            Some(r) => {
                self.tys[r as usize] = ty;
                r
            }
            None => self.alloc(ty),
        }
    }
}

/// `%r17` → (`%r`, 17).
fn split_num(name: &str) -> Option<(&str, u32)> {
    let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (prefix, num) = name.split_at(name.len() - digits);
    if prefix.is_empty() || num.is_empty() || (num.len() > 1 && num.starts_with('0')) {
        return None;
    }
    Some((prefix, num.parse().ok()?))
}

/// A `{ }` block: its registers, `.param` scratch, and the scratch offset to restore at its end.
#[derive(Default)]
struct Scope<'a> {
    regs: Vec<(&'a str, Reg)>,
    ranges: Vec<(&'a str, Reg, u32)>,
    /// `.param` name → (frame offset, size).
    params: Vec<(&'a str, u32, u32)>,
    scratch_save: u32,
}

struct Lower<'p, 'a> {
    p: &'p mut Parser<'a>,
    idx: u32,
    is_entry: bool,
    /// Own parameters and return values → (offset in the parameter buffer, size).
    params: FxMap<&'a str, (u32, u32)>,
    frame_params: u32,
    /// `.local` variables → offset after `frame_params`.
    locals: FxMap<&'a str, u32>,
    local_bytes: u32,
    /// Set at the first instruction: frame layout is fixed from then on.
    code_started: bool,
    regs: Regs<'a>,
    /// `scopes[0]` is the function body.
    scopes: Vec<Scope<'a>>,
    /// Next free byte of the call scratch, and its high-water mark.
    scratch_next: u32,
    scratch_max: u32,
    labels: FxMap<&'a str, u32>,
    branches: Vec<(usize, &'a str, u32)>,
    /// `.branchtargets` name → index in `Module::branch_tables`.
    tables: FxMap<&'a str, u32>,
    table_fix: Vec<(usize, Vec<&'a str>, u32)>,
    brx: Vec<(usize, &'a str, u32)>,
    /// The statement being lowered: its line, guard and opcode.
    line: u32,
    guard: Option<(Reg, bool)>,
    form: &'a str,
}

impl<'p, 'a> Lower<'p, 'a> {
    fn err(&self, msg: impl Display) -> SimError {
        err(self.line, msg)
    }

    fn unsupported(&self) -> SimError {
        self.err(format!("unsupported instruction form '{}'", self.form))
    }

    fn push(&mut self, op: Op) {
        self.p.m.code.push(Inst { op, guard: self.guard, line: self.line, func: self.idx });
    }

    fn finish(&mut self) -> Result<()> {
        let end = self.p.m.code.len() as u32;
        for &(pc, label, line) in &self.branches {
            let &target = self.labels.get(label).ok_or_else(|| err(line, format!("undefined label '{label}'")))?;
            if let Op::Bra { target: t } = &mut self.p.m.code[pc].op {
                *t = target;
            }
        }
        for (table, labels, line) in &self.table_fix {
            let pcs = labels
                .iter()
                .map(|l| self.labels.get(l).copied().ok_or_else(|| err(*line, format!("undefined label '{l}'"))))
                .collect::<Result<Vec<_>>>()?;
            self.p.m.branch_tables[*table] = pcs;
        }
        for &(pc, name, line) in &self.brx {
            let &t = self.tables.get(name).ok_or_else(|| err(line, format!("undefined branch table '{name}'")))?;
            if let Op::BrxIdx { table, .. } = &mut self.p.m.code[pc].op {
                *table = t;
            }
        }
        let f = &mut self.p.m.functions[self.idx as usize];
        f.end = end;
        f.reg_count = self.regs.tys.len() as u32;
        f.local_bytes = self.local_bytes;
        f.call_param_bytes = align_up(self.scratch_max, 16);
        Ok(())
    }

    fn branch_table(&mut self, name: &'a str, s: &'a str) -> Result<()> {
        let labels = split_top(&s[".branchtargets".len()..]);
        if labels.iter().any(|l| l.is_empty()) {
            return Err(self.err("empty .branchtargets entry"));
        }
        let t = self.p.m.branch_tables.len();
        self.p.m.branch_tables.push(Vec::new());
        if self.tables.insert(name, t as u32).is_some() {
            return Err(self.err(format!("branch table '{name}' defined twice")));
        }
        self.table_fix.push((t, labels, self.line));
        Ok(())
    }

    // ---- declarations ----

    fn directive(&mut self, s: &'a str) -> Result<()> {
        let d = s.split_whitespace().next().unwrap_or("");
        let rest = &s[d.len()..];
        match d {
            ".reg" => self.reg_decl(rest),
            ".local" => {
                if self.code_started {
                    return Err(self.err("a .local declaration after the first instruction"));
                }
                let v = var_decl(rest, self.line)?;
                let count = v.count.ok_or_else(|| self.err("unsized .local"))?;
                if !v.align.is_power_of_two() || v.align > 16 {
                    return Err(self.err("unsupported .local alignment"));
                }
                let off = align_up(self.local_bytes, v.align);
                self.local_bytes = align_up(off + v.elem * count, 16);
                if self.locals.insert(v.name, off).is_some() {
                    return Err(self.err(format!("'{}' declared twice", v.name)));
                }
                Ok(())
            }
            ".param" => {
                self.code_started = true;
                let v = var_decl(rest, self.line)?;
                let size = v.elem * v.count.ok_or_else(|| self.err("unsized .param"))?;
                if !v.align.is_power_of_two() || v.align > 16 {
                    return Err(self.err("unsupported .param alignment"));
                }
                let off = align_up(self.scratch_next, v.align);
                self.scratch_next = off + size;
                self.scratch_max = self.scratch_max.max(self.scratch_next);
                let (frame_off, line) = (self.frame_params + self.local_bytes + off, self.line);
                let sc = self.scopes.last_mut().ok_or_else(|| err(line, ".param outside a block"))?;
                sc.params.push((v.name, frame_off, size));
                Ok(())
            }
            // Laid out at module scope.
            ".shared" => Ok(()),
            ".pragma" | ".loc" => Ok(()),
            ".extern" if strip_linkage(s).0.starts_with(".shared") => Ok(()),
            _ => Err(self.err(format!("unsupported directive '{}'", s.trim()))),
        }
    }

    fn reg_decl(&mut self, rest: &'a str) -> Result<()> {
        let rest = rest.trim_start();
        let ty_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let ty_word = &rest[..ty_end];
        let ty = ty_word
            .strip_prefix('.')
            .and_then(parse_ty)
            .ok_or_else(|| self.err(format!("unsupported register type '{ty_word}'")))?;
        let nested = self.scopes.len() > 1;
        for name in split_top(&rest[ty_end..]) {
            if let Some((prefix, n)) = name.split_once('<') {
                let n: u32 = n
                    .strip_suffix('>')
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(|| self.err(format!("bad register declaration '{name}'")))?;
                let prefix = prefix.trim();
                if nested {
                    let base = self.regs.tys.len() as Reg;
                    for _ in 0..n {
                        self.regs.alloc(ty);
                    }
                    if let Some(sc) = self.scopes.last_mut() {
                        sc.ranges.push((prefix, base, n));
                    }
                } else {
                    let c = self.regs.ranges.entry(prefix).or_insert((0, ty));
                    if c.1 != ty {
                        return Err(self.err(format!("'{prefix}<N>' declared with two types")));
                    }
                    c.0 = c.0.max(n);
                }
            } else if name.is_empty() || !name.bytes().all(is_ident_byte) {
                return Err(self.err(format!("bad register name '{name}'")));
            } else if nested {
                let r = self.regs.alloc_nested(ty);
                if let Some(sc) = self.scopes.last_mut() {
                    sc.regs.push((name, r));
                }
            } else if self.lookup(name).is_none() {
                let r = self.regs.alloc(ty);
                self.regs.named.insert(name, r);
            }
        }
        Ok(())
    }

    // ---- operands ----

    fn lookup(&mut self, name: &'a str) -> Option<Reg> {
        for sc in self.scopes.iter().skip(1).rev() {
            if let Some(&(_, r)) = sc.regs.iter().rev().find(|(n, _)| *n == name) {
                return Some(r);
            }
            for &(prefix, base, n) in &sc.ranges {
                if let Some((_, k)) = split_num(name).filter(|(p, k)| *p == prefix && *k < n) {
                    return Some(base + k);
                }
            }
        }
        if let Some(&r) = self.regs.named.get(name) {
            return Some(r);
        }
        let (prefix, k) = split_num(name)?;
        let &(n, ty) = self.regs.ranges.get(prefix)?;
        if k < n {
            let r = self.regs.alloc(ty);
            self.regs.named.insert(name, r);
            return Some(r);
        }
        None
    }

    fn reg(&mut self, name: &'a str) -> Result<Reg> {
        self.lookup(name).ok_or_else(|| self.err(format!("'{name}' is not a declared register")))
    }

    /// A source operand of type `ty`.
    fn src(&mut self, s: &'a str, ty: Ty) -> Result<Src> {
        let c = s.as_bytes().first().copied().unwrap_or(b' ');
        if c.is_ascii_digit() || c == b'-' {
            return parse_imm(s, ty).map(Src::Imm).ok_or_else(|| self.err(format!("bad immediate '{s}' for .{ty:?}")));
        }
        if let Some(r) = self.lookup(s) {
            return Ok(Src::Reg(r));
        }
        if c == b'%' {
            return sreg(s).map(Src::Sreg).ok_or_else(|| self.err(format!("unknown register '{s}'")));
        }
        if let Some(&a) = self.p.shared.get(s) {
            return Ok(Src::Imm(a & ty.mask()));
        }
        if let Some(off) = self.param_address(s)? {
            return Ok(Src::Imm(off & ty.mask()));
        }
        Err(self.err(format!("unsupported operand '{s}'")))
    }

    /// The `.param`-space address of `s` when it names a parameter of this entry (its offset in
    /// the parameter buffer, what `ld.param [%rd]` takes); `None` when `s` names no `.param`. A
    /// `.func`'s own parameters and call scratch live in the frame: their address is refused.
    fn param_address(&self, s: &str) -> Result<Option<u64>> {
        match self.param_sym(s) {
            Some((off, _, false)) if self.is_entry => Ok(Some(off as u64)),
            Some(_) => Err(self.err(format!(
                "the address of '{s}': only a kernel parameter (of an .entry) has a .param-space address here, not a .func's parameter or a call's argument"
            ))),
            None => Ok(None),
        }
    }

    fn dst(&mut self, s: &'a str) -> Result<Reg> {
        self.reg(s)
    }

    /// A register, or for the sink `_` a scratch register of type `ty` nothing reads.
    fn dst_or_sink(&mut self, s: &'a str, ty: Ty) -> Result<Reg> {
        match self.dst_opt(s)? {
            Some(r) => Ok(r),
            None => Ok(self.regs.alloc(ty)),
        }
    }

    /// `_` or a register.
    fn dst_opt(&mut self, s: &'a str) -> Result<Option<Reg>> {
        if s == "_" { Ok(None) } else { self.dst(s).map(Some) }
    }

    /// The offset from `FrameBase` of a `.local` variable (a register of that name wins).
    fn local_sym(&mut self, s: &'a str) -> Option<u32> {
        if self.lookup(s).is_some() {
            return None;
        }
        self.locals.get(s).map(|o| self.frame_params + o)
    }

    /// A `.param` name visible here → (frame or parameter-buffer offset, size, is_scratch).
    fn param_sym(&self, s: &str) -> Option<(u32, u32, bool)> {
        for sc in self.scopes.iter().rev() {
            if let Some(&(_, off, size)) = sc.params.iter().rev().find(|p| p.0 == s) {
                return Some((off, size, true));
            }
        }
        self.params.get(s).map(|&(off, size)| (off, size, false))
    }

    /// An address operand `[base+offset]` accessed in `space`; returns the space of the access
    /// (a `.param` of a `.func` or call scratch is a `.local` access in the frame).
    fn addr(&mut self, s: &'a str, space: Space) -> Result<(Space, Addr)> {
        let bad = || err(self.line, format!("bad address '{s}'"));
        let inner = s.strip_prefix('[').and_then(|t| t.strip_suffix(']')).ok_or_else(bad)?.trim();
        let (base, offset) = match inner.find('+') {
            Some(p) => (inner[..p].trim(), parse_int(inner[p + 1..].trim()).ok_or_else(bad)? as i64),
            None => match inner.get(1..).and_then(|t| t.find('-')) {
                Some(p) => (inner[..p + 1].trim(), parse_int(inner[p + 1..].trim()).ok_or_else(bad)? as i64),
                None => (inner, 0),
            },
        };
        if base.is_empty() {
            return Err(bad());
        }
        if base.as_bytes()[0].is_ascii_digit() {
            return Ok((space, Addr { base: Src::Imm(parse_int(base).ok_or_else(bad)?), offset }));
        }
        if let Some(r) = self.lookup(base) {
            if space == Space::Param && !self.is_entry {
                return Err(self.err("a .param access through a register in a .func"));
            }
            return Ok((space, Addr { base: Src::Reg(r), offset }));
        }
        let frame = |off: u32| Addr { base: Src::Sreg(Sreg::FrameBase), offset: off as i64 + offset };
        if let Some((off, _, scratch)) = self.param_sym(base) {
            if space != Space::Param {
                return Err(self.err(format!("'{base}' (a .param) accessed outside .param space")));
            }
            if self.is_entry && !scratch {
                return Ok((Space::Param, Addr { base: Src::Imm(off as u64), offset }));
            }
            return Ok((Space::Local, frame(off)));
        }
        if let Some(&off) = self.locals.get(base) {
            if space != Space::Local {
                return Err(self.err(format!("'{base}' (a .local) accessed outside .local space")));
            }
            return Ok((Space::Local, frame(self.frame_params + off)));
        }
        if let Some(&a) = self.p.shared.get(base) {
            if !matches!(space, Space::Shared | Space::SharedCluster) {
                return Err(self.err(format!("'{base}' (a .shared) accessed outside .shared space")));
            }
            return Ok((space, Addr { base: Src::Imm(a), offset }));
        }
        Err(self.err(format!("undefined symbol '{base}'")))
    }

    fn nops(&self, ops: &[&str], n: usize) -> Result<()> {
        if ops.len() != n {
            return Err(self.err(format!("'{}' expects {n} operands, got {}", self.form, ops.len())));
        }
        Ok(())
    }

    fn imm_u32(&self, s: &str) -> Result<u32> {
        parse_int(s)
            .filter(|v| *v <= u32::MAX as u64)
            .map(|v| v as u32)
            .ok_or_else(|| self.err(format!("bad immediate '{s}'")))
    }

    // ---- instructions ----

    fn inst(&mut self, text: &'a str) -> Result<()> {
        let mut body = text;
        self.guard = None;
        self.form = text;
        if let Some(r) = body.strip_prefix('@') {
            let end = r.find(char::is_whitespace).ok_or_else(|| self.err("a guard without an instruction"))?;
            let g = &r[..end];
            body = r[end..].trim_start();
            let (neg, name) = match g.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, g),
            };
            let p = self.reg(name)?;
            self.guard = Some((p, neg));
        }
        let end = body.find(|c: char| c.is_whitespace() || c == '{').unwrap_or(body.len());
        let opcode = &body[..end];
        self.form = opcode;
        let ops = split_top(&body[end..]);
        let parts: Vec<&'a str> = opcode.split('.').collect();
        let last = *parts.last().unwrap_or(&"");
        let ty = parse_ty(last);
        match parts[0] {
            "mov" => self.mov(&parts, ty, &ops),
            "cvta" => self.cvta(&parts, &ops),
            "add" | "sub" | "mul" | "mad" | "fma" | "div" | "rem" | "min" | "max" | "neg" | "abs" | "rcp" | "sqrt" => {
                self.arith(&parts, ty, &ops)
            }
            "and" | "or" | "xor" | "not" | "shl" | "shr" | "popc" | "clz" | "brev" | "bfe" | "bfi" | "prmt"
            | "selp" => self.bits(&parts, ty, &ops),
            "setp" => self.setp(&parts, ty, &ops),
            "cvt" => self.cvt(&parts, &ops),
            "ld" | "st" => self.ld_st(&parts, ty, &ops),
            "atom" | "red" => self.atom(&parts, ty, &ops),
            "shfl" => self.shfl(&parts, &ops),
            "barrier" if parts.get(1) == Some(&"cluster") => {
                let op = match parts[2..] {
                    ["arrive"] | ["arrive", "aligned"] => Op::ClusterArrive { relaxed: false },
                    ["arrive", sem @ ("release" | "relaxed")]
                    | ["arrive", sem @ ("release" | "relaxed"), "aligned"] => {
                        Op::ClusterArrive { relaxed: sem == "relaxed" }
                    }
                    ["wait"] | ["wait", "aligned"] | ["wait", "acquire"] | ["wait", "acquire", "aligned"] => {
                        Op::ClusterWait
                    }
                    _ => return Err(self.unsupported()),
                };
                self.nops(&ops, 0)?;
                self.push(op);
                Ok(())
            }
            "mapa" => {
                if !matches!(parts[1..], ["shared::cluster", "u32" | "u64"]) {
                    return Err(self.unsupported());
                }
                self.nops(&ops, 3)?;
                let d = self.dst(ops[0])?;
                let a = self.src(ops[1], ty.unwrap_or(Ty::U32))?;
                let rank = self.src(ops[2], Ty::U32)?;
                self.push(Op::Mapa { d, a, rank });
                Ok(())
            }
            "bar" | "barrier" => self.bar(&parts, &ops),
            // The tensormap proxy acquire fence (`[addr], 128`): the simulator's TMA reads tensor
            // maps from memory when it uses them, so it is an ordinary fence here.
            "fence" if parts.get(1..4) == Some(&["proxy", "tensormap::generic", "acquire"][..]) => {
                if parts.len() != 5 || !["cta", "cluster", "gpu", "sys"].contains(&parts[4]) {
                    return Err(self.unsupported());
                }
                self.nops(&ops, 2)?;
                if !ops[0].starts_with('[') || self.imm_u32(ops[1])? != 128 {
                    return Err(self.unsupported());
                }
                self.push(Op::Fence);
                Ok(())
            }
            "fence" if parts.get(1..3) == Some(&["proxy", "async"][..]) => {
                let shared = match parts.get(3..) {
                    Some([]) | Some(["shared::cta"]) | Some(["shared::cluster"]) => true,
                    Some(["global"]) => false,
                    _ => return Err(self.unsupported()),
                };
                self.nops(&ops, 0)?;
                self.push(Op::FenceProxyAsync { shared });
                Ok(())
            }
            "stmatrix" => self.stmatrix(&parts, &ops),
            "membar" | "fence" => {
                self.nops(&ops, 0)?;
                self.push(Op::Fence);
                Ok(())
            }
            "prefetch" | "prefetchu" => {
                if ops.len() != 1 || !ops[0].starts_with('[') {
                    return Err(self.unsupported());
                }
                self.push(Op::Nop);
                Ok(())
            }
            "bra" | "brx" | "call" | "ret" | "exit" | "trap" => self.control(&parts, &ops),
            "mbarrier" => self.mbarrier(&parts, &ops),
            "cp" => self.cp_async(&parts, &ops),
            "wgmma" => self.wgmma(&parts, &ops),
            "setmaxnreg" => {
                let inc = match parts[..] {
                    ["setmaxnreg", "inc", "sync", "aligned", "u32"] => true,
                    ["setmaxnreg", "dec", "sync", "aligned", "u32"] => false,
                    _ => return Err(self.unsupported()),
                };
                self.nops(&ops, 1)?;
                let n = self.imm_u32(ops[0])?;
                self.push(Op::SetMaxNReg { inc, n });
                Ok(())
            }
            _ => Err(self.unsupported()),
        }
    }

    fn mov(&mut self, parts: &[&'a str], ty: Option<Ty>, ops: &[&'a str]) -> Result<()> {
        let ty = ty.filter(|_| parts.len() == 2).ok_or_else(|| self.unsupported())?;
        self.nops(ops, 2)?;
        if let Some(elems) = list(ops[0], '{', '}') {
            // Unpack: element i gets bits [i*w, (i+1)*w) of the source.
            let n = elems.len() as u32;
            if n < 2 || ty.bits() % n != 0 {
                return Err(self.unsupported());
            }
            let w = ty.bits() / n;
            let a = self.src(ops[1], ty)?;
            for (i, e) in elems.into_iter().enumerate() {
                let i = i as u32;
                let Some(d) = self.dst_opt(e)? else { continue };
                let mut from = a;
                if i > 0 {
                    self.push(Op::Shr { ty, d, a, b: Src::Imm((i * w) as u64) });
                    from = Src::Reg(d);
                }
                if i < n - 1 {
                    self.push(Op::And { ty, d, a: from, b: Src::Imm((1u64 << w) - 1) });
                }
            }
            return Ok(());
        }
        let d = self.dst(ops[0])?;
        if let Some(elems) = list(ops[1], '{', '}') {
            // Pack: element i goes to bits [i*w, (i+1)*w) of the destination.
            let n = elems.len() as u32;
            if n < 2 || ty.bits() % n != 0 {
                return Err(self.unsupported());
            }
            let w = ty.bits() / n;
            let part_ty = match w {
                8 => Ty::B8,
                16 => Ty::B16,
                32 => Ty::B32,
                _ => return Err(self.unsupported()),
            };
            let srcs = elems.iter().map(|e| self.src(e, part_ty)).collect::<Result<Vec<_>>>()?;
            if srcs.contains(&Src::Reg(d)) {
                return Err(self.err("a packing mov whose destination is also a source"));
            }
            self.push(Op::Mov { ty, d, a: srcs[n as usize - 1] });
            for s in srcs[..n as usize - 1].iter().rev() {
                self.push(Op::Shl { ty, d, a: Src::Reg(d), b: Src::Imm(w as u64) });
                self.push(Op::Or { ty, d, a: Src::Reg(d), b: *s });
            }
            return Ok(());
        }
        if let Some(off) = self.local_sym(ops[1]) {
            self.push(Op::Add { ty: Ty::U64, d, a: Src::Sreg(Sreg::FrameBase), b: Src::Imm(off as u64) });
            return Ok(());
        }
        let a = self.src(ops[1], ty)?;
        self.push(Op::Mov { ty, d, a });
        Ok(())
    }

    fn cvta(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        let (to, sp, ty) = match parts[..] {
            ["cvta", "to", sp, ty] => (true, sp, ty),
            ["cvta", sp, ty] => (false, sp, ty),
            _ => return Err(self.unsupported()),
        };
        let space = space_word(sp).filter(|_| sp != "param::func").ok_or_else(|| self.unsupported())?;
        let ty = match ty {
            "u64" => Ty::U64,
            "u32" if space != Space::Param => Ty::U32,
            _ => return Err(self.unsupported()),
        };
        if space == Space::Param && !self.is_entry {
            return Err(self.err("cvta of .param space in a .func (only kernel parameters have generic addresses)"));
        }
        self.nops(ops, 2)?;
        let d = self.dst(ops[0])?;
        let a = if let Some(off) = self.local_sym(ops[1]).filter(|_| space == Space::Local && !to) {
            self.push(Op::Add { ty: Ty::U64, d, a: Src::Sreg(Sreg::FrameBase), b: Src::Imm(off as u64) });
            Src::Reg(d)
        } else {
            self.src(ops[1], ty)?
        };
        self.push(Op::Cvta { space, to, d, a });
        Ok(())
    }

    fn arith(&mut self, parts: &[&'a str], ty: Option<Ty>, ops: &[&'a str]) -> Result<()> {
        let ty = ty.filter(|t| *t != Ty::Pred).ok_or_else(|| self.unsupported())?;
        if matches!(parts[0], "min" | "max") && matches!(ty, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2) {
            return self.min_max_16(parts, ty, ops);
        }
        let (mut rnd, mut mode) = (None, None);
        for w in &parts[1..parts.len() - 1] {
            match (rnd_word(w), *w) {
                (Some(r), _) if rnd.is_none() && !matches!(r, Rnd::Rni | Rnd::Rzi | Rnd::Rmi | Rnd::Rpi) => {
                    rnd = Some(r)
                }
                (None, "lo") if mode.is_none() => mode = Some(MulMode::Lo),
                (None, "hi") if mode.is_none() => mode = Some(MulMode::Hi),
                (None, "wide") if mode.is_none() => mode = Some(MulMode::Wide),
                _ => return Err(self.unsupported()),
            }
        }
        let op = parts[0];
        let float = ty.is_float();
        if float && (!is_f32_f64(ty) || mode.is_some()) || !float && rnd.is_some() {
            return Err(self.unsupported());
        }
        // Float forms that PTX defines only with a rounding mode (fused or IEEE-exact).
        if float && rnd.is_none() && matches!(op, "mad" | "fma" | "div" | "rcp" | "sqrt") {
            return Err(self.unsupported());
        }
        if float && rnd.is_some() && matches!(op, "min" | "max" | "neg" | "abs") {
            return Err(self.unsupported());
        }
        let needs_mode = !float && matches!(op, "mul" | "mad");
        if needs_mode != mode.is_some() || mode == Some(MulMode::Wide) && ty.bits() > 32 {
            return Err(self.unsupported());
        }
        let unary = matches!(op, "neg" | "abs" | "rcp" | "sqrt");
        let n = if unary {
            2
        } else if matches!(op, "mad" | "fma") {
            4
        } else {
            3
        };
        self.nops(ops, n)?;
        let d = self.dst(ops[0])?;
        let a = self.src(ops[1], ty)?;
        let b = if n >= 3 { self.src(ops[2], ty)? } else { Src::Imm(0) };
        let rnd = rnd.unwrap_or(Rnd::None);
        let op = match (op, float) {
            ("add", false) => Op::Add { ty, d, a, b },
            ("sub", false) => Op::Sub { ty, d, a, b },
            ("mul", false) => Op::MulInt { ty, mode: mode.unwrap_or(MulMode::Lo), d, a, b },
            ("mad", false) => {
                // `.wide`: the addend is twice the operand width.
                let cty = if mode == Some(MulMode::Wide) { wide_ty(ty) } else { ty };
                let c = self.src(ops[3], cty)?;
                Op::MadInt { ty, mode: mode.unwrap_or(MulMode::Lo), d, a, b, c }
            }
            ("div", false) => Op::Div { ty, d, a, b },
            ("rem", false) => Op::Rem { ty, d, a, b },
            ("min", false) => Op::Min { ty, d, a, b },
            ("max", false) => Op::Max { ty, d, a, b },
            ("neg", false) if ty.is_signed() => Op::Neg { ty, d, a },
            ("abs", false) if ty.is_signed() => Op::Abs { ty, d, a },
            ("add", true) => Op::FAdd { ty, rnd, d, a, b },
            ("sub", true) => Op::FSub { ty, rnd, d, a, b },
            ("mul", true) => Op::FMul { ty, rnd, d, a, b },
            ("mad" | "fma", true) => {
                let c = self.src(ops[3], ty)?;
                Op::Fma { ty, rnd, d, a, b, c }
            }
            ("div", true) => Op::FDiv { ty, rnd, d, a, b },
            ("min", true) => Op::FMin { ty, d, a, b },
            ("max", true) => Op::FMax { ty, d, a, b },
            ("neg", true) => Op::FNeg { ty, d, a },
            ("abs", true) => Op::FAbs { ty, d, a },
            ("rcp", true) => Op::Rcp { ty, rnd, d, a },
            ("sqrt", true) => Op::Sqrt { ty, rnd, d, a },
            _ => return Err(self.unsupported()),
        };
        self.push(op);
        Ok(())
    }

    /// `min{.NaN}` / `max{.NaN}` on `.f16`, `.f16x2`, `.bf16`, `.bf16x2` (sm_80+). `.ftz` and
    /// `.xorsign.abs` are not supported.
    fn min_max_16(&mut self, parts: &[&'a str], ty: Ty, ops: &[&'a str]) -> Result<()> {
        let nan = match parts[1..parts.len() - 1] {
            [] => false,
            ["NaN"] => true,
            _ => return Err(self.unsupported()),
        };
        self.nops(ops, 3)?;
        let bits = if matches!(ty, Ty::F16x2 | Ty::Bf16x2) { Ty::B32 } else { Ty::B16 };
        let d = self.dst(ops[0])?;
        let a = self.src(ops[1], bits)?;
        let b = self.src(ops[2], bits)?;
        self.push(Op::HMinMax { ty, max: parts[0] == "max", nan, d, a, b });
        Ok(())
    }

    fn bits(&mut self, parts: &[&'a str], ty: Option<Ty>, ops: &[&'a str]) -> Result<()> {
        let op = parts[0];
        let ty = ty.filter(|_| parts.len() == 2).ok_or_else(|| self.unsupported())?;
        let ok = match op {
            "and" | "or" | "xor" | "not" => !ty.is_float() && !ty.is_signed(),
            "selp" => ty != Ty::Pred,
            "prmt" => ty == Ty::B32,
            "bfi" => matches!(ty, Ty::B32 | Ty::B64),
            "shl" => matches!(ty, Ty::B16 | Ty::B32 | Ty::B64),
            _ => is_int(ty),
        };
        if !ok {
            return Err(self.unsupported());
        }
        let n = match op {
            "not" | "popc" | "clz" | "brev" => 2,
            "bfe" | "prmt" | "selp" => 4,
            "bfi" => 5,
            _ => 3,
        };
        self.nops(ops, n)?;
        let d = self.dst(ops[0])?;
        let a = self.src(ops[1], ty)?;
        let u32s = |l: &mut Self, i: usize| l.src(ops[i], Ty::U32);
        let op = match op {
            "and" => Op::And { ty, d, a, b: self.src(ops[2], ty)? },
            "or" => Op::Or { ty, d, a, b: self.src(ops[2], ty)? },
            "xor" => Op::Xor { ty, d, a, b: self.src(ops[2], ty)? },
            "not" => Op::Not { ty, d, a },
            "shl" => Op::Shl { ty, d, a, b: u32s(self, 2)? },
            "shr" => Op::Shr { ty, d, a, b: u32s(self, 2)? },
            "popc" => Op::Popc { ty, d, a },
            "clz" => Op::Clz { ty, d, a },
            "brev" => Op::Brev { ty, d, a },
            "bfe" => Op::Bfe { ty, d, a, b: u32s(self, 2)?, c: u32s(self, 3)? },
            "bfi" => Op::Bfi { ty, d, f: a, b: self.src(ops[2], ty)?, pos: u32s(self, 3)?, len: u32s(self, 4)? },
            "prmt" => Op::Prmt { d, a, b: self.src(ops[2], ty)?, c: self.src(ops[3], ty)? },
            "selp" => Op::Selp { ty, d, a, b: self.src(ops[2], ty)?, p: self.src(ops[3], Ty::Pred)? },
            _ => return Err(self.unsupported()),
        };
        self.push(op);
        Ok(())
    }

    fn setp(&mut self, parts: &[&'a str], ty: Option<Ty>, ops: &[&'a str]) -> Result<()> {
        let ty = ty.filter(|t| *t != Ty::Pred && (is_int(*t) || is_f32_f64(*t))).ok_or_else(|| self.unsupported())?;
        let (cmp, bool_word) = match parts[..] {
            [_, c, _] => (c, None),
            [_, c, b, _] => (c, Some(b)),
            _ => return Err(self.unsupported()),
        };
        let cmp = match cmp {
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            "lt" | "lo" => Cmp::Lt,
            "le" | "ls" => Cmp::Le,
            "gt" | "hi" => Cmp::Gt,
            "ge" | "hs" => Cmp::Ge,
            "equ" => Cmp::Equ,
            "neu" => Cmp::Neu,
            "ltu" => Cmp::Ltu,
            "leu" => Cmp::Leu,
            "gtu" => Cmp::Gtu,
            "geu" => Cmp::Geu,
            "num" => Cmp::Num,
            "nan" => Cmp::Nan,
            _ => return Err(self.unsupported()),
        };
        let unordered =
            matches!(cmp, Cmp::Equ | Cmp::Neu | Cmp::Ltu | Cmp::Leu | Cmp::Gtu | Cmp::Geu | Cmp::Num | Cmp::Nan);
        if unordered && !ty.is_float() {
            return Err(self.unsupported());
        }
        let bool_op = match bool_word {
            None => None,
            Some("and") => Some(BoolOp::And),
            Some("or") => Some(BoolOp::Or),
            Some("xor") => Some(BoolOp::Xor),
            Some(_) => return Err(self.unsupported()),
        };
        self.nops(ops, if bool_op.is_some() { 4 } else { 3 })?;
        let (p, q) = match ops[0].split_once('|') {
            Some((p, q)) => (self.dst_or_sink(p.trim(), Ty::Pred)?, self.dst_opt(q.trim())?),
            None => (self.dst(ops[0])?, None),
        };
        let a = self.src(ops[1], ty)?;
        let b = self.src(ops[2], ty)?;
        let bool_op = match bool_op {
            // `{!}c`: a negated combiner operand becomes a `not` into a scratch predicate.
            Some(o) => match ops[3].strip_prefix('!') {
                Some(c) => {
                    let c = self.src(c.trim(), Ty::Pred)?;
                    let t = self.regs.alloc(Ty::Pred);
                    self.push(Op::Not { ty: Ty::Pred, d: t, a: c });
                    Some((o, Src::Reg(t)))
                }
                None => Some((o, self.src(ops[3], Ty::Pred)?)),
            },
            None => None,
        };
        self.push(Op::Setp { ty, cmp, bool_op, p, q, a, b });
        Ok(())
    }

    fn cvt(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        let n = parts.len();
        if n < 3 {
            return Err(self.unsupported());
        }
        let (dty, sty) = match (parse_ty(parts[n - 2]), parse_ty(parts[n - 1])) {
            (Some(d), Some(s)) if d != Ty::Pred && s != Ty::Pred => (d, s),
            _ => return Err(self.unsupported()),
        };
        let (mut rnd, mut sat, mut satfinite, mut ftz) = (None, false, false, false);
        for w in &parts[1..n - 2] {
            match (rnd_word(w), *w) {
                (Some(r), _) if rnd.is_none() => rnd = Some(r),
                (None, "sat") if !sat => sat = true,
                (None, "satfinite") if !satfinite => satfinite = true,
                (None, "ftz") if !ftz => ftz = true,
                _ => return Err(self.unsupported()),
            }
        }
        let rnd = rnd.unwrap_or(Rnd::None);
        // `.ftz` is accepted only where it cannot change the result: no .f32 subnormal can be
        // produced (from .f16) or survive the conversion (to a narrower format, rounding to
        // nearest or toward zero).
        let ftz_noop = (dty == Ty::F32 && sty == Ty::F16)
            || (sty == Ty::F32
                && matches!(dty, Ty::F16 | Ty::F16x2 | Ty::E4m3x2 | Ty::E5m2x2)
                && matches!(rnd, Rnd::Rn | Rnd::Rz));
        if ftz && !ftz_noop {
            return Err(self.unsupported());
        }
        let packed = matches!(dty, Ty::F16x2 | Ty::Bf16x2 | Ty::E4m3x2 | Ty::E5m2x2) && sty == Ty::F32;
        self.nops(ops, if packed { 3 } else { 2 })?;
        let d = self.dst(ops[0])?;
        let a = self.src(ops[1], sty)?;
        let b = if packed { Some(self.src(ops[2], sty)?) } else { None };
        self.push(Op::Cvt { dty, sty, rnd, sat, satfinite, d, a, b });
        Ok(())
    }

    fn ld_st(&mut self, parts: &[&'a str], ty: Option<Ty>, ops: &[&'a str]) -> Result<()> {
        let ty = ty.filter(|t| *t != Ty::Pred).ok_or_else(|| self.unsupported())?;
        let (mut space, mut vec) = (None, 1usize);
        for w in &parts[1..parts.len() - 1] {
            match *w {
                "v2" => vec = 2,
                "v4" => vec = 4,
                "v8" => vec = 8,
                // Ordering, scope and cache qualifiers: every access is sequentially consistent
                // and uncached in the simulator.
                "volatile"
                | "relaxed"
                | "acquire"
                | "release"
                | "weak"
                | "mmio"
                | "cta"
                | "cluster"
                | "gpu"
                | "sys"
                | "nc"
                | "ca"
                | "cg"
                | "cs"
                | "lu"
                | "cv"
                | "wb"
                | "wt"
                | "L1::evict_normal"
                | "L1::evict_unchanged"
                | "L1::evict_first"
                | "L1::evict_last"
                | "L1::no_allocate"
                | "L2::evict_normal"
                | "L2::evict_first"
                | "L2::evict_last"
                | "L2::64B"
                | "L2::128B"
                | "L2::256B" => {}
                w => match space_word(w) {
                    Some(s) if space.is_none() => space = Some(s),
                    _ => return Err(self.unsupported()),
                },
            }
        }
        self.nops(ops, 2)?;
        let is_ld = parts[0] == "ld";
        let (val, addr) = if is_ld { (ops[0], ops[1]) } else { (ops[1], ops[0]) };
        let vals = if vec > 1 {
            list(val, '{', '}')
                .filter(|v| v.len() == vec)
                .ok_or_else(|| self.err(format!("expected a vector of {vec}")))?
        } else {
            vec![val]
        };
        let (space, addr) = self.addr(addr, space.unwrap_or(Space::Generic))?;
        let op = if is_ld {
            let d = vals.into_iter().map(|v| self.dst(v)).collect::<Result<Vec<_>>>()?;
            // A signed load into a wider register sign-extends to the register's width: the
            // `Ld` yields the `ty`-wide value and a `cvt` extends it.
            let widen: Vec<(Reg, Ty)> = d
                .iter()
                .filter_map(|&r| {
                    let bits = self.regs.tys[r as usize].bits();
                    let wide = match bits {
                        16 => Ty::S16,
                        32 => Ty::S32,
                        _ => Ty::S64,
                    };
                    (ty.is_signed() && bits > ty.bits()).then_some((r, wide))
                })
                .collect();
            self.push(Op::Ld { space, ty, d, addr });
            for (r, dty) in widen {
                let a = Src::Reg(r);
                let (rnd, sat, satfinite) = (Rnd::None, false, false);
                self.push(Op::Cvt { dty, sty: ty, rnd, sat, satfinite, d: r, a, b: None });
            }
            return Ok(());
        } else {
            let a = vals.into_iter().map(|v| self.src(v, ty)).collect::<Result<Vec<_>>>()?;
            Op::St { space, ty, a, addr }
        };
        self.push(op);
        Ok(())
    }

    fn atom(&mut self, parts: &[&'a str], ty: Option<Ty>, ops: &[&'a str]) -> Result<()> {
        let ty = ty.filter(|t| *t != Ty::Pred).ok_or_else(|| self.unsupported())?;
        let (mut space, mut op) = (None, None);
        for w in &parts[1..parts.len() - 1] {
            let o = match *w {
                "relaxed" | "acquire" | "release" | "acq_rel" | "cta" | "cluster" | "gpu" | "sys" => continue,
                "add" => AtomOp::Add,
                "min" => AtomOp::Min,
                "max" => AtomOp::Max,
                "and" => AtomOp::And,
                "or" => AtomOp::Or,
                "xor" => AtomOp::Xor,
                "exch" => AtomOp::Exch,
                "cas" => AtomOp::Cas,
                "inc" => AtomOp::Inc,
                "dec" => AtomOp::Dec,
                w => match space_word(w) {
                    Some(s) if space.is_none() && !matches!(s, Space::Param | Space::Const | Space::Local) => {
                        space = Some(s);
                        continue;
                    }
                    _ => return Err(self.unsupported()),
                },
            };
            if op.replace(o).is_some() {
                return Err(self.unsupported());
            }
        }
        let op = op.ok_or_else(|| self.unsupported())?;
        let float_ok = matches!(op, AtomOp::Add | AtomOp::Exch | AtomOp::Min | AtomOp::Max) && is_f32_f64(ty);
        let is_red = parts[0] == "red";
        if ty.is_float() && !float_ok || is_red && op == AtomOp::Cas {
            return Err(self.unsupported());
        }
        let first = if is_red { 0 } else { 1 };
        self.nops(ops, first + 2 + (op == AtomOp::Cas) as usize)?;
        let d = if is_red { None } else { self.dst_opt(ops[0])? };
        let (space, addr) = self.addr(ops[first], space.unwrap_or(Space::Generic))?;
        let a = self.src(ops[first + 1], ty)?;
        let b = if op == AtomOp::Cas { Some(self.src(ops[first + 2], ty)?) } else { None };
        self.push(Op::Atom { space, op, ty, d, addr, a, b });
        Ok(())
    }

    fn shfl(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        let mode = match parts[..] {
            ["shfl", "sync", m, "b32"] => match m {
                "up" => ShflMode::Up,
                "down" => ShflMode::Down,
                "bfly" => ShflMode::Bfly,
                "idx" => ShflMode::Idx,
                _ => return Err(self.unsupported()),
            },
            _ => return Err(self.unsupported()),
        };
        self.nops(ops, 5)?;
        let (d, p) = match ops[0].split_once('|') {
            Some((d, p)) => (self.dst_or_sink(d.trim(), Ty::B32)?, self.dst_opt(p.trim())?),
            None => (self.dst(ops[0])?, None),
        };
        let a = self.src(ops[1], Ty::B32)?;
        let b = self.src(ops[2], Ty::B32)?;
        let c = self.src(ops[3], Ty::B32)?;
        let mask = self.src(ops[4], Ty::B32)?;
        self.push(Op::Shfl { mode, d, p, a, b, c, mask });
        Ok(())
    }

    fn bar(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        if parts == ["bar", "warp", "sync"] {
            self.nops(ops, 1)?;
            let mask = self.src(ops[0], Ty::B32)?;
            self.push(Op::BarWarpSync { mask });
            return Ok(());
        }
        let rest: Vec<&str> = parts[1..].iter().copied().filter(|w| *w != "cta").collect();
        if !matches!(rest[..], ["sync"] | ["sync", "aligned"]) {
            return Err(self.unsupported());
        }
        if ops.is_empty() || ops.len() > 2 {
            return Err(self.unsupported());
        }
        let id = self.src(ops[0], Ty::U32)?;
        let count = match ops.get(1) {
            Some(c) => Some(self.src(c, Ty::U32)?),
            None => None,
        };
        self.push(Op::BarSync { id, count });
        Ok(())
    }

    fn control(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        let uni_ok = parts.len() == 1 || parts.len() == 2 && parts[1] == "uni";
        match parts[0] {
            "bra" if uni_ok => {
                self.nops(ops, 1)?;
                self.branches.push((self.p.m.code.len(), ops[0], self.line));
                self.push(Op::Bra { target: u32::MAX });
            }
            "brx" if parts[1..] == ["idx"] || parts[1..] == ["idx", "uni"] => {
                self.nops(ops, 2)?;
                let index = self.src(ops[0], Ty::U32)?;
                self.brx.push((self.p.m.code.len(), ops[1], self.line));
                self.push(Op::BrxIdx { index, table: u32::MAX });
            }
            "call" if uni_ok => self.call(ops)?,
            "ret" if uni_ok => {
                self.nops(ops, 0)?;
                self.push(if self.is_entry { Op::Exit } else { Op::Ret });
            }
            "exit" if parts.len() == 1 => {
                self.nops(ops, 0)?;
                self.push(Op::Exit);
            }
            "trap" if parts.len() == 1 => {
                self.nops(ops, 0)?;
                self.push(Op::Trap);
            }
            _ => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `call (rets), func, (args)`: every argument and return value a call-scratch `.param`.
    fn call(&mut self, ops: &[&'a str]) -> Result<()> {
        let mut i = 0;
        let rets = match ops.first().and_then(|o| list(o, '(', ')')) {
            Some(r) => {
                i = 1;
                r
            }
            None => Vec::new(),
        };
        let callee = *ops.get(i).ok_or_else(|| self.unsupported())?;
        let args = match ops.get(i + 1) {
            Some(a) => list(a, '(', ')').ok_or_else(|| self.unsupported())?,
            None => Vec::new(),
        };
        if ops.len() > i + 2 || callee.starts_with('%') || self.lookup(callee).is_some() {
            // Indirect calls (through a register, with a prototype).
            return Err(self.unsupported());
        }
        let scratch = |l: &Self, names: &[&str]| -> Result<(Vec<u32>, Vec<u32>)> {
            names
                .iter()
                .filter(|n| !n.is_empty())
                .map(|n| match l.param_sym(n) {
                    Some((off, size, true)) => Ok((off, size)),
                    _ => Err(l.err(format!("call operand '{n}' is not a .param declared for the call"))),
                })
                .collect::<Result<Vec<_>>>()
                .map(|v| v.into_iter().unzip())
        };
        let (arg_offs, arg_sizes) = scratch(self, &args)?;
        let (ret_offs, ret_sizes) = scratch(self, &rets)?;
        self.p.calls.push(PendingCall { pc: self.p.m.code.len(), callee, arg_sizes, ret_sizes, line: self.line });
        self.push(Op::Call { func: u32::MAX, args: arg_offs, rets: ret_offs });
        Ok(())
    }

    /// An address in `.shared` (the mbarrier and bulk-copy operands).
    fn shared_addr(&mut self, s: &'a str, space: Space) -> Result<Addr> {
        match self.addr(s, space)? {
            (sp, a) if sp == space => Ok(a),
            _ => Err(self.err(format!("'{s}' is not a .shared address"))),
        }
    }

    fn mbarrier(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        let kind = *parts.get(1).ok_or_else(|| self.unsupported())?;
        let (mut expect_tx, mut parity, mut shared, mut cluster) = (false, false, false, false);
        // `.sem` (`release` for arrive, `acquire` for the waits, by default) and `.scope` (`cta`
        // by default).
        let (mut relaxed, mut scope_cluster) = (false, false);
        if parts.last() != Some(&"b64") {
            return Err(self.unsupported());
        }
        for w in &parts[2..parts.len() - 1] {
            match *w {
                "expect_tx" if kind == "arrive" => expect_tx = true,
                "parity" if matches!(kind, "try_wait" | "test_wait") => parity = true,
                // A remote barrier (`mapa`) only for arrive; elsewhere `.shared::cluster` names
                // the executing CTA's own.
                "shared::cluster" if !shared && kind == "arrive" => {
                    shared = true;
                    cluster = true;
                }
                "shared" | "shared::cta" | "shared::cluster" if !shared => shared = true,
                "release" | "acquire" | "cta" => {}
                "relaxed" => relaxed = true,
                "cluster" => scope_cluster = true,
                _ => return Err(self.unsupported()),
            }
        }
        if !shared {
            return Err(self.unsupported());
        }
        let op = match kind {
            "init" => {
                self.nops(ops, 2)?;
                Op::MbarInit { addr: self.shared_addr(ops[0], Space::Shared)?, count: self.src(ops[1], Ty::U32)? }
            }
            "arrive" => {
                self.nops(ops, if expect_tx { 3 } else { 2 })?;
                let d = self.dst_opt(ops[0])?;
                if cluster && d.is_some() {
                    // The PTX ISA: a `.shared::cluster` arrive returns no state (sink `_` only).
                    return Err(self.err("mbarrier.arrive.shared::cluster takes the sink '_' as its state"));
                }
                let addr = self.shared_addr(ops[1], Space::Shared)?;
                let tx = if expect_tx { Some(self.src(ops[2], Ty::U32)?) } else { None };
                Op::MbarArrive { d, addr, tx, cluster, release_cluster: scope_cluster && !relaxed, relaxed }
            }
            "expect_tx" => {
                self.nops(ops, 2)?;
                Op::MbarExpectTx { addr: self.shared_addr(ops[0], Space::Shared)?, tx: self.src(ops[1], Ty::U32)? }
            }
            "try_wait" | "test_wait" if parity => {
                self.nops(ops, 3)?;
                let p = self.dst(ops[0])?;
                let addr = self.shared_addr(ops[1], Space::Shared)?;
                Op::MbarTryWait {
                    p,
                    addr,
                    parity: self.src(ops[2], Ty::U32)?,
                    test: kind == "test_wait",
                    acquire_cluster: scope_cluster && !relaxed,
                    relaxed,
                }
            }
            _ => return Err(self.unsupported()),
        };
        self.push(op);
        Ok(())
    }

    fn cp_async(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        match parts[..] {
            ["cp", "async", "bulk", "commit_group"] => {
                self.nops(ops, 0)?;
                self.push(Op::BulkCommit);
                return Ok(());
            }
            ["cp", "async", "bulk", "wait_group"] | ["cp", "async", "bulk", "wait_group", "read"] => {
                self.nops(ops, 1)?;
                let n = self.imm_u32(ops[0])?;
                self.push(Op::BulkWait { n, read: parts.len() == 5 });
                return Ok(());
            }
            ["cp", "async", "bulk", "tensor", dim, "global", "shared::cta", ref rest @ ..]
                if matches!(rest, ["bulk_group"] | ["tile", "bulk_group"]) =>
            {
                let dims = match dim {
                    "1d" => 1,
                    "2d" => 2,
                    "3d" => 3,
                    "4d" => 4,
                    "5d" => 5,
                    _ => return Err(self.unsupported()),
                };
                self.nops(ops, 2)?;
                let inner =
                    list(ops[0], '[', ']').filter(|v| v.len() == 2).ok_or_else(|| self.err("bad tensor operand"))?;
                let map = self.src(inner[0], Ty::U64)?;
                let coords = list(inner[1], '{', '}')
                    .filter(|c| c.len() == dims)
                    .ok_or_else(|| self.err("bad tensor coordinates"))?;
                let coords = coords.into_iter().map(|c| self.src(c, Ty::S32)).collect::<Result<Vec<_>>>()?;
                let src = self.shared_addr(ops[1], Space::Shared)?;
                self.push(Op::TmaStore { map, coords, src });
                return Ok(());
            }
            _ => {}
        }
        let (dims, multicast) = match parts[..] {
            ["cp", "async", "bulk", "tensor", dim, "shared::cluster", "global", ref rest @ ..]
                if matches!(
                    rest,
                    ["tile", "mbarrier::complete_tx::bytes"]
                        | ["mbarrier::complete_tx::bytes"]
                        | ["tile", "mbarrier::complete_tx::bytes", "multicast::cluster"]
                        | ["mbarrier::complete_tx::bytes", "multicast::cluster"]
                ) =>
            {
                let multicast = rest.last() == Some(&"multicast::cluster");
                let dims = match dim {
                    "1d" => 1,
                    "2d" => 2,
                    "3d" => 3,
                    "4d" => 4,
                    "5d" => 5,
                    _ => return Err(self.unsupported()),
                };
                (dims, multicast)
            }
            _ => return Err(self.unsupported()),
        };
        self.nops(ops, if multicast { 4 } else { 3 })?;
        let dst = self.shared_addr(ops[0], Space::SharedCluster)?;
        let inner = list(ops[1], '[', ']').filter(|v| v.len() == 2).ok_or_else(|| self.err("bad tensor operand"))?;
        let map = self.src(inner[0], Ty::U64)?;
        let coords =
            list(inner[1], '{', '}').filter(|c| c.len() == dims).ok_or_else(|| self.err("bad tensor coordinates"))?;
        let coords = coords.into_iter().map(|c| self.src(c, Ty::S32)).collect::<Result<Vec<_>>>()?;
        let mbar = self.shared_addr(ops[2], Space::Shared)?;
        let multicast = if multicast { Some(self.src(ops[3], Ty::U16)?) } else { None };
        self.push(Op::CpAsyncBulkTensor { dst, map, coords, mbar, multicast });
        Ok(())
    }

    fn stmatrix(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        let (num, trans) = match parts[..] {
            ["stmatrix", "sync", "aligned", "m8n8", x, ref rest @ ..] => {
                let num = match x {
                    "x1" => 1,
                    "x2" => 2,
                    "x4" => 4,
                    _ => return Err(self.unsupported()),
                };
                match rest {
                    ["shared" | "shared::cta", "b16"] => (num, false),
                    ["trans", "shared" | "shared::cta", "b16"] => (num, true),
                    _ => return Err(self.unsupported()),
                }
            }
            _ => return Err(self.unsupported()),
        };
        self.nops(ops, 2)?;
        let addr = self.shared_addr(ops[0], Space::Shared)?;
        let regs =
            list(ops[1], '{', '}').filter(|r| r.len() == num).ok_or_else(|| self.err("bad stmatrix registers"))?;
        let a = regs.into_iter().map(|r| self.src(r, Ty::B32)).collect::<Result<Vec<_>>>()?;
        self.push(Op::StMatrix { trans, addr, a });
        Ok(())
    }

    fn wgmma(&mut self, parts: &[&'a str], ops: &[&'a str]) -> Result<()> {
        let op = match parts[..] {
            ["wgmma", "fence", "sync", "aligned"] => Op::WgmmaFence,
            ["wgmma", "commit_group", "sync", "aligned"] => Op::WgmmaCommit,
            ["wgmma", "wait_group", "sync", "aligned"] => {
                self.nops(ops, 1)?;
                Op::WgmmaWait { n: self.imm_u32(ops[0])? }
            }
            ["wgmma", "mma_async", "sync", "aligned", shape, dty, aty, bty] => {
                return self.wgmma_mma(shape, dty, aty, bty, ops);
            }
            _ => return Err(self.unsupported()),
        };
        if !matches!(op, Op::WgmmaWait { .. }) {
            self.nops(ops, 0)?;
        }
        self.push(op);
        Ok(())
    }

    fn wgmma_mma(&mut self, shape: &str, dty: &str, aty: &str, bty: &str, ops: &[&'a str]) -> Result<()> {
        let bad = || err(self.line, format!("unsupported instruction form '{}'", self.form));
        let (m, rest) = shape.strip_prefix('m').and_then(|s| s.split_once('n')).ok_or_else(bad)?;
        let (n, k) = rest.split_once('k').ok_or_else(bad)?;
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
        let (m, n, k) = (num(m)?, num(n)?, num(k)?);
        let in_ty = |s: &str| match s {
            "bf16" => Ok(Ty::Bf16),
            "f16" => Ok(Ty::F16),
            "e4m3" => Ok(Ty::E4m3x2),
            "e5m2" => Ok(Ty::E5m2x2),
            _ => Err(bad()),
        };
        let (aty, bty) = (in_ty(aty)?, in_ty(bty)?);
        let dty = match dty {
            "f32" => Ty::F32,
            "f16" => Ty::F16,
            _ => return Err(bad()),
        };
        let half = matches!(aty, Ty::Bf16 | Ty::F16);
        let k_ok = if half { 16 } else { 32 };
        if m != 64 || n % 8 != 0 || n == 0 || n > 256 || k != k_ok || half && aty != bty {
            return Err(bad());
        }
        self.nops(ops, if half { 8 } else { 6 })?;
        let d_regs = list(ops[0], '{', '}').ok_or_else(bad)?;
        let per_reg = if dty == Ty::F32 { 1 } else { 2 };
        if d_regs.len() as u32 != m * n / 128 / per_reg {
            return Err(self.err(format!("wgmma with {} accumulator registers", d_regs.len())));
        }
        if ops[1].starts_with('{') {
            return Err(bad()); // A from registers
        }
        let d = d_regs.into_iter().map(|r| self.dst(r)).collect::<Result<Vec<_>>>()?;
        let a_desc = self.src(ops[1], Ty::U64)?;
        let b_desc = self.src(ops[2], Ty::U64)?;
        let scale_d = self.src(ops[3], Ty::Pred)?;
        let scale = |l: &Self, s: &str| match parse_int(s).map(|v| v as i64) {
            Some(1) => Ok(1),
            Some(-1) => Ok(-1),
            _ => Err(l.err(format!("bad wgmma scale '{s}'"))),
        };
        let (scale_a, scale_b) = (scale(self, ops[4])?, scale(self, ops[5])?);
        let tnsp = |l: &Self, i: usize| match ops.get(i).map(|s| l.imm_u32(s)) {
            None => Ok(0),
            Some(Ok(v)) if v <= 1 => Ok(v),
            _ => Err(l.err("bad wgmma transpose flag")),
        };
        let (tnsp_a, tnsp_b) = (tnsp(self, 6)?, tnsp(self, 7)?);
        self.push(Op::Wgmma { m, n, k, dty, aty, bty, d, a_desc, b_desc, scale_d, scale_a, scale_b, tnsp_a, tnsp_b });
        Ok(())
    }
}

/// The type twice as wide (the result of `mul.wide` / addend of `mad.wide`).
fn wide_ty(ty: Ty) -> Ty {
    match ty {
        Ty::U8 => Ty::U16,
        Ty::S8 => Ty::S16,
        Ty::U16 => Ty::U32,
        Ty::S16 => Ty::S32,
        Ty::U32 => Ty::U64,
        Ty::S32 => Ty::S64,
        Ty::B16 => Ty::B32,
        Ty::B32 => Ty::B64,
        t => t,
    }
}
