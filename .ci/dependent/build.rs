//! Linking for CI without a CUDA installation (see run.sh): the stub libraries' directory, and lazy
//! binding, so that functions the lowp-sim simulator (libcuda at run time) does not export are
//! looked up only if called.

fn main() {
    println!("cargo:rerun-if-env-changed=LOWP_DEPENDENT_STUBS");
    if let Some(dir) = std::env::var_os("LOWP_DEPENDENT_STUBS") {
        println!("cargo:rustc-link-search=native={}", std::path::Path::new(&dir).display());
        println!("cargo:rustc-link-arg=-Wl,-z,lazy");
    }
}
