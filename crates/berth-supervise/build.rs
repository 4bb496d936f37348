//! Link `berth-supervise` as a non-PIE executable with its own `_start` and no C runtime.
//!
//! With `panic = "abort"` (release) the crate is `no_std` and the result is a genuinely
//! static, libc-free executable. With `panic = "unwind"` (dev/test) `std` is linked only to
//! satisfy rustc's `eh_personality` requirement: its object drags in references to libc, so
//! the linker records `DT_NEEDED` entries, but there is no `PT_INTERP`, no libc code ever
//! runs and the supervisor itself never calls into `std` (see `src/main.rs`).
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
