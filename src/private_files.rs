//! Owner-only files and folders. The state directory holds every delivered property value
//! (e-mails included), the HubSpot credentials and the admin API's token, so it is created with
//! mode 0700 and its files are set to 0600. Secrets are written to a temporary file with a
//! unique name, created 0600, and renamed into place, so two processes saving at once never
//! write into one another's file and a reader never sees half a file.

use std::io::{self, Write};
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

/// Mode of the state directory and the folders in it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files in the state directory.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700, and tightens it to 0700 if it exists with
/// more. A folder this user does not own keeps its mode, with a warning.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    #[cfg(unix)]
    {
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)) {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = %format!("{mode:o}"),
                    error = %e,
                    "Cannot make the state directory private to its owner (chmod 700 it)."
                );
            }
        }
    }
    Ok(())
}

/// Sets `path` to mode 0600 if it exists.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    Ok(())
}

/// Sets a DuckDB state file and its write-ahead log (`<file>.wal`) to mode 0600, after DuckDB
/// created them with the process's umask. A file this user does not own keeps its mode, with a
/// warning (the state directory's 0700 still keeps other users out).
pub fn restrict_state_file(path: &Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push(".wal");
    for file in [path, Path::new(&wal)] {
        if let Err(e) = restrict_file(file) {
            tracing::warn!(file = %file.display(), error = %e, "Cannot make the state file private to its owner (chmod 600 it).");
        }
    }
}

/// Writes `body` to `path` readable by the owner only: into a uniquely named temporary file
/// (mode 0600) in the same folder, then renamed over `path`.
pub fn write_private(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Like [`write_private`], but never replaces an existing file: `Ok(false)` when `path` exists.
pub fn write_private_new(path: &Path, body: &[u8]) -> io::Result<bool> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

/// A temporary file in `path`'s folder, named `.<file name>.<random>.tmp`, mode 0600.
fn temp_beside(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // tempfile creates the file with mode 0600 and a random suffix, with O_EXCL.
    tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn folders_are_0700_and_files_0600() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/state");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "an existing folder is tightened");

        let file = dir.join("secret");
        write_private(&file, b"one").unwrap();
        assert_eq!(mode(&file), 0o600);
        write_private(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        assert!(!write_private_new(&file, b"three").unwrap(), "an existing file is kept");
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")], "no temporary file is left");

        let db = dir.join("s.duckdb");
        std::fs::write(&db, b"").unwrap();
        std::fs::write(dir.join("s.duckdb.wal"), b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict_state_file(&db);
        assert_eq!((mode(&db), mode(&dir.join("s.duckdb.wal"))), (0o600, 0o600));
        restrict_state_file(&dir.join("missing.duckdb"));
    }
}
