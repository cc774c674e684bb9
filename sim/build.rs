//! The cdylib answers to `dlopen("libcuda.so")` once loaded by its full path: give it that SONAME.
//! Also records the `deps/` folder of this build (`target/<profile>/deps`, where cargo writes the
//! cdylib), so that `install` finds the library from executables cargo runs from elsewhere
//! (doc tests).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so");
    println!("cargo:rerun-if-changed=build.rs");
    // OUT_DIR is <target>/<profile>/build/lowp-sim-<hash>/out.
    if let Some(profile_dir) = std::env::var_os("OUT_DIR")
        .map(std::path::PathBuf::from)
        .and_then(|o| o.ancestors().nth(3).map(|p| p.to_path_buf()))
    {
        println!("cargo:rustc-env=LOWP_SIM_BUILD_DEPS={}", profile_dir.join("deps").display());
    }
}
