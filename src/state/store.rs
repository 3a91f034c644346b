//! The writable DuckDB state store of one sync: the work tables of a run (staging, diff,
//! changes), the journal of acknowledgements and its merge. A store is opened by a run (which
//! then goes through [`StateStore::begin_run`], see `run.rs`), by `hubsync reset`, or as a
//! scratch copy for `hubsync plan` that reads the file and never writes it. One store is owned
//! by one task at a time; DuckDB's file lock keeps a second process out.

use std::ops::{Deref, DerefMut};
use std::path::Path;

use duckdb::{params, ToSql};

use super::budget::{self, StateLimits};
use super::migrate::{file_version, migrate, too_new, MIGRATIONS, SCHEMA_VERSION};
use super::read::{open_error, StateReader};
use super::staging_file::StagingFile;
use super::types::{query_error, ChangeRow, StateError};
use crate::source::{key_hash, KeySet, Row};

const MERGE_JOURNAL_LAST: &str = include_str!("../../sql/merge_journal_last.sql");
const MERGE_SWAP: &str = include_str!("../../sql/merge.sql");
const MERGE_IN_PLACE: &str = include_str!("../../sql/merge_in_place.sql");
const MERGE_REJECTIONS: &str = include_str!("../../sql/merge_rejections.sql");
const MERGE_VANISHED: &str = include_str!("../../sql/merge_vanished.sql");
/// A journal with fewer entries than the snapshot's rows divided by this is merged in place;
/// a bigger one rewrites the snapshot (cheaper than replacing most of its rows one by one).
/// For the same reason a run whose changed rows are fewer than that touches few of the
/// snapshot's pages, and gets only its work's share of the memory budget (`budget.rs`, whose
/// text says "an eighth").
const IN_PLACE_RATIO: i64 = 8;

/// A state file opened for writing (or a scratch copy of one, for `plan`). Reads go through
/// the [`StateReader`] it derefs to.
pub struct StateStore {
    pub(super) reader: StateReader,
    pub(super) next_seq: i64,
    /// A scratch store (`plan`): the file is attached read-only, work tables live in memory.
    scratch: bool,
    /// A scratch store's spill folder, removed with the store.
    _spill_dir: Option<tempfile::TempDir>,
    /// The most changed rows a page holds, so a page of wide rows stays near
    /// [`CHANGES_PAGE_BYTES`] (set by `build_changes`).
    changes_page_rows: usize,
    /// The first read's rows, once a read started (see `staging.rs`).
    pub(super) staging: Option<StagingFile>,
    /// The store's memory budget.
    limits: StateLimits,
    /// DuckDB's memory limit now, in MiB: the budget, or the share of it the run's work gets
    /// (`budget.rs`).
    pub(super) memory_mb: u64,
}

/// ` + strlen(c…)` for each of the value cells `cells` (`c0`, `c1`, …; a NULL counts 0): what
/// the rows' widths are summed from.
fn cell_lengths(cells: std::ops::Range<usize>) -> String {
    cells.map(|i| format!(" + strlen(coalesce(c{i}, ''))")).collect()
}

/// The bytes of values a page of changed rows aims at, however wide the rows.
const CHANGES_PAGE_BYTES: f64 = 8.0 * 1024.0 * 1024.0;
/// A page holds at least a batch of rows.
const MIN_PAGE_ROWS: usize = 100;

impl Deref for StateStore {
    type Target = StateReader;
    fn deref(&self) -> &StateReader {
        &self.reader
    }
}

impl DerefMut for StateStore {
    fn deref_mut(&mut self) -> &mut StateReader {
        &mut self.reader
    }
}

impl StateStore {
    /// Opens (or creates) a state file, brings its schema up to date (see `migrate.rs`: one
    /// transaction; a file from a newer hubsync is refused), merges what a crashed
    /// run left in the journal, and marks that run interrupted (its counts are those of its
    /// last journaled batch).
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
        StateStore::open_with(path, &StateLimits::default())
    }

    /// [`StateStore::open`] with the memory budget `limits` (`state_memory_mb`).
    pub fn open_with(path: &Path, limits: &StateLimits) -> Result<StateStore, StateError> {
        if let Some(dir) = path.parent() {
            crate::private_files::create_private_dir(dir)
                .map_err(|e| open_error(path, format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = budget::open_file(path, limits)?;
        // The file holds every delivered value: owner only (DuckDB creates it with the umask).
        crate::private_files::restrict_state_file(path);
        let mut store = StateStore {
            reader: StateReader { conn, path: path.to_path_buf() },
            next_seq: 0,
            scratch: false,
            _spill_dir: None,
            changes_page_rows: usize::MAX,
            staging: None,
            limits: *limits,
            memory_mb: limits.budget_mb(),
        };
        if let Some(done) = migrate(&store.conn, path)? {
            tracing::info!(
                path = %path.display(),
                from = done.from,
                to = done.to,
                "Brought the state file's schema up to date."
            );
        }
        store.batch(&budget::drop_leftovers_sql())?;
        store.next_seq = store.scalar_i64("SELECT coalesce(max(seq), 0) + 1 FROM journal")?;
        if store.merge_journal()? {
            tracing::info!(path = %path.display(), "Merged acknowledgements left by an interrupted run.");
        }
        store.batch(
            "UPDATE runs SET status = 'interrupted', finished_at = now()::TIMESTAMP, \
             error = 'the process stopped before the run finished' WHERE status = 'running'",
        )?;
        Ok(store)
    }

    /// A scratch store for `hubsync plan`: an in-memory database with the state file attached
    /// read-only (when it exists) behind the work tables, so a plan stages and diffs exactly as a
    /// run does without writing the file. A journal left by a crash is not merged (it is, by
    /// the next run).
    pub fn open_scratch(path: &Path) -> Result<StateStore, StateError> {
        StateStore::open_scratch_with(path, &StateLimits::default())
    }

    /// [`StateStore::open_scratch`] with the memory budget `limits`; it spills to a private
    /// temp folder removed with the store.
    pub fn open_scratch_with(path: &Path, limits: &StateLimits) -> Result<StateStore, StateError> {
        let spill = tempfile::Builder::new()
            .prefix("hubsync-plan-")
            .tempdir()
            .map_err(|e| open_error(path, format!("cannot create a temp folder for the plan: {e}")))?;
        let conn = budget::open_memory(path, limits, spill.path())?;
        let store = StateStore {
            reader: StateReader { conn, path: path.to_path_buf() },
            next_seq: 0,
            scratch: true,
            _spill_dir: Some(spill),
            changes_page_rows: usize::MAX,
            staging: None,
            limits: *limits,
            memory_mb: limits.budget_mb(),
        };
        if path.exists() {
            let file = path.display().to_string().replace('\'', "''");
            store
                .conn
                .execute_batch(&format!(
                    "ATTACH '{file}' AS saved (READ_ONLY); SET search_path = 'memory.main,saved.main';"
                ))
                .map_err(|e| open_error(path, e))?;
            let version = file_version(&store.conn, Some("saved")).map_err(|e| open_error(path, e))?;
            if version > SCHEMA_VERSION {
                return Err(too_new(path, version));
            }
            // A file written by an older hubsync lacks the newer rejection columns.
            if !store.has_column("rejections", "on_change") {
                store.batch(
                    "CREATE VIEW memory.main.rejections AS \
                     SELECT *, NULL::UBIGINT AS row_hash, false AS on_change FROM saved.main.rejections",
                )?;
            }
            // Tables newer migrations add (`stale_links`, 3; `links_due`, 4) are empty in memory.
            for (table, columns) in [
                (
                    "stale_links",
                    "assoc VARCHAR, from_pk VARCHAR, to_value VARCHAR, labels VARCHAR, marked_at TIMESTAMP",
                ),
                ("links_due", "pk VARCHAR"),
            ] {
                if !store.has_table(table) {
                    store.batch(&format!("CREATE TABLE memory.main.{table} ({columns})"))?;
                }
            }
        } else {
            for step in MIGRATIONS {
                store.batch(step.sql)?;
            }
        }
        Ok(store)
    }

    /// The folder the store's spill files go to: DuckDB's temp folder beside the state file,
    /// or a scratch store's own.
    pub(super) fn spill_dir(&self) -> std::path::PathBuf {
        match &self._spill_dir {
            Some(dir) => dir.path().to_path_buf(),
            None => budget::temp_dir_of(&self.path),
        }
    }

    /// Replaces the table of the values read by the second read with an empty one of `width`
    /// value columns (`c0` = key, `c1` = match value, then one per property, then association
    /// cells).
    pub fn create_staging_rows(&mut self, width: usize) -> Result<(), StateError> {
        let columns: Vec<String> = (0..width).map(|i| format!("c{i} VARCHAR")).collect();
        self.batch(&format!("CREATE OR REPLACE TEMP TABLE staging_rows (rownum BIGINT, {})", columns.join(", ")))
    }

    /// Appends rows of values; `first_rownum` numbers the first of them.
    pub fn append_staging_rows(&mut self, first_rownum: i64, rows: &[Row]) -> Result<(), StateError> {
        let mut appender =
            self.conn.appender_to_catalog_and_db("staging_rows", "temp", "main").map_err(|e| self.err(e))?;
        for (i, row) in rows.iter().enumerate() {
            let rownum = first_rownum + i as i64;
            let mut values: Vec<&dyn ToSql> = Vec::with_capacity(row.len() + 1);
            values.push(&rownum);
            for v in row {
                values.push(v);
            }
            appender.append_row(duckdb::appender_params_from_iter(values)).map_err(|e| query_error(&self.path, e))?;
        }
        appender.flush().map_err(|e| query_error(&self.path, e))?;
        Ok(())
    }

    /// How many keys, at most, the second read must bring: the changed rows and, with `links`,
    /// the rows whose associations failed before (some may be both).
    pub fn wanted_count(&self, links: bool) -> Result<u64, StateError> {
        let changed = self.scalar_i64("SELECT count(*) FROM changed_keys")?;
        let retried = if links {
            self.scalar_i64(
                "SELECT count(*) FROM (SELECT from_pk FROM association_rejections UNION SELECT pk FROM links_due)",
            )?
        } else {
            0
        };
        Ok((changed + retried) as u64)
    }

    /// Builds the table of the keys whose values the second read must bring: the changed rows,
    /// and, with `links`, the rows whose associations failed before (they are retried) or that
    /// an interrupted run left in `links_due`. Returns how many; [`StateStore::wanted_keys_page`]
    /// reads them.
    pub fn prepare_wanted_keys(&mut self, links: bool) -> Result<u64, StateError> {
        let retried =
            if links { " UNION SELECT from_pk FROM association_rejections UNION SELECT pk FROM links_due" } else { "" };
        self.batch(&format!("CREATE OR REPLACE TEMP TABLE wanted_keys AS SELECT pk FROM changed_keys{retried};"))?;
        Ok(self.scalar_i64("SELECT count(*) FROM wanted_keys")? as u64)
    }

    /// Reads `limit` of the keys `prepare_wanted_keys` found, from position `after` (from 0).
    pub fn wanted_keys_page(&self, after: i64, limit: usize) -> Result<Vec<String>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT pk FROM wanted_keys WHERE rowid >= ? AND rowid < ? ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = statement.query_map(params![after, after + limit as i64], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<String>, _>>().map_err(|e| self.err(e))
    }

    /// The key hashes of the rows whose values the second read must bring: the changed rows,
    /// and, with `links`, the rows whose associations failed before (they are retried) or that
    /// an interrupted run left in `links_due`.
    pub fn wanted_keys(&self, links: bool) -> Result<KeySet, StateError> {
        let mut hashes = Vec::new();
        {
            let mut statement = self.conn.prepare("SELECT k FROM changed_keys").map_err(|e| self.err(e))?;
            let rows = statement.query_map([], |r| r.get::<_, u64>(0)).map_err(|e| self.err(e))?;
            for k in rows {
                hashes.push(k.map_err(|e| self.err(e))?);
            }
        }
        if links {
            let mut statement = self
                .conn
                .prepare("SELECT from_pk FROM association_rejections UNION SELECT pk FROM links_due")
                .map_err(|e| self.err(e))?;
            let rows = statement.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
            for pk in rows {
                hashes.push(key_hash(&pk.map_err(|e| self.err(e))?));
            }
        }
        Ok(KeySet::new(hashes))
    }

    /// Joins the changed keys with the values the second read brought into `changes`, the rows
    /// to send, in model order (read back by position: a window numbering them would have to
    /// hold them all in memory); returns how many. A key the second read did not find (its row
    /// left the model in between) is not sent this run; a key it found twice (a model whose keys
    /// changed between the reads) is sent once.
    pub fn build_changes(&mut self, props: &[String], links: usize) -> Result<u64, StateError> {
        self.fit_memory_to_changes(props.len() + links)?;
        let values: Vec<String> = (0..props.len() + links).map(|i| format!(", r.c{}", i + 2)).collect();
        let repeated = self.scalar_i64("SELECT count(*) - count(DISTINCT c0) FROM staging_rows")? > 0;
        let rows = if repeated {
            "(SELECT * FROM staging_rows QUALIFY row_number() OVER (PARTITION BY c0 ORDER BY rownum) = 1)"
        } else {
            "staging_rows"
        };
        let changes = format!(
            "CREATE OR REPLACE TEMP TABLE changes AS
               SELECT k.rownum, k.pk, r.c1 AS match_value, k.h AS row_hash,
                      s.hubspot_id, CASE WHEN s.row_hash IS NULL THEN NULL ELSE s.props END AS old_props{}
               FROM changed_keys k
               JOIN {rows} r ON r.c0 = k.pk
               LEFT JOIN snapshot s ON s.pk = k.pk
               ORDER BY k.rownum;",
            values.concat()
        );
        self.work_batch(&changes)?;
        // The width of the first rows sizes the pages (the old values count twice: they are
        // parsed into a map).
        let width = self
            .conn
            .query_row(
                &format!(
                    "SELECT coalesce(avg(strlen(pk) + strlen(coalesce(match_value, '')) \
                     + 2 * strlen(coalesce(old_props, '')){}), 0)::DOUBLE FROM changes WHERE rowid < 2048",
                    cell_lengths(2..2 + props.len() + links)
                ),
                [],
                |r| r.get::<_, f64>(0),
            )
            .map_err(|e| self.err(e))?;
        self.changes_page_rows =
            if width > 0.0 { ((CHANGES_PAGE_BYTES / width) as usize).max(MIN_PAGE_ROWS) } else { usize::MAX };
        Ok(self.scalar_i64("SELECT count(*) FROM changes")? as u64)
    }

    /// Reads the changed rows numbered `(after, after + limit]` (from 1, in model order), fewer
    /// when the rows are so wide that `limit` of them would pass [`CHANGES_PAGE_BYTES`]: read on
    /// from the last row's `n`.
    pub fn changes_page(
        &self,
        after: i64,
        limit: usize,
        props: &[String],
        links: usize,
    ) -> Result<Vec<ChangeRow>, StateError> {
        let values: Vec<String> = (0..props.len() + links).map(|i| format!(", c{}", i + 2)).collect();
        let sql = format!(
            "SELECT rowid + 1 AS n, pk, match_value, row_hash, hubspot_id, old_props{} FROM changes \
             WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
            values.concat()
        );
        let mut statement = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let upto = after + limit.min(self.changes_page_rows) as i64;
        let rows = statement
            .query_map(params![after, upto], |r| {
                let old_props: Option<String> = r.get(5)?;
                let mut values = Vec::with_capacity(props.len());
                for i in 0..props.len() {
                    values.push(r.get::<_, Option<String>>(6 + i)?);
                }
                let mut link_cells = Vec::with_capacity(links);
                for j in 0..links {
                    link_cells.push(r.get::<_, Option<String>>(6 + props.len() + j)?);
                }
                Ok(ChangeRow {
                    n: r.get(0)?,
                    pk: r.get(1)?,
                    match_value: r.get(2)?,
                    hash: r.get(3)?,
                    hubspot_id: r.get(4)?,
                    old_props: old_props.and_then(|json| serde_json::from_str(&json).ok()),
                    values,
                    links: link_cells,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Folds the journal into the snapshot and the rejections, in one transaction. An empty
    /// journal costs one count, not a rewrite of the snapshot; a small one replaces only its
    /// keys' rows. Returns whether anything merged.
    pub fn merge_journal(&mut self) -> Result<bool, StateError> {
        if self.scratch {
            return Ok(false);
        }
        let entries = self.scalar_i64("SELECT count(*) FROM journal")?;
        if entries == 0 {
            return Ok(false);
        }
        let snapshot_rows = self.scalar_i64("SELECT count(*) FROM snapshot")?;
        let snapshot = if entries * IN_PLACE_RATIO < snapshot_rows { MERGE_IN_PLACE } else { MERGE_SWAP };
        // No statement of the merge needs its rows in order; without the order, its inserts
        // stream within the budget instead of holding what they insert.
        self.batch("SET preserve_insertion_order = false")?;
        let merge = format!(
            "BEGIN TRANSACTION;\n{MERGE_JOURNAL_LAST}\n{snapshot}\nDROP TABLE journal_last;\n{MERGE_VANISHED}\n{MERGE_REJECTIONS}\nCOMMIT;"
        );
        let merged = self.at_full_budget_on_oom(|store| {
            store.batch(&merge).inspect_err(|_| {
                let _ = store.conn.execute_batch("ROLLBACK");
            })
        });
        self.batch("SET preserve_insertion_order = true")?;
        merged?;
        Ok(true)
    }

    /// Gives the rest of the run the memory its changed rows need (`budget.rs`): the rows of
    /// the second read (`staging_rows`, a key, a match value and `values` more cells) and their
    /// width.
    fn fit_memory_to_changes(&mut self, values: usize) -> Result<(), StateError> {
        let (rows, width, snapshot) = self
            .conn
            .query_row(
                &format!(
                    "SELECT (SELECT count(*) FROM staging_rows), \
                     (SELECT coalesce(avg(0{}), 0)::DOUBLE FROM staging_rows WHERE rowid < 2048), \
                     (SELECT count(*) FROM snapshot)",
                    cell_lengths(0..values + 2)
                ),
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?, r.get::<_, i64>(2)?)),
            )
            .map_err(|e| self.err(e))?;
        // When the changed rows are much of the snapshot, the pages joined with them are the
        // run's work, not pages read once: the whole budget.
        let mb = if rows * IN_PLACE_RATIO < snapshot {
            self.limits.work_memory_mb(rows as u64, width)
        } else {
            self.limits.budget_mb()
        };
        self.set_memory_mb(mb)
    }

    /// Sets DuckDB's memory limit; pages it holds past a lower limit are dropped (or spilled).
    pub(super) fn set_memory_mb(&mut self, mb: u64) -> Result<(), StateError> {
        if mb != self.memory_mb {
            self.batch(&format!("SET memory_limit = '{mb}MiB'"))?;
            self.memory_mb = mb;
        }
        Ok(())
    }

    /// Runs `work`; when it runs out of memory in the share of the budget the run's work was
    /// given, the rest of the run gets the whole budget and `work` runs again (so `work` must
    /// undo what it did when it fails: one statement, or a transaction rolled back).
    pub(super) fn at_full_budget_on_oom<T>(
        &mut self,
        mut work: impl FnMut(&mut Self) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        match work(self) {
            Err(e) if e.is_out_of_memory() && self.memory_mb < self.limits.budget_mb() => {
                tracing::info!(
                    path = %self.path.display(),
                    memory_mb = self.memory_mb,
                    budget_mb = self.limits.budget_mb(),
                    "The run's work needed more memory than its share; running it again with the whole budget."
                );
                self.set_memory_mb(self.limits.budget_mb())?;
                work(self)
            }
            done => done,
        }
    }

    /// Runs statements that only (re)create work tables, so that running them again after a
    /// failure is safe, with [`StateStore::at_full_budget_on_oom`].
    pub(super) fn work_batch(&mut self, sql: &str) -> Result<(), StateError> {
        self.at_full_budget_on_oom(|store| store.batch(sql))
    }

    /// Drops the run's working tables. They are `TEMP` tables (`budget.rs`): they spill to the
    /// store's temp folder rather than grow the state file, and a process that stops before
    /// dropping them leaves nothing behind.
    pub fn drop_work_tables(&mut self) -> Result<(), StateError> {
        let drops: Vec<String> = budget::LEFTOVER_WORK_TABLES
            .iter()
            .chain(budget::TEMP_WORK_TABLES)
            .map(|t| format!("DROP TABLE IF EXISTS temp.main.{t};"))
            .collect();
        self.batch(&drops.concat())
    }

    /// Forgets what was delivered (ids stay known), so the next run compares against nothing.
    pub fn reset_snapshot(&mut self) -> Result<(), StateError> {
        self.merge_journal()?;
        self.batch("UPDATE snapshot SET row_hash = NULL, props = NULL, delivered_at = NULL")
    }
}
