//! The PTX modules built from `kernels-gpu` by `build.rs`, embedded in the library, and the
//! per-kernel modules cut from them: a context loads (and the driver JIT-compiles) each kernel
//! on its first use only, not the whole module.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::OnceLock;

/// Hopper module: every kernel, compiled with `-C target-cpu=sm_90a`. Loads only on compute
/// capability 9.0 (H100, H200, GH200).
pub const SM_90A: &str = include_str!(concat!(env!("OUT_DIR"), "/sm_90a.ptx"));

/// Portable module: kernels that need no Hopper instruction, compiled with
/// `-C target-cpu=sm_80`; the driver JIT-compiles it for any GPU of compute capability >= 8.0.
pub const SM_80: &str = include_str!(concat!(env!("OUT_DIR"), "/sm_80.ptx"));

/// Which embedded module a context runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `sm_90a`: all kernels, Hopper instructions included.
    Sm90a,
    /// `sm_80`: the portable kernels only.
    Sm80,
}

impl Arch {
    /// The module for a device of compute capability `major.minor`, or `None` below 8.0.
    pub fn for_compute_capability(major: i32, minor: i32) -> Option<Arch> {
        match (major, minor) {
            (9, 0) => Some(Arch::Sm90a),
            (m, _) if m >= 8 => Some(Arch::Sm80),
            _ => None,
        }
    }

    /// The module's PTX text.
    pub fn ptx(self) -> &'static str {
        match self {
            Arch::Sm90a => SM_90A,
            Arch::Sm80 => SM_80,
        }
    }

    /// `"sm_90a"` or `"sm_80"`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Sm90a => "sm_90a",
            Arch::Sm80 => "sm_80",
        }
    }
}

/// The kernels of an embedded module, each loadable on its own: the text every kernel needs (the
/// header, declarations and anything else that is not an entry) and where each entry lies.
pub(crate) struct KernelIndex {
    ptx: &'static str,
    /// Everything outside the entries, in order.
    pub(crate) common: String,
    /// Each entry's text (from its `.entry` line to its closing brace), by name.
    entries: HashMap<&'static str, Range<usize>>,
}

impl KernelIndex {
    /// The index of `ptx`: each entry runs from a line `[.visible |.weak ].entry NAME(` to the
    /// first line after it that is a lone `}` at the start of the line (LLVM indents the blocks
    /// inside an entry), the rest is common.
    pub(crate) fn new(ptx: &'static str) -> KernelIndex {
        let mut common = String::with_capacity(1024);
        let mut entries = HashMap::new();
        let mut at = 0;
        let mut open: Option<(&'static str, usize)> = None;
        for line in ptx.split_inclusive('\n') {
            let start = at;
            at += line.len();
            match open {
                Some((name, from)) => {
                    if line.trim_end() == "}" {
                        entries.insert(name, from..at);
                        open = None;
                    }
                }
                None => match entry_name(line) {
                    Some(name) => open = Some((name, start)),
                    None => common.push_str(line),
                },
            }
        }
        KernelIndex { ptx, common, entries }
    }

    /// The index of `arch`'s module, built on first use.
    pub(crate) fn of(arch: Arch) -> &'static KernelIndex {
        static SM_90A_INDEX: OnceLock<KernelIndex> = OnceLock::new();
        static SM_80_INDEX: OnceLock<KernelIndex> = OnceLock::new();
        match arch {
            Arch::Sm90a => SM_90A_INDEX.get_or_init(|| KernelIndex::new(SM_90A)),
            Arch::Sm80 => SM_80_INDEX.get_or_init(|| KernelIndex::new(SM_80)),
        }
    }

    /// The PTX of a module holding kernel `name` alone (the common text, then the entry), or
    /// `None` if the module has no such kernel.
    pub(crate) fn module(&self, name: &str) -> Option<String> {
        let range = self.entries.get(name)?;
        let mut text = String::with_capacity(self.common.len() + range.len());
        text.push_str(&self.common);
        text.push_str(&self.ptx[range.clone()]);
        Some(text)
    }

    /// The names of the kernels, in no particular order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }
}

/// The kernel a line `[.visible |.weak ].entry NAME(` declares, if it is one.
fn entry_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(".visible ").or_else(|| line.strip_prefix(".weak ")).unwrap_or(line);
    let rest = rest.strip_prefix(".entry ")?;
    let name = rest.split('(').next()?.trim();
    (!name.is_empty()).then_some(name)
}
