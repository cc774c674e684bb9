//! The cdylib answers to `dlopen("libcuda.so")` once loaded by its full path: give it that SONAME.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so");
    println!("cargo:rerun-if-changed=build.rs");
}
