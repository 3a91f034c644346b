//! The memory budget of a state store: DuckDB's `memory_limit` and `threads` for every phase of
//! a run (staging, diff, paging the changes, journaling, the merge, associations and lists),
//! with spilling to a temp folder beside the state file. A run whose work does not fit in the
//! budget spills to that folder; it does not fail.
//!
//! DuckDB keeps every page it reads in its buffer pool, up to `memory_limit`, for as long as it
//! has room. A run that changes a few rows of a big snapshot still joins them with the whole
//! snapshot (the changes' old values, the merge's replacement of their rows), and would fill the
//! whole budget with pages it reads once. So once the second read has the changed rows of a run
//! that changed less than an eighth of the snapshot, the rest of the run gets only the memory
//! its work needs ([`StateLimits::work_memory_mb`]): pages read past that are dropped, not kept.
//! The statements that build work tables, and the merge, go back to the whole budget and run
//! again if DuckDB finds the work's share too small (`StateStore::at_full_budget_on_oom`).
//!
//! Work tables are DuckDB `TEMP` tables: they live in the budget and the temp folder, never in
//! the state file, and vanish with the connection (a crash leaves nothing behind in the file).

use std::path::{Path, PathBuf};

use duckdb::Connection;

use super::read::open_error;
use super::types::StateError;
use crate::config::{DEFAULT_STATE_MEMORY_MB, MIN_STATE_MEMORY_MB};

/// How much memory and how many threads one state store may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// DuckDB's `memory_limit`, in MiB (at least [`MIN_STATE_MEMORY_MB`]).
    pub memory_mb: u64,
    /// DuckDB's `threads`; `None` for one per CPU, at most [`MAX_DEFAULT_THREADS`].
    pub threads: Option<usize>,
}

/// The threads a store uses when `state_threads` is not set: one per CPU, at most this many
/// (each thread's share of a join or an aggregate adds to what must fit in the budget).
pub const MAX_DEFAULT_THREADS: usize = 2;

/// The memory a run's work gets below the budget, at least: what DuckDB needs to run one
/// statement with its threads, spilling what it does not hold (a list's 1,000,000 members were
/// diffed in 32 MiB; 16 MiB was too little).
pub const WORK_FLOOR_MB: u64 = 32;
/// The copies of the changed rows' values the rest of a run may hold at once: the second read's
/// rows, the changes with their old values (twice: parsed into maps), a page of them, what the
/// journal and the merge copy.
const WORK_ROW_COPIES: f64 = 6.0;

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits { memory_mb: DEFAULT_STATE_MEMORY_MB, threads: None }
    }
}

impl StateLimits {
    /// The budget a config sets (`state_memory_mb`, `state_threads`).
    pub fn of(config: &crate::config::Config) -> StateLimits {
        StateLimits { memory_mb: config.state_memory_mb, threads: config.state_threads }
    }

    /// The threads DuckDB is given.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(MAX_DEFAULT_THREADS)
        })
    }

    /// The budget, in MiB (never below the minimum).
    pub fn budget_mb(&self) -> u64 {
        self.memory_mb.max(MIN_STATE_MEMORY_MB)
    }

    /// The memory, in MiB, for the rest of a run that changes `rows` rows of about `row_bytes`
    /// bytes of values each: [`WORK_FLOOR_MB`] and a few copies of those values, at most the
    /// budget.
    pub fn work_memory_mb(&self, rows: u64, row_bytes: f64) -> u64 {
        let values = rows as f64 * row_bytes.max(0.0) * WORK_ROW_COPIES / (1024.0 * 1024.0);
        (WORK_FLOOR_MB + values.ceil() as u64).min(self.budget_mb())
    }

    /// The DuckDB settings of a store whose spill files go to `temp_dir`.
    fn duckdb_config(&self, temp_dir: &Path) -> duckdb::Result<duckdb::Config> {
        duckdb::Config::default()
            .max_memory(&format!("{}MiB", self.budget_mb()))?
            .threads(self.threads() as i64)?
            .with("temp_directory", temp_dir.display().to_string())
    }
}

/// The folder a store spills to: beside its file, inside the state directory (owner only, like
/// the file: spilled pages hold the same values).
pub fn temp_dir_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Opens (or creates) a state file with the budget `limits`.
pub(super) fn open_file(path: &Path, limits: &StateLimits) -> Result<Connection, StateError> {
    let temp = temp_dir_of(path);
    let config = limits.duckdb_config(&temp).map_err(|e| open_error(path, e))?;
    Connection::open_with_flags(path, config).map_err(|e| open_error(path, e))
}

/// Opens an in-memory database (`hubsync plan`'s scratch store) with the budget `limits`,
/// spilling to `temp_dir`.
pub(super) fn open_memory(path: &Path, limits: &StateLimits, temp_dir: &Path) -> Result<Connection, StateError> {
    let config = limits.duckdb_config(temp_dir).map_err(|e| open_error(path, e))?;
    Connection::open_in_memory_with_flags(config).map_err(|e| open_error(path, e))
}

/// Work tables older hubsync versions kept in the state file; dropped on open (idempotent), so
/// their pages are reused.
pub(super) const LEFTOVER_WORK_TABLES: &[&str] = &[
    "staging",
    "staging_rejects",
    "staging_rows",
    "changes",
    "changed_keys",
    "dup_keys",
    "invalid_now",
    "held_keys",
    "link_inputs",
    "link_candidates",
    "link_targets",
    "pending_links",
    "link_distinct",
    "link_new",
    "link_from",
    "link_ids",
    "list_adds",
    "list_removes",
    "list_current",
    "link_failures_now",
    "list_removed_now",
    "wanted_keys",
    "journal_seqs",
    "journal_ids",
    "journal_last",
    "removed_rows",
    "removal_list",
    "stale_now",
    "removal_links",
    "removal_now",
];

/// Work tables of a run that no hubsync version kept in the state file: only ever `TEMP`.
pub(super) const TEMP_WORK_TABLES: &[&str] = &["left_keys", "diff_rows", "dup_rows", "link_known", "link_from_ids"];

/// The SQL dropping [`LEFTOVER_WORK_TABLES`] from the file's own schema.
pub(super) fn drop_leftovers_sql() -> String {
    LEFTOVER_WORK_TABLES.iter().map(|t| format!("DROP TABLE IF EXISTS main.{t};")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_folder_is_beside_the_file() {
        assert_eq!(temp_dir_of(Path::new("/s/contacts.duckdb")), PathBuf::from("/s/contacts.duckdb.tmp"));
    }

    /// Every phase of a first run and of a 1%-changed run over `rows` rows, through the store's
    /// own calls, at the minimum budget and the default threads: staging, the diff, the changes, paging
    /// them, journaling, the merge, the list check. Returns the seconds of each phase.
    fn run_phases_at_the_minimum(rows: usize, list: bool) -> Vec<(&'static str, f64)> {
        use crate::source::{key_hash, RowKey};
        use crate::state::{Entry, StateStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.duckdb");
        let limits = StateLimits { memory_mb: MIN_STATE_MEMORY_MB, threads: None };
        let mut times = Vec::new();
        let mut clock = std::time::Instant::now();
        let mut lap = |name: &'static str, times: &mut Vec<(&'static str, f64)>| {
            times.push((name, clock.elapsed().as_secs_f64()));
            clock = std::time::Instant::now();
        };
        let props = vec!["email".to_string(), "firstname".to_string()];
        for (round, changed_every) in [(0, 1), (1, 100)] {
            let mut store = StateStore::open_with(&path, &limits).unwrap();
            let mut run = store.begin_run("test", false).unwrap();
            run.create_staging().unwrap();
            for start in (0..rows).step_by(2048) {
                let keys: Vec<RowKey> = (start..(start + 2048).min(rows))
                    .map(|i| {
                        let key = i.to_string();
                        let hash = if i % changed_every == 0 { (i + round) as u64 } else { i as u64 };
                        RowKey { key_hash: key_hash(&key), key: Some(key), hash, rejected: None }
                    })
                    .collect();
                run.append_staging(start as i64 + 1, &keys).unwrap();
            }
            lap("staging", &mut times);
            let totals = run.diff_keys(false, false).unwrap();
            assert_eq!(totals.changed as usize, rows / changed_every);
            run.create_staging_rows(4).unwrap();
            lap("diff", &mut times);
            let mut n = 1;
            for start in (0..rows).step_by(changed_every * 2048) {
                let chunk: Vec<crate::source::Row> = (start..(start + changed_every * 2048).min(rows))
                    .step_by(changed_every)
                    .map(|i| {
                        vec![
                            Some(i.to_string()),
                            Some(format!("user{i}@example.com")),
                            Some(format!("user{i}@example.com")),
                            Some(format!("First {i} {}", "x".repeat(40))),
                        ]
                    })
                    .collect();
                run.append_staging_rows(n, &chunk).unwrap();
                n += chunk.len() as i64;
            }
            lap("read 2", &mut times);
            assert_eq!(run.build_changes(&props, 0).unwrap() as usize, rows / changed_every);
            // A run that changed a few of the snapshot's rows has the memory they need for the
            // rest of the run, and runs in it; a first one, the budget.
            let width = 4.0 + 3.0 * 18.0 + 48.0;
            let work = if round == 0 {
                MIN_STATE_MEMORY_MB
            } else {
                limits.work_memory_mb((rows / changed_every) as u64, width)
            };
            assert!(run.memory_mb.abs_diff(work) <= 2, "{} MiB, about {work} expected", run.memory_mb);
            assert!(round == 0 || run.memory_mb < MIN_STATE_MEMORY_MB, "{}", run.memory_mb);
            assert_eq!(memory_limit(&run.conn), format!("{}.0 MiB", run.memory_mb));
            lap("changes", &mut times);
            let mut after = 0;
            loop {
                let page = run.changes_page(after, 5_000, &props, 0).unwrap();
                let Some(last) = page.last() else { break };
                after = last.n;
                let entries: Vec<Entry> = page
                    .iter()
                    .map(|c| Entry::Ack {
                        pk: c.pk.clone(),
                        hubspot_id: format!("9{}", c.pk),
                        hash: c.hash,
                        props: serde_json::json!({"email": c.values[0], "firstname": c.values[1]}).to_string(),
                    })
                    .collect();
                run.record(&entries).unwrap();
            }
            lap("journal", &mut times);
            run.merge_journal().unwrap();
            lap("merge", &mut times);
            if list {
                let (adds, removes) = run.prepare_list_changes("7").unwrap();
                assert_eq!((adds as usize, removes), (if round == 0 { rows } else { 0 }, 0));
                for offset in (0..adds).step_by(5_000) {
                    let chunk = run.list_changes_page(false, offset, 5_000).unwrap();
                    run.record_list_added("7", &chunk).unwrap();
                }
                lap("list", &mut times);
            }
            run.drop_work_tables().unwrap();
            run.finish("succeeded", None).unwrap();
            assert_eq!(store.snapshot_rows().unwrap() as usize, rows);
        }
        times
    }

    fn memory_limit(conn: &Connection) -> String {
        conn.query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn work_that_runs_out_of_its_share_runs_again_with_the_whole_budget() {
        use crate::state::StateStore;
        let dir = tempfile::tempdir().unwrap();
        let limits = StateLimits { memory_mb: 160, threads: None };
        let mut store = StateStore::open_with(&dir.path().join("s.duckdb"), &limits).unwrap();
        assert_eq!(memory_limit(&store.conn), "160.0 MiB");
        store.set_memory_mb(WORK_FLOOR_MB).unwrap();
        assert_eq!(memory_limit(&store.conn), format!("{WORK_FLOOR_MB}.0 MiB"));
        // A list of 3,000,000 numbers is one value: DuckDB cannot spill it, and 32 MiB is too
        // little for it.
        let big = "CREATE OR REPLACE TEMP TABLE big AS SELECT list(i) AS l FROM range(3000000) t(i)";
        let mut limits_seen = Vec::new();
        store
            .at_full_budget_on_oom(|store| {
                limits_seen.push(memory_limit(&store.conn));
                store.batch(big)
            })
            .unwrap();
        assert_eq!(limits_seen, ["32.0 MiB", "160.0 MiB"]);
        assert_eq!(store.memory_mb, 160);
        assert_eq!(store.scalar_i64("SELECT len(l) FROM big").unwrap(), 3_000_000);
        // At the whole budget, running out of memory is an error, not a second try.
        let mut tries = 0;
        let err = store
            .at_full_budget_on_oom(|store| {
                tries += 1;
                store.batch("CREATE OR REPLACE TEMP TABLE big AS SELECT list(i) AS l FROM range(60000000) t(i)")
            })
            .unwrap_err();
        assert!(err.is_out_of_memory(), "{err}");
        assert_eq!(tries, 1);
    }

    #[test]
    fn every_phase_of_a_run_fits_the_minimum_budget() {
        let times = run_phases_at_the_minimum(20_000, true);
        eprintln!("{times:?}");
    }

    /// The same over 200,000 rows, or `HUBSYNC_BUDGET_ROWS` (`cargo test -- --ignored budget`):
    /// slow in a debug build.
    #[test]
    #[ignore]
    fn every_phase_of_a_big_run_fits_the_minimum_budget() {
        let rows = std::env::var("HUBSYNC_BUDGET_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(200_000);
        let times = run_phases_at_the_minimum(rows, true);
        eprintln!("{times:?}");
    }

    #[test]
    fn a_small_change_gets_the_memory_of_its_rows_and_a_big_one_the_budget() {
        let limits = StateLimits { memory_mb: 256, threads: None };
        assert_eq!(limits.work_memory_mb(0, 200.0), WORK_FLOOR_MB);
        // 10,000 rows of 200 bytes, six copies: 11.4 MiB.
        assert_eq!(limits.work_memory_mb(10_000, 200.0), WORK_FLOOR_MB + 12);
        assert_eq!(limits.work_memory_mb(1_000_000, 200.0), 256);
        assert_eq!(StateLimits { memory_mb: 1, threads: None }.work_memory_mb(1_000_000, 200.0), MIN_STATE_MEMORY_MB);
    }

    #[test]
    fn threads_default_to_the_cpus_capped() {
        let limits = StateLimits::default();
        assert!((1..=MAX_DEFAULT_THREADS).contains(&limits.threads()));
        assert_eq!(StateLimits { threads: Some(3), ..limits }.threads(), 3);
    }
}
