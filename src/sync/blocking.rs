//! Running DuckDB work from async code: on a multi-threaded runtime the worker thread is
//! handed over first (`block_in_place`), so a long statement does not starve other tasks; on
//! a current-thread runtime (or outside one) the work simply runs.

/// Runs DuckDB work on the current thread without starving a multi-threaded runtime.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
