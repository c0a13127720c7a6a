//! Handing memory the process freed back to the operating system. Replacing a model's f32
//! matrices by their blocks frees gigabytes in allocations of a few megabytes each, which
//! glibc's allocator keeps for reuse (its mmap threshold rises as large blocks are freed), so
//! the process would go on holding the f32 copies it no longer uses.

/// Returns the allocator's free memory to the system (glibc's `malloc_trim`; nothing
/// elsewhere).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}
