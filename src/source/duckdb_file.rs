//! What a DuckDB file that will not open means, in words a user can act on: shared by the
//! DuckDB warehouse and the state store, which both open DuckDB files.
//!
//! The bundled DuckDB (2.0) reads storage versions 64 to 69: files written by DuckDB 0.9.0 up
//! to 2.0. A file written by a newer DuckDB, or by one too old, fails to open with DuckDB's own
//! storage-version message and a link; [`storage_version_message`] turns it into one sentence.

use std::path::Path;

/// The oldest and newest storage versions the bundled DuckDB reads, and what wrote them.
pub const STORAGE_VERSIONS: (u64, u64) = (64, 69);
/// The DuckDB releases that write [`STORAGE_VERSIONS`].
pub const STORAGE_WRITERS: &str = "DuckDB 0.9.0 to 2.0";

/// The version of the bundled DuckDB library, e.g. `v2.0.0`.
pub fn library_version() -> String {
    // SAFETY: returns a pointer to a static, NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(duckdb::ffi::duckdb_library_version()) };
    version.to_string_lossy().into_owned()
}

/// One sentence for a storage-version error, or `None` for any other error.
pub fn storage_version_message(path: &Path, error: &str) -> Option<String> {
    let after = error.split("storage version number ").nth(1)?;
    let version: u64 = after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let writer = error
        .split("created with ")
        .nth(1)
        .map(|rest| rest.split('\n').next().unwrap_or(rest).trim_end_matches('.').trim())
        .filter(|w| !w.is_empty())
        .unwrap_or("another version of DuckDB");
    let (oldest, newest) = STORAGE_VERSIONS;
    Some(format!(
        "the DuckDB file {} was written by {writer} (storage version {version}), but hubsync's DuckDB {} reads \
         storage versions {oldest} to {newest} only (files written by {STORAGE_WRITERS})",
        path.display(),
        library_version(),
    ))
}

/// Whether an open error is DuckDB's file lock, held by another process.
pub fn is_lock_conflict(error: &str) -> bool {
    error.contains("Could not set lock on file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_version_errors_become_one_sentence() {
        let duckdb = "IO Error: Trying to read a database file with storage version number 70, but we can only read \
                      storage versions between 64 and 69.\nThe database file was created with a newer version of \
                      DuckDB.\n\nNewer DuckDB version might introduce backward incompatible changes.\nSee the storage \
                      page for migration strategy and more information: https://duckdb.org/internals/storage";
        let message = storage_version_message(Path::new("/data/w.duckdb"), duckdb).unwrap();
        assert!(message.starts_with("the DuckDB file /data/w.duckdb was written by a newer version of DuckDB"));
        assert!(message.contains("(storage version 70)"), "{message}");
        assert!(message.contains(&format!("hubsync's DuckDB {} reads storage versions 64 to 69", library_version())));
        assert!(!message.contains('\n') && !message.contains("https://"), "{message}");
        assert!(storage_version_message(Path::new("x"), "Catalog Error: no table").is_none());
    }

    #[test]
    fn the_bundled_duckdb_is_the_one_the_ranges_describe() {
        assert!(library_version().starts_with("v2.0."), "update STORAGE_VERSIONS for {}", library_version());
    }

    #[test]
    fn only_the_lock_error_is_a_lock_conflict() {
        assert!(is_lock_conflict("IO Error: Could not set lock on file \"s.duckdb\": Conflicting lock is held in x"));
        assert!(!is_lock_conflict(
            "Corrupt database file: computed checksum 1 does not match stored checksum 2 in block"
        ));
    }
}
