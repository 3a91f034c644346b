//! Staging and the diff. The first read's rows (key, key hash, row hash) go to a file in the
//! store's spill folder, not straight into DuckDB: while they stream, the run adds up their
//! hashes, and when those sum to the snapshot's (same count, same sum of row hashes) the model
//! is the snapshot, nothing changed, and the rows never enter DuckDB. Otherwise one pass over
//! the file diffs them against an index of the snapshot's key hashes (`diff.rs`), and only the
//! rows it finds enter DuckDB; the rows are loaded into the `staging` table only for a step that
//! needs them all.
//!
//! Why equal sums mean equal rows: a row's hash covers its key and every value (both sources
//! hash the whole row), and the snapshot holds one row per key. Equal counts and equal 128-bit
//! sums of 64-bit hashes then mean, but for a chance of about 2^-64, the same rows: every model
//! row has a snapshot row with its hash, so with its key and its values.

use duckdb::params;

use super::staging_file::StagingFile;
use super::store::StateStore;
use super::types::{query_error, DiffTotals, StateError};
use crate::source::RowKey;

impl StateStore {
    /// Starts staging a read: an empty staging file, and empty `staging` (one row per model
    /// row, with its key `c0`, key hash `k` and row hash `h`; its number is its `rowid` + 1, rows
    /// are only ever appended in model order) and `staging_rejects` tables. The rows the source
    /// rejected, and why, go straight to the small `staging_rejects`.
    pub fn create_staging(&mut self) -> Result<(), StateError> {
        self.batch(
            "CREATE OR REPLACE TEMP TABLE staging (c0 VARCHAR, k UBIGINT, h UBIGINT);
             CREATE OR REPLACE TEMP TABLE staging_rejects (rownum BIGINT, code VARCHAR, message VARCHAR);",
        )?;
        self.staging = Some(StagingFile::create(&self.spill_dir(), &self.path)?);
        Ok(())
    }

    /// Stages the first read's rows; `first_rownum` numbers the first (the rows before it are
    /// staged already).
    pub fn append_staging(&mut self, first_rownum: i64, keys: &[RowKey]) -> Result<(), StateError> {
        let path = self.path.clone();
        let Some(file) = self.staging.as_mut() else {
            return Err(query_error(&path, "rows were staged before create_staging"));
        };
        file.write(keys).map_err(|e| query_error(&path, format!("cannot write the staging file: {e}")))?;
        if keys.iter().any(|row| row.rejected.is_some()) {
            let mut appender =
                self.conn.appender_to_catalog_and_db("staging_rejects", "temp", "main").map_err(|e| self.err(e))?;
            for (i, row) in keys.iter().enumerate() {
                if let Some(r) = &row.rejected {
                    appender
                        .append_row(params![first_rownum + i as i64, r.code, r.message.as_str()])
                        .map_err(|e| query_error(&path, e))?;
                }
            }
            appender.flush().map_err(|e| query_error(&path, e))?;
        }
        Ok(())
    }

    /// Loads the staged rows into the `staging` table, once; the steps that read it call this
    /// first.
    pub(super) fn load_staging(&mut self) -> Result<(), StateError> {
        // Disjoint fields: the connection appends while the file reads.
        let (conn, path) = (&self.reader.conn, &self.reader.path);
        let Some(file) = self.staging.as_mut().filter(|file| !file.loaded) else {
            return Ok(());
        };
        file.read_back(path, |batch| {
            let mut appender =
                conn.appender_to_catalog_and_db("staging", "temp", "main").map_err(|e| query_error(path, e))?;
            appender.append_record_batch(batch).map_err(|e| query_error(path, e))?;
            appender.flush().map_err(|e| query_error(path, e))
        })?;
        file.loaded = true;
        Ok(())
    }

    /// Whether the staged rows are, but for a 2^-64 chance, the snapshot's acknowledged rows:
    /// every row valid, as many as the snapshot rows with a hash, and hashes with the same sum.
    fn staging_equals_snapshot(&self) -> Result<bool, StateError> {
        let Some(file) = &self.staging else {
            return Ok(false);
        };
        if !file.clean {
            return Ok(false);
        }
        let (count, sum) = self
            .conn
            .query_row("SELECT count(row_hash), coalesce(sum(row_hash), 0)::VARCHAR FROM snapshot", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        Ok(count as u64 == file.rows && sum == file.hash_sum.to_string())
    }

    /// Diffs the staged keys and hashes against the snapshot: sets aside invalid rows (null or
    /// repeated key) in `invalid_now` and writes the keys of the rows to send to `changed_keys`.
    /// With `full`, every valid row counts as changed. A row HubSpot refused for these very
    /// values (a rejection that waits for a change, with the same row hash) is held back unless
    /// `retry_rejected` (or `full`).
    ///
    /// When the staged rows are the snapshot's (and not `full`), the work tables are created
    /// empty and the rows stay in their file: a run where nothing changed never loads them.
    /// Otherwise the diff takes one pass over the file (`diff.rs`), or, when the snapshot has
    /// two keys with the same key hash, loads the rows and joins them in SQL.
    pub fn diff_keys(&mut self, full: bool, retry_rejected: bool) -> Result<DiffTotals, StateError> {
        self.diff_keys_with(full, retry_rejected, true)
    }

    /// [`StateStore::diff_keys`]; without `one_pass`, a model that is not the snapshot is
    /// diffed in SQL (the tests compare the two).
    fn diff_keys_with(&mut self, full: bool, retry_rejected: bool, one_pass: bool) -> Result<DiffTotals, StateError> {
        let equal = !full && self.staging_equals_snapshot()?;
        if let Some(file) = self.staging.as_mut() {
            file.equals_snapshot = equal;
        }
        if equal {
            self.batch(
                "CREATE OR REPLACE TEMP TABLE dup_keys (pk VARCHAR);
                 CREATE OR REPLACE TEMP TABLE invalid_now (row_number BIGINT, pk VARCHAR, code VARCHAR, message VARCHAR);
                 CREATE OR REPLACE TEMP TABLE held_keys (pk VARCHAR);
                 CREATE OR REPLACE TEMP TABLE changed_keys (rownum BIGINT, pk VARCHAR, k UBIGINT, h UBIGINT);
                 -- The model is the acknowledged rows: the snapshot's other rows (a record id and
                 -- nothing delivered, a row that left and was cleared say) are not in it. The
                 -- row hashes were just scanned for their sum.
                 CREATE OR REPLACE TEMP TABLE left_keys AS SELECT pk FROM snapshot WHERE row_hash IS NULL;",
            )?;
            let Some(file) = self.staging.as_mut() else { return Ok(DiffTotals::default()) };
            file.fingerprint = Some(file.clean_fingerprint());
            return Ok(DiffTotals { rows: file.rows, invalid: 0, changed: 0, held: 0 });
        }
        if !(one_pass && self.diff_in_one_pass(full)?) {
            self.diff_in_sql(full)?;
        }
        let hold = !(full || retry_rejected);
        self.batch(&format!(
            "CREATE OR REPLACE TEMP TABLE held_keys AS
               SELECT c.pk FROM changed_all c
               JOIN rejections r ON r.pk = c.pk AND r.on_change AND r.row_hash = c.h
               WHERE {hold};
             CREATE OR REPLACE TEMP TABLE changed_keys AS
               SELECT * FROM changed_all WHERE pk NOT IN (SELECT pk FROM held_keys);
             DROP TABLE changed_all;"
        ))?;
        let rows = self.staging.as_ref().map_or(0, |file| file.rows);
        let invalid = self.scalar_i64("SELECT count(*) FROM invalid_now")? as u64;
        let changed = self.scalar_i64("SELECT count(*) FROM changed_keys")? as u64;
        let held = self.scalar_i64("SELECT count(*) FROM held_keys")? as u64;
        Ok(DiffTotals { rows, invalid, changed, held })
    }

    /// The diff in SQL, over the rows loaded into `staging`: writes `dup_keys`, `invalid_now`
    /// and `changed_all` as [`StateStore::diff_in_one_pass`] does.
    fn diff_in_sql(&mut self, full: bool) -> Result<(), StateError> {
        self.load_staging()?;
        self.batch(&format!(
            "CREATE OR REPLACE TEMP TABLE dup_keys AS
               SELECT c0 AS pk FROM staging
               WHERE c0 IS NOT NULL AND k IN (SELECT k FROM staging GROUP BY k HAVING count(*) > 1)
               GROUP BY c0 HAVING count(*) > 1;
             CREATE OR REPLACE TEMP TABLE invalid_now AS
               SELECT st.rowid + 1 AS row_number, st.c0 AS pk,
                      CASE WHEN st.c0 IS NULL THEN 'NULL_PRIMARY_KEY'
                           WHEN st.c0 IN (SELECT pk FROM dup_keys) THEN 'DUPLICATE_PRIMARY_KEY'
                           ELSE r.code END AS code,
                      CASE WHEN st.c0 IS NULL THEN 'the primary key is null'
                           WHEN st.c0 IN (SELECT pk FROM dup_keys) THEN 'the primary key appears in more than one row'
                           ELSE r.message END AS message
               FROM staging st
               LEFT JOIN staging_rejects r ON r.rownum = st.rowid + 1
               WHERE st.c0 IS NULL OR st.c0 IN (SELECT pk FROM dup_keys) OR r.code IS NOT NULL;
             CREATE OR REPLACE TEMP TABLE changed_all AS
               SELECT c.rownum, c.c0 AS pk, c.k, c.h
               FROM (SELECT rowid + 1 AS rownum, c0, k, h FROM staging
                     WHERE c0 IS NOT NULL AND c0 NOT IN (SELECT pk FROM dup_keys)
                       AND rowid + 1 NOT IN (SELECT rownum FROM staging_rejects)) c
               LEFT JOIN snapshot s ON s.pk = c.c0
               WHERE {full} OR s.row_hash IS NULL OR s.row_hash <> c.h
               ORDER BY c.rownum;"
        ))
    }

    /// Whether the last diff found the model equal to the snapshot's acknowledged rows (so no
    /// row left the model).
    pub(super) fn model_equals_snapshot(&self) -> bool {
        self.staging.as_ref().is_some_and(|file| file.equals_snapshot)
    }

    /// Whether the last diff wrote `left_keys`: the snapshot's keys that no staged row names.
    pub(super) fn left_keys_known(&self) -> bool {
        self.staging.as_ref().is_some_and(|file| file.fingerprint.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{key_hash, RowReject};
    use crate::state::{Entry, RemovalScope};

    /// A row as a source stages it: the hash covers the key and the value (`key_hash` hashes
    /// any text).
    fn row(key: Option<&str>, value: &str) -> RowKey {
        let line = format!("{}\t{value}", key.unwrap_or("\\N"));
        RowKey {
            key: key.map(str::to_string),
            key_hash: key.map_or(0, key_hash),
            hash: key_hash(&line),
            rejected: None,
        }
    }

    fn stage(store: &mut StateStore, rows: &[RowKey]) -> DiffTotals {
        store.create_staging().unwrap();
        // Two appends, as chunks come.
        let (first, rest) = rows.split_at(rows.len() / 2);
        store.append_staging(1, first).unwrap();
        store.append_staging(1 + first.len() as i64, rest).unwrap();
        store.diff_keys(false, false).unwrap()
    }

    fn staged_rows(store: &StateStore) -> i64 {
        store.scalar_i64("SELECT count(*) FROM staging").unwrap()
    }

    /// A store whose snapshot holds keys 1..=n with value `v`.
    fn delivered(dir: &std::path::Path, n: usize) -> StateStore {
        let mut store = StateStore::open(&dir.join("s.duckdb")).unwrap();
        let rows: Vec<RowKey> = (1..=n).map(|i| row(Some(&i.to_string()), "v")).collect();
        let mut run = store.begin_run("test", false).unwrap();
        let acks: Vec<Entry> = rows
            .iter()
            .map(|r| Entry::Ack {
                pk: r.key.clone().unwrap(),
                hubspot_id: format!("10{}", r.key.as_deref().unwrap()),
                hash: r.hash,
                props: "{}".into(),
            })
            .collect();
        run.record(&acks).unwrap();
        run.merge_journal().unwrap();
        run.finish("succeeded", None).unwrap();
        store
    }

    #[test]
    fn a_model_equal_to_the_snapshot_is_never_loaded_and_loses_no_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = delivered(dir.path(), 5);
        // And a row that left the model and was cleared: its record id is kept, nothing of it
        // counts as delivered, and its link is hubsync's.
        store
            .batch(
                "INSERT INTO snapshot VALUES ('6', '106', NULL, NULL, NULL);
                 INSERT INTO associations VALUES ('r', '6', 'x', '', '106', '200', now()::TIMESTAMP),
                                                 ('r', '1', 'x', '', '101', '200', now()::TIMESTAMP);",
            )
            .unwrap();
        let rows: Vec<RowKey> = (1..=5).map(|i| row(Some(&i.to_string()), "v")).collect();
        let totals = stage(&mut store, &rows);
        assert_eq!((totals.rows, totals.changed, totals.invalid, totals.held), (5, 0, 0, 0));
        assert!(store.model_equals_snapshot());
        assert_eq!(staged_rows(&store), 0, "the rows stayed in their file");
        assert_eq!(store.scalar_i64("SELECT count(*) FROM changed_keys").unwrap(), 0);
        let (fingerprint, count) = store.model_fingerprint().unwrap();
        assert_eq!(count, 5);

        let scope = RemovalScope { rows: true, archive: true, stale_rules: vec!["r".into()], candidates: false };
        store.prepare_removals(&scope).unwrap();
        assert_eq!(store.scalar_i64("SELECT count(*) FROM removed_rows").unwrap(), 0, "no row left the model");
        let stale = store.scalar_i64("SELECT count(*) FROM stale_now WHERE from_pk = '6'").unwrap();
        assert_eq!(
            (stale, store.scalar_i64("SELECT count(*) FROM stale_now").unwrap()),
            (1, 1),
            "the cleared row's link"
        );

        // The list's diff does without the rows too, and the cleared row is no member.
        assert_eq!(store.prepare_list_changes("L").unwrap(), (5, 0), "every row of the model is a member to add");
        assert_eq!(store.scalar_i64("SELECT count(*) FROM list_adds WHERE pk = '6'").unwrap(), 0);
        assert_eq!(staged_rows(&store), 0);

        // A step that needs the rows loads them: the same rows, in model order.
        store.load_staging().unwrap();
        assert_eq!(staged_rows(&store), 5);
        let order = store.scalar_i64("SELECT count(*) FROM staging WHERE c0 = (rowid + 1)::VARCHAR").unwrap();
        assert_eq!(order, 5, "row numbers follow the model");
        let sql = store
            .conn
            .query_row("SELECT count(*) || ':' || bit_xor(k) || ':' || sum(k) FROM staging", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap();
        assert_eq!(fingerprint, sql, "the file's fingerprint is the table's");
    }

    /// What a diff found, and what the steps after it find from it: every work table sorted,
    /// the rows that left the model, the list's changes and the model's fingerprint.
    fn outcome(store: &mut StateStore) -> Vec<String> {
        let scope = RemovalScope { rows: true, archive: true, stale_rules: Vec::new(), candidates: false };
        store.prepare_removals(&scope).unwrap();
        store.prepare_list_changes("L").unwrap();
        let mut found = vec![store.model_fingerprint().unwrap().0];
        for table in
            ["changed_keys", "invalid_now", "dup_keys", "held_keys", "removed_rows", "list_adds", "list_removes"]
        {
            let sql = format!("SELECT coalesce(string_agg(t::VARCHAR, ' ' ORDER BY t::VARCHAR), '') FROM {table} t");
            found.push(format!("{table}: {}", store.conn.query_row(&sql, [], |r| r.get::<_, String>(0)).unwrap()));
        }
        found
    }

    #[test]
    fn a_changed_missing_or_invalid_row_is_diffed_in_one_pass_as_in_sql() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = delivered(dir.path(), 4);
        let key = |i: i32| i.to_string();
        let rejected = |mut r: RowKey| {
            r.rejected = Some(RowReject { code: "INVALID_UTF8", message: "not UTF-8".into() });
            r
        };
        // The rows, (changed, invalid), and the invalid rows' numbers.
        type Case = (Vec<RowKey>, (u64, u64), Vec<i64>);
        let cases: [Case; 7] = [
            // One value changed.
            ((1..=4).map(|i| row(Some(&key(i)), if i == 3 { "w" } else { "v" })).collect(), (1, 0), vec![]),
            // Row 4 left the model, row 5 joined it.
            ((1..=5).filter(|i| *i != 4).map(|i| row(Some(&key(i)), "v")).collect(), (1, 0), vec![]),
            // A NULL key beside the four unchanged rows.
            ((1..=4).map(|i| row(Some(&key(i)), "v")).chain([row(None, "v")]).collect(), (0, 1), vec![5]),
            // Row 2 twice and row 4 gone: the count is the snapshot's, the sum is not.
            ([1, 2, 2, 3].iter().map(|i| row(Some(&key(*i)), "v")).collect(), (0, 2), vec![2, 3]),
            // A new key twice, once with other values, and a rejected row the snapshot holds.
            (
                [row(Some("7"), "v"), row(Some("1"), "v"), row(Some("7"), "w"), rejected(row(Some("2"), "w"))]
                    .into_iter()
                    .collect(),
                (0, 3),
                vec![1, 3, 4],
            ),
            // A rejected row that is also repeated, and a changed one.
            (
                [rejected(row(Some("1"), "w")), row(Some("1"), "v"), row(Some("3"), "w")].into_iter().collect(),
                (1, 2),
                vec![1, 2],
            ),
            // The model emptied but for a NULL key.
            (vec![row(None, "v")], (0, 1), vec![1]),
        ];
        for (rows, (changed, invalid), numbers) in cases {
            let mut outcomes = Vec::new();
            for one_pass in [true, false] {
                store.create_staging().unwrap();
                store.append_staging(1, &rows).unwrap();
                let totals = store.diff_keys_with(false, false, one_pass).unwrap();
                assert_eq!(
                    (totals.rows, totals.changed, totals.invalid),
                    (rows.len() as u64, changed, invalid),
                    "{rows:?}"
                );
                assert!(!store.model_equals_snapshot());
                let loaded = if one_pass { 0 } else { rows.len() as i64 };
                assert_eq!(staged_rows(&store), loaded, "loaded only for the SQL diff");
                let found: Vec<i64> = {
                    let mut statement = store.conn.prepare("SELECT row_number FROM invalid_now ORDER BY 1").unwrap();
                    statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
                };
                assert_eq!(found, numbers, "invalid rows keep their row numbers");
                outcomes.push(outcome(&mut store));
                assert_eq!(staged_rows(&store), loaded, "the later steps did without the rows");
            }
            assert_eq!(outcomes[0], outcomes[1], "one pass and SQL agree on {rows:?}");
        }

        // The checks of the outcome itself, on the case where row 4 left and row 5 joined.
        let rows: Vec<RowKey> = (1..=5).filter(|i| *i != 4).map(|i| row(Some(&key(i)), "v")).collect();
        stage(&mut store, &rows);
        let found = outcome(&mut store);
        assert!(found[0].starts_with("4:"), "four valid keys: {found:?}");
        assert!(found.contains(&"removed_rows: {'pk': 4, 'hubspot_id': 104}".to_string()), "{found:?}");
        assert!(
            found.contains(
                &"list_adds: {'pk': 1, 'hubspot_id': 101} {'pk': 2, 'hubspot_id': 102} {'pk': 3, 'hubspot_id': 103}"
                    .to_string()
            ),
            "{found:?}"
        );
        let rows: Vec<RowKey> = [1, 2, 2, 3].iter().map(|i| row(Some(&key(*i)), "v")).collect();
        stage(&mut store, &rows);
        assert!(store.model_fingerprint().unwrap().0.starts_with("2:"), "rows 1 and 3 are the valid ones");

        // A full resync diffs every row, equal or not, both ways.
        let rows: Vec<RowKey> = (1..=4).map(|i| row(Some(&key(i)), "v")).collect();
        for one_pass in [true, false] {
            store.create_staging().unwrap();
            store.append_staging(1, &rows).unwrap();
            assert_eq!(store.diff_keys_with(true, false, one_pass).unwrap().changed, 4);
            assert!(!store.model_equals_snapshot());
        }
    }
}
