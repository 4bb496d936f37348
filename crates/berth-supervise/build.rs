//! Link `berth-supervise` as a static, non-PIE executable with its own `_start` and no C
//! runtime or libc (see the crate docs in `src/main.rs`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
