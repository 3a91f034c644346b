//! The state file's schema version and its migrations. Every state file records the versions
//! applied to it in `schema_version`; opening a file for writing applies the missing ones, in
//! order, in one transaction, so a crash or an error leaves the file as it was.
//!
//! A schema change is one new entry at the end of [`MIGRATIONS`] and its SQL file in
//! `sql/migrations/` (`NNN_what.sql`). A migration's SQL runs once per file and never again, so
//! it is written for the schema of the version before it; version 1 is the schema of the files
//! written before versions existed, and stays idempotent (`IF NOT EXISTS`) because such files
//! may come from any earlier release. A file whose version is newer than [`SCHEMA_VERSION`] is
//! refused: this hubsync does not know what the newer one changed.

use std::path::Path;

use duckdb::{params, Connection};

use super::types::StateError;

/// One step of the schema.
pub struct Migration {
    /// The version a file has once this step ran: 1, 2, 3, ... with no gaps.
    pub version: u32,
    /// What the step changes, as stored in `schema_version`.
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every schema step, oldest first. Add a new one at the end; never edit a released one.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "base schema", sql: include_str!("../../sql/migrations/001_base.sql") },
    Migration {
        version: 2,
        name: "merged and vanished records per run",
        sql: include_str!("../../sql/migrations/002_vanished.sql"),
    },
    Migration {
        version: 3,
        name: "removals: stale links held by the delete guard, removal counts per run",
        sql: include_str!("../../sql/migrations/003_removals.sql"),
    },
];

/// The schema version this hubsync writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, name VARCHAR, migrated_at TIMESTAMP)";

/// The schema version of the database on `conn` (schema `main` of `catalog`, when given): the
/// highest version in its `schema_version` table, or 0 for a file written before versions
/// existed (or an empty one).
pub(super) fn file_version(conn: &Connection, catalog: Option<&str>) -> duckdb::Result<u32> {
    let catalog = catalog.unwrap_or("");
    let has_table: i64 = conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version' AND schema_name = 'main' \
         AND (? = '' OR database_name = ?)",
        params![catalog, catalog],
        |r| r.get(0),
    )?;
    if has_table == 0 {
        return Ok(0);
    }
    let table =
        if catalog.is_empty() { "schema_version".to_string() } else { format!("{catalog}.main.schema_version") };
    let version: Option<i64> = conn.query_row(&format!("SELECT max(version) FROM {table}"), [], |r| r.get(0))?;
    Ok(version.unwrap_or(0).max(0) as u32)
}

/// The error for a file written by a newer hubsync.
pub(super) fn too_new(path: &Path, version: u32) -> StateError {
    StateError::Open {
        path: path.to_path_buf(),
        message: format!(
            "the file has state schema version {version}, written by a newer hubsync; this hubsync knows versions \
             up to {SCHEMA_VERSION}. Run the newer hubsync, or point `state_dir` at another folder (the sync then \
             starts over from an empty state)"
        ),
    }
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: u32,
    pub to: u32,
}

/// Brings the database on `conn` to [`SCHEMA_VERSION`] in one transaction. `path` names the
/// file in errors. Returns the versions when it changed anything.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<Option<Migrated>, StateError> {
    let fail = |step: &str, e: duckdb::Error| StateError::Open {
        path: path.to_path_buf(),
        message: format!("cannot bring the state schema up to version {SCHEMA_VERSION} ({step}): {e}"),
    };
    conn.execute_batch("BEGIN TRANSACTION").map_err(|e| fail("begin", e))?;
    let result = (|| {
        conn.execute_batch(VERSION_TABLE).map_err(|e| fail("version table", e))?;
        let from = file_version(conn, None).map_err(|e| fail("read version", e))?;
        if from > SCHEMA_VERSION {
            return Err(too_new(path, from));
        }
        for step in MIGRATIONS.iter().filter(|m| m.version > from) {
            conn.execute_batch(step.sql).map_err(|e| fail(&format!("version {}: {}", step.version, step.name), e))?;
            conn.execute(
                "INSERT INTO schema_version VALUES (?, ?, now()::TIMESTAMP)",
                params![step.version as i64, step.name],
            )
            .map_err(|e| fail(&format!("version {}", step.version), e))?;
        }
        Ok((from < SCHEMA_VERSION).then_some(Migrated { from, to: SCHEMA_VERSION }))
    })();
    match result {
        Ok(done) => {
            conn.execute_batch("COMMIT").map_err(|e| fail("commit", e))?;
            Ok(done)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "migration {} ({})", m.version, m.name);
            assert!(!m.sql.trim().is_empty(), "migration {} has no SQL", m.version);
        }
    }

    /// Version 1 is what files written before versions existed are brought to. Changing it would
    /// leave files already at version 1 without the change: add a new migration instead.
    #[test]
    fn the_base_schema_is_frozen() {
        let statements: Vec<String> = MIGRATIONS[0]
            .sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .split(';')
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(
            statements.len(),
            18,
            "sql/migrations/001_base.sql changed; add the change as a new migration in src/state/migrate.rs"
        );
        let digest = statements.iter().fold(0u64, |h, s| crate::source::key_hash(&format!("{h}{s}")));
        assert_eq!(
            digest, 163_900_805_415_535_656,
            "sql/migrations/001_base.sql changed; add the change as a new migration instead"
        );
    }

    #[test]
    fn migrates_once_in_order_and_refuses_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.duckdb");
        let conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&conn, &path).unwrap(), Some(Migrated { from: 0, to: SCHEMA_VERSION }));
        assert_eq!(migrate(&conn, &path).unwrap(), None, "a current file is left alone");
        assert_eq!(file_version(&conn, None).unwrap(), SCHEMA_VERSION);
        let rows: i64 = conn.query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0)).unwrap();
        assert_eq!(rows as usize, MIGRATIONS.len(), "one row per step");

        conn.execute(
            "INSERT INTO schema_version VALUES (?, 'from the future', now()::TIMESTAMP)",
            params![SCHEMA_VERSION as i64 + 1],
        )
        .unwrap();
        let message = migrate(&conn, &path).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("version {}", SCHEMA_VERSION + 1)), "{message}");
        assert!(message.contains(&format!("up to {SCHEMA_VERSION}")), "{message}");
    }

    #[test]
    fn a_failing_step_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.duckdb");
        let conn = Connection::open(&path).unwrap();
        // A file of version 1 whose runs table already has a column version 2 adds: step 2 fails.
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn.execute_batch(&format!(
            "{VERSION_TABLE}; INSERT INTO schema_version VALUES (1, 'base', now()::TIMESTAMP)"
        ))
        .unwrap();
        conn.execute_batch("ALTER TABLE runs ADD COLUMN vanished BIGINT").unwrap();
        assert!(migrate(&conn, &path).is_err());
        assert_eq!(file_version(&conn, None).unwrap(), 1, "nothing of step 2 was kept");
        let merged: i64 = conn
            .query_row(
                "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'runs' AND column_name = 'merged'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(merged, 0, "the column step 2 added first was rolled back");
    }
}
