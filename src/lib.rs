//! hubsync: keeps HubSpot in step with SQL models in a warehouse.
//!
//! The library holds every part of the daemon; `main.rs` is only the command line on top.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod private_files;
pub mod scheduler;
pub mod source;
pub mod state;
pub mod sync;
pub mod telemetry;

/// Tunes glibc's allocator for a long-running process whose state database (DuckDB) allocates
/// and frees 256 KiB blocks from several threads: at most two arenas, and blocks of 128 KiB or
/// more always mapped and unmapped, so memory DuckDB frees goes back to the system instead of
/// staying in per-thread arenas (measured with the same settings through `GLIBC_TUNABLES`: the
/// peak of a 1,000,000-link association phase fell from 348 to 330 MB). Call it first in `main`,
/// before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
