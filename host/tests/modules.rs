//! The embedded PTX modules against the kernels the host launches: every kernel a family
//! resolves by name is in the module it runs from, and nothing else is compiled.

use crate::abi;
use crate::ptx::{Arch, KernelIndex, SM_80, SM_90A};

/// Kernels of the portable module (also compiled into the sm_90a module), one list per family.
fn portable_kernels() -> impl Iterator<Item = &'static str> {
    [
        crate::context::KERNELS,
        crate::rmsnorm::KERNELS,
        crate::cast::KERNELS,
        crate::fp8::KERNELS,
        crate::qk_norm_rope::KERNELS,
        crate::microscaling::KERNELS,
    ]
    .into_iter()
    .flat_map(|f| f.iter().copied())
}

/// Kernels only the sm_90a module has (wgmma/TMA).
fn hopper_kernels() -> impl Iterator<Item = &'static str> {
    crate::gemm::KERNELS.iter().copied()
}

fn entries(ptx: &str) -> Vec<&str> {
    ptx.lines()
        .filter_map(|l| l.trim().strip_prefix(".visible .entry "))
        .map(|l| l.split('(').next().unwrap_or("").trim())
        .collect()
}

#[test]
fn both_modules_are_embedded_self_contained_and_for_their_target() {
    for (arch, target) in [(Arch::Sm90a, ".target sm_90a"), (Arch::Sm80, ".target sm_80")] {
        let ptx = arch.ptx();
        assert!(ptx.contains(target), "{}: missing `{target}`", arch.name());
        assert!(!ptx.contains(".extern .func"), "{}: unresolved function", arch.name());
        // Panics abort with `trap` (immediate-abort): no formatting machinery reaches the PTX.
        assert!(!ptx.contains("vprintf"), "{}: device printf pulled in", arch.name());
    }
}

#[test]
fn every_kernel_the_host_launches_exists_in_both_modules() {
    let e90 = entries(SM_90A);
    let e80 = entries(SM_80);
    for name in portable_kernels() {
        assert!(e90.contains(&name), "sm_90a module lacks `{name}` (has {e90:?})");
        assert!(e80.contains(&name), "sm_80 module lacks `{name}` (has {e80:?})");
    }
    for name in hopper_kernels() {
        assert!(e90.contains(&name), "sm_90a module lacks `{name}`");
        assert!(!e80.contains(&name), "the portable module has the Hopper-only `{name}`");
    }
    // And nothing is compiled that the host never loads.
    for name in &e90 {
        assert!(
            portable_kernels().chain(hopper_kernels()).any(|k| k == *name),
            "kernel `{name}` is in the sm_90a module but no family launches it"
        );
    }
}

#[test]
fn every_kernel_is_cut_into_a_module_of_its_own() {
    for arch in [Arch::Sm90a, Arch::Sm80] {
        let ptx = arch.ptx();
        let index = KernelIndex::new(ptx);
        let mut names: Vec<&str> = index.names().collect();
        let mut listed = entries(ptx);
        names.sort_unstable();
        listed.sort_unstable();
        assert_eq!(names, listed, "{}: the index has other kernels than the module", arch.name());
        // Nothing is lost or repeated: the common text and the entries are the whole module.
        let mut total = index.common.len();
        let header = ptx.split(".visible .entry").next().unwrap_or("");
        assert!(header.contains(".version") && header.contains(".target") && header.contains(".address_size"));
        assert!(!index.common.contains(".entry"), "{}: an entry left in the common text", arch.name());
        for name in &names {
            let module = index.module(name).expect("indexed");
            assert!(module.starts_with(header), "{}: `{name}`'s module lacks the header", arch.name());
            assert_eq!(entries(&module), vec![*name], "{}: `{name}`'s module holds other kernels", arch.name());
            // Its braces balance, and its entry ends with the module (no cut mid-body).
            let code: String = module.lines().map(|l| l.split("//").next().unwrap_or("")).collect();
            assert_eq!(
                code.matches('{').count(),
                code.matches('}').count(),
                "{}: `{name}` cut unbalanced",
                arch.name()
            );
            assert!(module.trim_end().ends_with('}'), "{}: `{name}`", arch.name());
            total += module.len() - index.common.len();
        }
        assert_eq!(total, ptx.len(), "{}: the kernels' modules do not add up to the module", arch.name());
        assert!(index.module("no_such_kernel").is_none());
    }
}

#[test]
fn kernel_parameters_are_one_struct_of_the_shared_size() {
    // Each RMSNorm entry takes exactly one 72-byte, 8-aligned parameter: `RmsNormParams`.
    for arch in [Arch::Sm90a, Arch::Sm80] {
        let ptx = arch.ptx();
        for name in ["rmsnorm_bf16", "rmsnorm_f16", "add_rmsnorm_bf16", "add_rmsnorm_f16"] {
            let decl = format!(".param .align 8 .b8 {name}_param_0[{}]", std::mem::size_of::<abi::RmsNormParams>());
            assert!(ptx.contains(&decl), "{}: `{name}` does not take one RmsNormParams (`{decl}`)", arch.name());
            assert!(
                !ptx.contains(&format!("{name}_param_1")),
                "{}: `{name}` takes more than one parameter",
                arch.name()
            );
        }
        let decl =
            format!(".param .align 8 .b8 cast_f32_to_e4m3fn_param_0[{}]", std::mem::size_of::<abi::CastParams>());
        assert!(ptx.contains(&decl), "{}: cast kernel parameter is not CastParams", arch.name());
    }
}

#[test]
fn fp8_conversion_uses_cvt_on_hopper_and_software_on_sm80() {
    assert!(SM_90A.contains("cvt.rn.satfinite.e4m3x2.f32"));
    assert!(!SM_80.contains("e4m3x2"), "sm_80 has no FP8 cvt; the module must use the software path");
}

/// The top-level module of `host/` each `crate::…` path in `src` names (a re-exported root name
/// such as `crate::Half` counts as the module it comes from), comments and test-only modules
/// left out.
fn imports(src: &str, reexports: &std::collections::HashMap<String, String>) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut skip_next = false;
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            skip_next = true;
            continue;
        }
        if skip_next {
            skip_next = false;
            if t.starts_with("mod ") || t.starts_with("pub(crate) const") || t.starts_with("#[path") {
                continue;
            }
        }
        let mut rest = t;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if let Some(m) = reexports.get(&name) {
                out.insert(m.clone());
            } else if name.chars().next().is_some_and(|c| c.is_lowercase()) {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn no_host_module_imports_one_that_imports_it_back() {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    // The sources where this executable was built, or (an executable copied to another machine
    // with the repository) under the working directory.
    let host = [env!("CARGO_MANIFEST_DIR"), "."]
        .map(|d| std::path::Path::new(d).join("host"))
        .into_iter()
        .find(|h| h.join("lib.rs").is_file())
        .expect("host/lib.rs: run from the repository root");
    // Root re-exports: `pub use module::{A, B};` makes `crate::A` a path into `module`.
    let lib = std::fs::read_to_string(host.join("lib.rs")).expect("lib.rs");
    let mut reexports = HashMap::new();
    for line in lib.lines().filter_map(|l| l.trim().strip_prefix("pub use ")) {
        if let Some((module, names)) = line.split_once("::") {
            for n in names.trim_end_matches(';').trim_matches(|c| c == '{' || c == '}').split(',') {
                reexports.insert(n.trim().to_string(), module.to_string());
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![host.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read host/") {
            let path = entry.expect("entry").path();
            let rel = path.strip_prefix(&host).expect("under host/").to_string_lossy().into_owned();
            if path.is_dir() {
                if rel != "tests" {
                    stack.push(path);
                }
                continue;
            }
            if rel == "lib.rs" || !rel.ends_with(".rs") {
                continue;
            }
            let top = rel.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_string();
            let src = std::fs::read_to_string(&path).expect("source");
            let deps = imports(&src, &reexports);
            graph.entry(top.clone()).or_default().extend(deps.into_iter().filter(|d| *d != top));
        }
    }
    // Depth-first search for a cycle.
    fn visit(
        u: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut HashMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(u.to_string(), 1);
        path.push(u.to_string());
        for v in graph.get(u).into_iter().flatten().filter(|v| graph.contains_key(*v)) {
            match state.get(v.as_str()) {
                Some(1) => {
                    let start = path.iter().position(|p| p == v).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(v.clone());
                    return Some(cycle);
                }
                None => {
                    if let Some(c) = visit(v, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(u.to_string(), 2);
        None
    }
    assert!(graph.len() > 10, "read only {:?}", graph.keys());
    let mut state = HashMap::new();
    for m in graph.keys() {
        if !state.contains_key(m.as_str()) {
            if let Some(cycle) = visit(m, &graph, &mut state, &mut Vec::new()) {
                panic!("host modules import each other in a circle: {}", cycle.join(" -> "));
            }
        }
    }
}
