//! One run's hold on the state file. A [`Run`] is only made by [`StateStore::begin_run`], which
//! writes its `running` record; it carries the run's id and counts, so the journal entries and
//! the run record always name the right run, and the counts advance in the same transaction as
//! the acknowledgements they count. A run that is never finished (a crash) keeps the counts of
//! its last journaled batch and is marked `interrupted` by the next open.

use std::ops::{Deref, DerefMut};

use duckdb::params;

use super::links::LinkCandidate;
use super::store::StateStore;
use super::types::{query_error, Entry, RunCounts, StateError};

/// A run in progress on a state store. Derefs to the store for the staging and delivery work.
pub struct Run<'s> {
    store: &'s mut StateStore,
    id: i64,
    /// What the run did so far; written to its record with every journaled batch.
    pub counts: RunCounts,
    /// Entries recorded while a group is open ([`Run::begin_group`]), journaled together by
    /// [`Run::end_group`].
    group: Option<Vec<Entry>>,
}

impl Deref for Run<'_> {
    type Target = StateStore;
    fn deref(&self) -> &StateStore {
        self.store
    }
}

impl DerefMut for Run<'_> {
    fn deref_mut(&mut self) -> &mut StateStore {
        self.store
    }
}

const UPDATE_COUNTS: &str = "UPDATE runs SET rows_read = ?, invalid = ?, unchanged = ?, created = ?, updated = ?, \
     skipped = ?, rejected = ?, associated = ?, association_rejected = ?, list_added = ?, list_removed = ?, \
     requests = ?, held = ?, uncertain = ?, reconciled = ?, merged = ?, vanished = ?, archived = ?, \
     cleared = ?, unlinked = ?, removals_held = ? WHERE run_id = ?";

fn update_counts(conn: &duckdb::Connection, run_id: i64, c: &RunCounts) -> duckdb::Result<usize> {
    conn.execute(
        UPDATE_COUNTS,
        params![
            c.rows_read as i64,
            c.invalid as i64,
            c.unchanged as i64,
            c.created as i64,
            c.updated as i64,
            c.skipped as i64,
            c.rejected as i64,
            c.associated as i64,
            c.association_rejected as i64,
            c.list_added as i64,
            c.list_removed as i64,
            c.requests as i64,
            c.held as i64,
            c.uncertain as i64,
            c.reconciled as i64,
            c.merged as i64,
            c.vanished as i64,
            c.archived as i64,
            c.cleared as i64,
            c.unlinked as i64,
            c.removals_held as i64,
            run_id
        ],
    )
}

impl StateStore {
    /// Starts a run record (`running`) and returns the run.
    pub fn begin_run(&mut self, trigger: &str, full: bool) -> Result<Run<'_>, StateError> {
        let id = self.scalar_i64("SELECT coalesce(max(run_id), 0) + 1 FROM runs")?;
        self.conn
            .execute(
                "INSERT INTO runs (run_id, trigger, full_resync, started_at, status) \
                 VALUES (?, ?, ?, now()::TIMESTAMP, 'running')",
                params![id, trigger, full],
            )
            .map_err(|e| self.err(e))?;
        Ok(Run { store: self, id, counts: RunCounts::default(), group: None })
    }
}

impl Run<'_> {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Keeps the rows the diff set aside (`invalid_now`) as this run's invalid rows.
    pub fn keep_invalid_rows(&mut self) -> Result<(), StateError> {
        let id = self.id;
        self.batch(&format!(
            "BEGIN; DELETE FROM invalid_rows; \
             INSERT INTO invalid_rows SELECT {id}, row_number, pk, code, message FROM invalid_now; COMMIT;"
        ))
    }

    /// Journals entries and the run's counts in one transaction: called once per HubSpot batch
    /// (after its answer, or, for a create's intent, before it is sent), so the snapshot and the
    /// run record only ever advance by what was acknowledged. While a group is open the entries
    /// wait for [`Run::end_group`].
    pub fn record(&mut self, entries: &[Entry]) -> Result<(), StateError> {
        match &mut self.group {
            Some(group) => {
                group.extend_from_slice(entries);
                Ok(())
            }
            None => self.write(entries),
        }
    }

    /// Opens a group: the entries recorded until [`Run::end_group`] are journaled in one
    /// transaction, for the answers that arrived together. Nothing may be sent while a group is
    /// open (a create's intent must be journaled before its request leaves).
    pub fn begin_group(&mut self) {
        self.group.get_or_insert_with(Vec::new);
    }

    /// Journals the open group's entries, with the run's counts, in one transaction.
    pub fn end_group(&mut self) -> Result<(), StateError> {
        match self.group.take() {
            Some(entries) => self.write(&entries),
            None => Ok(()),
        }
    }

    fn write(&mut self, entries: &[Entry]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let (run_id, counts, first_seq) = (self.id, self.counts, self.store.next_seq);
        let reader = &mut self.store.reader;
        let path = reader.path.clone();
        let tx = reader.conn.transaction().map_err(|e| query_error(&path, e))?;
        {
            let mut appender = tx.appender("journal").map_err(|e| query_error(&path, e))?;
            let now = chrono::Utc::now().naive_utc();
            let none: Option<String> = None;
            let no_hash: Option<u64> = None;
            let no_flag: Option<bool> = None;
            for (i, entry) in entries.iter().enumerate() {
                let seq = first_seq + i as i64;
                let result = match entry {
                    Entry::Ack { pk, hubspot_id, hash, props } => appender.append_row(params![
                        seq, run_id, "ack", pk, hubspot_id, hash, props, none, none, now, none, no_flag
                    ]),
                    Entry::Id { pk, hubspot_id } => appender.append_row(params![
                        seq, run_id, "id", pk, hubspot_id, no_hash, none, none, none, now, none, no_flag
                    ]),
                    Entry::Reject { pk, code, message, hash } => {
                        let waits = super::types::waits_for_change(code) && hash.is_some();
                        appender.append_row(params![
                            seq, run_id, "reject", pk, none, hash, none, code, message, now, none, waits
                        ])
                    }
                    Entry::Intent { pk, match_value, batch } => appender.append_row(params![
                        seq,
                        run_id,
                        "intent",
                        pk,
                        none,
                        no_hash,
                        none,
                        batch,
                        none,
                        now,
                        match_value,
                        no_flag
                    ]),
                    Entry::Settle { pk } => appender.append_row(params![
                        seq, run_id, "settle", pk, none, no_hash, none, none, none, now, none, no_flag
                    ]),
                    Entry::Moved { pk, hubspot_id } => appender.append_row(params![
                        seq, run_id, "moved", pk, hubspot_id, no_hash, none, none, none, now, none, no_flag
                    ]),
                    Entry::Forget { pk } => appender.append_row(params![
                        seq, run_id, "forget", pk, none, no_hash, none, none, none, now, none, no_flag
                    ]),
                };
                result.map_err(|e| query_error(&path, e))?;
            }
            appender.flush().map_err(|e| query_error(&path, e))?;
        }
        update_counts(&tx, run_id, &counts).map_err(|e| query_error(&path, e))?;
        tx.commit().map_err(|e| query_error(&path, e))?;
        self.store.next_seq += entries.len() as i64;
        Ok(())
    }

    /// Records associations HubSpot acknowledged, and the run's counts, in one transaction.
    pub fn record_links_counted(&mut self, delivered: &[(LinkCandidate, String, String)]) -> Result<(), StateError> {
        let (run_id, counts) = (self.id, self.counts);
        self.store.record_links(delivered, |tx| update_counts(tx, run_id, &counts))
    }

    /// Writes the run's counts to its record (after work that journals nothing, such as links).
    pub fn save_counts(&mut self) -> Result<(), StateError> {
        update_counts(&self.store.conn, self.id, &self.counts).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Closes the run record with its outcome and final counts.
    pub fn finish(self, status: &str, error: Option<&str>) -> Result<RunCounts, StateError> {
        let path = self.store.path.clone();
        update_counts(&self.store.conn, self.id, &self.counts).map_err(|e| query_error(&path, e))?;
        self.store
            .conn
            .execute(
                "UPDATE runs SET finished_at = now()::TIMESTAMP, status = ?, error = ? WHERE run_id = ?",
                params![status, error, self.id],
            )
            .map_err(|e| query_error(&path, e))?;
        Ok(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::RowKey;
    use crate::state::StateReader;

    fn staged(store: &mut StateStore, rows: &[(&str, u64)]) {
        store.create_staging().unwrap();
        let keys: Vec<RowKey> = rows
            .iter()
            .map(|(key, hash)| RowKey {
                key: Some(key.to_string()),
                key_hash: crate::source::key_hash(key),
                hash: *hash,
                rejected: None,
            })
            .collect();
        store.append_staging(1, &keys).unwrap();
    }

    #[test]
    fn a_value_rejection_is_held_until_the_row_hash_changes_and_transient_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::open(&dir.path().join("s.duckdb")).unwrap();
        let mut run = store.begin_run("test", false).unwrap();
        run.counts.rejected = 2;
        run.record(&[
            Entry::Reject { pk: "a".into(), code: "INVALID_EMAIL".into(), message: "bad".into(), hash: Some(1) },
            Entry::Reject { pk: "b".into(), code: "NO_RESULT".into(), message: "lost".into(), hash: Some(2) },
        ])
        .unwrap();
        run.merge_journal().unwrap();
        run.finish("succeeded", None).unwrap();

        staged(&mut store, &[("a", 1), ("b", 2)]);
        let totals = store.diff_keys(false, false).unwrap();
        assert_eq!((totals.changed, totals.held), (1, 1), "a waits, b is retried");
        let totals = store.diff_keys(false, true).unwrap();
        assert_eq!((totals.changed, totals.held), (2, 0), "--retry-rejected sends both");
        staged(&mut store, &[("a", 9), ("b", 2)]);
        let totals = store.diff_keys(false, false).unwrap();
        assert_eq!((totals.changed, totals.held), (2, 0), "a changed, so it is sent");
        let (list, _) = store.rejections(10).unwrap();
        let waits: Vec<(String, bool)> = list.into_iter().map(|r| (r.pk, r.waits_for_change)).collect();
        assert!(waits.contains(&("a".into(), true)) && waits.contains(&("b".into(), false)), "{waits:?}");
    }

    #[test]
    fn moved_and_forgotten_records_change_the_id_map_and_drop_their_links() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::open(&dir.path().join("s.duckdb")).unwrap();
        let ack = |pk: &str, id: &str, hash: u64| Entry::Ack {
            pk: pk.into(),
            hubspot_id: id.into(),
            hash,
            props: "{}".into(),
        };
        let mut run = store.begin_run("test", false).unwrap();
        run.record(&[ack("a", "101", 1), ack("b", "102", 2), ack("c", "103", 3), ack("d", "104", 4)]).unwrap();
        run.merge_journal().unwrap();
        let members: Vec<(String, String)> = [("a", "101"), ("b", "102"), ("c", "103"), ("d", "104")]
            .iter()
            .map(|(p, i)| (p.to_string(), i.to_string()))
            .collect();
        run.record_list_added("L", &members).unwrap();
        run.finish("succeeded", None).unwrap();

        let mut run = store.begin_run("test", false).unwrap();
        run.record(&[
            Entry::Moved { pk: "a".into(), hubspot_id: "201".into() },
            Entry::Forget { pk: "b".into() },
            Entry::Forget { pk: "c".into() },
            ack("c", "303", 9),
        ])
        .unwrap();
        run.record_list_added("L", &[("a".to_string(), "201".to_string())]).unwrap();
        run.merge_journal().unwrap();
        run.finish("succeeded", None).unwrap();
        assert_eq!(store.hubspot_id("a").unwrap().as_deref(), Some("201"), "moved to the survivor");
        assert_eq!(store.hubspot_id("b").unwrap(), None, "forgotten");
        assert_eq!(store.hubspot_id("c").unwrap().as_deref(), Some("303"), "created again");
        let hash = |pk: &str| {
            store.scalar_i64(&format!("SELECT coalesce(row_hash, 0)::BIGINT FROM snapshot WHERE pk = '{pk}'")).unwrap()
        };
        assert_eq!((hash("a"), hash("b"), hash("c"), hash("d")), (1, 0, 9, 4), "a gone record's delivery is forgotten");
        let listed = store
            .scalar_i64("SELECT count(*) FROM list_members WHERE (pk = 'a' AND hubspot_id = '201') OR (pk = 'd' AND hubspot_id = '104')")
            .unwrap();
        assert_eq!(listed, 2, "the survivor's membership and the untouched one stay");
        assert_eq!(store.list_member_count("L").unwrap(), 2, "memberships of the old ids are forgotten");
    }

    #[test]
    fn a_group_of_answers_is_journaled_in_one_transaction_with_the_last_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.duckdb");
        {
            let mut store = StateStore::open(&path).unwrap();
            let mut run = store.begin_run("test", false).unwrap();
            let ack =
                |pk: &str| Entry::Ack { pk: pk.into(), hubspot_id: format!("10{pk}"), hash: 7, props: "{}".into() };
            run.begin_group();
            run.counts.updated = 1;
            run.record(&[ack("1")]).unwrap();
            run.counts.updated = 2;
            run.record(&[ack("2")]).unwrap();
            assert_eq!(run.scalar_i64("SELECT count(*) FROM journal").unwrap(), 0, "nothing written while open");
            run.end_group().unwrap();
            assert_eq!(run.scalar_i64("SELECT count(*) FROM journal").unwrap(), 2);
            run.counts.updated = 3;
            run.record(&[ack("3")]).unwrap();
            assert_eq!(run.scalar_i64("SELECT count(*) FROM journal").unwrap(), 3, "written at once outside a group");
            run.begin_group();
            run.record(&[ack("4")]).unwrap();
            // The process dies with the group open: its entries were never journaled.
        }
        let store = StateStore::open(&path).unwrap();
        let runs = store.runs(1).unwrap();
        assert_eq!((runs[0].status.as_str(), runs[0].counts.updated), ("interrupted", 3));
        assert_eq!(store.snapshot_rows().unwrap(), 3, "what was journaled is merged on the next open");
        assert_eq!(store.hubspot_id("4").unwrap(), None);
    }

    #[test]
    fn intents_stay_pending_until_acknowledged_found_or_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.duckdb");
        {
            let mut store = StateStore::open(&path).unwrap();
            let mut run = store.begin_run("test", false).unwrap();
            let intent =
                |pk: &str| Entry::Intent { pk: pk.into(), match_value: format!("Firm {pk}"), batch: "b1".into() };
            run.record(&[intent("1"), intent("2"), intent("3"), intent("4")]).unwrap();
            run.counts.created = 1;
            run.record(&[Entry::Ack { pk: "1".into(), hubspot_id: "101".into(), hash: 7, props: "{}".into() }])
                .unwrap();
            // The process dies here: no merge, no finish.
        }
        let mut store = StateStore::open(&path).unwrap();
        let runs = store.runs(5).unwrap();
        assert_eq!(runs[0].status, "interrupted");
        assert_eq!(runs[0].counts.created, 1, "the interrupted run keeps what it journaled");
        let pending: Vec<String> = store.pending_creates().unwrap().into_iter().map(|p| p.pk).collect();
        assert_eq!(pending, ["2", "3", "4"]);
        let mut run = store.begin_run("test", false).unwrap();
        run.record(&[Entry::Id { pk: "2".into(), hubspot_id: "102".into() }, Entry::Settle { pk: "3".into() }])
            .unwrap();
        run.merge_journal().unwrap();
        run.finish("succeeded", None).unwrap();
        let pending: Vec<String> = store.pending_creates().unwrap().into_iter().map(|p| p.pk).collect();
        assert_eq!(pending, ["4"]);
        assert_eq!(store.hubspot_id("2").unwrap().as_deref(), Some("102"));

        // A read-only reader sees the same and writes nothing.
        drop(store);
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        let reader = StateReader::open_read_only(&path).unwrap();
        assert_eq!(reader.pending_creates().unwrap().len(), 1);
        assert_eq!(reader.runs(5).unwrap().len(), 2);
        drop(reader);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(StateReader::open_read_only(&dir.path().join("missing.duckdb")).is_err());
        assert!(!dir.path().join("missing.duckdb").exists(), "a read never creates the file");
    }
}
