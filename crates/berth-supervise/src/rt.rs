//! Symbols the compiler expects from a C library (`memcpy`, `memmove`, `memset`, `memcmp`,
//! `bcmp`), written so that they cannot be compiled into calls to themselves.

#[cfg(target_arch = "x86_64")]
use core::arch::asm;

/// `memcpy` for the compiler; `rep movsb` so it cannot be turned into a call to itself.
///
/// # Safety
/// `src` and `dst` must be valid for `n` bytes and must not overlap.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid; the direction flag is clear per ABI.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// `memmove` for the compiler.
///
/// # Safety
/// `src` and `dst` must be valid for `n` bytes; they may overlap.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst is below src or the ranges are disjoint: copying forwards is safe.
        // SAFETY: as for memcpy; a forward copy never reads a byte it already overwrote.
        unsafe {
            asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
                 options(nostack, preserves_flags));
        }
    } else {
        // SAFETY: backwards copy from the last byte; the direction flag is restored (cld).
        unsafe {
            asm!("std", "rep movsb", "cld", inout("rcx") n => _,
                 inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
                 options(nostack));
        }
    }
    dst
}

/// `memset` for the compiler.
///
/// # Safety
/// `dst` must be valid for `n` bytes.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range is valid.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// `memcpy` for the compiler: a byte loop whose volatile accesses cannot be recognised as a
/// `memcpy` idiom (which would make this function call itself).
///
/// # Safety
/// `src` and `dst` must be valid for `n` bytes and must not overlap.
#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees both ranges are valid.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
    }
    dst
}

/// `memmove` for the compiler.
///
/// # Safety
/// `src` and `dst` must be valid for `n` bytes; they may overlap.
#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst is below src or the ranges are disjoint: copying forwards is safe.
        for i in 0..n {
            // SAFETY: i < n and the caller guarantees both ranges are valid.
            unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        }
    } else {
        for i in (0..n).rev() {
            // SAFETY: i < n; copying backwards never reads a byte it already overwrote.
            unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        }
    }
    dst
}

/// `memset` for the compiler.
///
/// # Safety
/// `dst` must be valid for `n` bytes.
#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees the range is valid.
        unsafe { core::ptr::write_volatile(dst.add(i), c as u8) };
    }
    dst
}

/// `memcmp` for the compiler.
///
/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees both ranges are valid; volatile reads keep
        // the loop from being recognised as a memcmp idiom.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// `bcmp` for the compiler.
///
/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}
