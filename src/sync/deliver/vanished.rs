//! Records that were merged into another or deleted in HubSpot since hubsync learned their id.
//! HubSpot's batch update leaves a merged-away id out of its results without an error, and
//! answers `OBJECT_NOT_FOUND` for a deleted one (recorded real answers, hubspot-api.md §9.1).
//! Such an input is not rejected: its id is read once on its own. A single read of a
//! merged-away id answers with the surviving record, so the id map moves there and the update
//! is sent to it in the same run; a record that is gone has its id forgotten, and the row goes
//! through its match rule again in the same run (an upsert re-creates it, update mode looks it
//! up and skips it when it is not found). Only when the record is still there under the same
//! id is the input rejected as before (`NO_RESULT`, retried on the next run).

use std::collections::{BTreeMap, HashMap};

use super::{Delivery, Pending};
use crate::state::Entry;
use crate::sync::blocking::blocking;
use crate::sync::metrics::{RecordRejected, RecordsVanished};
use crate::sync::route::{route_by_match, Route};
use crate::sync::SyncError;
use hubspot_client::{outcome_codes, WriteOutcome};

/// True for an update outcome that may mean the record was merged or deleted.
fn may_have_vanished(outcome: &WriteOutcome) -> bool {
    matches!(outcome.code(), Some(code) if code == outcome_codes::NO_RESULT || code == "OBJECT_NOT_FOUND")
}

/// Splits an answered update batch: the inputs and outcomes to journal as they are, and the
/// inputs (with the id they were sent to) that got no result or `OBJECT_NOT_FOUND` and were
/// not read again yet this run.
pub(super) fn set_aside(
    batch: Vec<(String, Pending)>,
    outcomes: Vec<WriteOutcome>,
) -> (Vec<Pending>, Vec<WriteOutcome>, Vec<(String, Pending)>) {
    let mut by_pk: HashMap<String, (String, Pending)> =
        batch.into_iter().map(|(id, p)| (p.pk.clone(), (id, p))).collect();
    let mut keep = Vec::with_capacity(by_pk.len());
    let mut kept_outcomes = Vec::with_capacity(outcomes.len());
    let mut gone = Vec::new();
    for outcome in outcomes {
        let Some((id, p)) = by_pk.remove(outcome.trace_id()) else { continue };
        if may_have_vanished(&outcome) && !p.rechecked {
            gone.push((id, p));
        } else {
            keep.push(p);
            kept_outcomes.push(outcome);
        }
    }
    // Inputs without any outcome count as without a result.
    for (_, (id, p)) in by_pk {
        if p.rechecked {
            keep.push(p);
        } else {
            gone.push((id, p));
        }
    }
    (keep, kept_outcomes, gone)
}

/// Every non-null value of a row (its snapshot JSON): what a record that is new to HubSpot,
/// or a survivor that holds values of its own, is sent.
fn all_values(snapshot: &str) -> BTreeMap<String, String> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(snapshot) else {
        return BTreeMap::new();
    };
    map.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string()))).collect()
}

impl Delivery<'_, '_> {
    /// True while some queue still holds records to send.
    pub(super) fn has_queued(&self) -> bool {
        let q = &self.queues;
        !(q.read.is_empty() && q.search.is_empty() && q.update.is_empty() && q.upsert.is_empty() && q.create.is_empty())
    }

    /// Reads each set-aside record by the id it was sent to, once, and acts on the answer:
    /// a different id (merged) moves the id map and queues the update for the survivor; no
    /// record (deleted) forgets the id and routes the row by its match rule; the same id
    /// rejects the input as without a result. Everything learned is journaled in one
    /// transaction before the queued writes go out.
    pub(super) async fn recheck_vanished(&mut self, gone: Vec<(String, Pending)>) -> Result<(), SyncError> {
        if gone.is_empty() {
            return Ok(());
        }
        let (mut merged, mut deleted) = (0usize, 0usize);
        let mut entries = Vec::with_capacity(gone.len());
        for (old_id, mut p) in gone {
            p.rechecked = true;
            match self.client.read_record_id(&self.meta.path_name, &old_id).await? {
                Some(survivor) if survivor != old_id => {
                    merged += 1;
                    tracing::info!(
                        pk = %p.pk,
                        id = %old_id,
                        survivor = %survivor,
                        "A record was merged into another in HubSpot; its update goes to the surviving record."
                    );
                    entries.push(Entry::Moved { pk: p.pk.clone(), hubspot_id: survivor.clone() });
                    p.send = all_values(&p.snapshot);
                    self.queues.update.push((survivor, p));
                }
                Some(_) => {
                    self.run.counts.rejected += 1;
                    RecordRejected { sync: &self.sync.name, code: outcome_codes::NO_RESULT }.emit();
                    entries.push(Entry::Reject {
                        pk: p.pk,
                        code: outcome_codes::NO_RESULT.into(),
                        message: format!(
                            "HubSpot returned no result for record {old_id}, which exists; it will be sent again \
                             next run"
                        ),
                        hash: Some(p.hash),
                    });
                }
                None => {
                    deleted += 1;
                    tracing::info!(
                        pk = %p.pk,
                        id = %old_id,
                        "A record was deleted in HubSpot; its id is forgotten and the row is matched again."
                    );
                    entries.push(Entry::Forget { pk: p.pk.clone() });
                    p.send = all_values(&p.snapshot);
                    self.route_again(p, &mut entries);
                }
            }
        }
        self.run.counts.merged += merged as u64;
        self.run.counts.vanished += deleted as u64;
        RecordsVanished { sync: &self.sync.name, merged, deleted }.emit();
        blocking(|| self.run.record(&entries))?;
        Ok(())
    }

    /// Queues a row whose record is gone by its match rule, as a row never delivered.
    fn route_again(&mut self, p: Pending, entries: &mut Vec<Entry>) {
        let match_value = Some(p.match_value.as_str()).filter(|v| !v.trim().is_empty());
        match route_by_match(match_value, self.sync.mode, self.match_is_unique, &self.sync.match_on.column) {
            Route::Upsert => self.queues.upsert.push(p),
            Route::ReadByProperty => self.queues.read.push(p),
            Route::Search => self.queues.search.push(p),
            Route::Update { id } => self.queues.update.push((id, p)),
            Route::Skip => self.run.counts.skipped += 1,
            Route::Reject(code, message) => {
                self.run.counts.rejected += 1;
                RecordRejected { sync: &self.sync.name, code }.emit();
                entries.push(Entry::Reject { pk: p.pk, code: code.to_string(), message, hash: Some(p.hash) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(pk: &str, rechecked: bool) -> Pending {
        Pending {
            pk: pk.into(),
            hash: 1,
            snapshot: r#"{"email":"a@x.io","firstname":null}"#.into(),
            send: BTreeMap::new(),
            match_value: "a@x.io".into(),
            rechecked,
        }
    }

    fn rejected(pk: &str, code: &str) -> WriteOutcome {
        WriteOutcome::Rejected { trace_id: pk.into(), code: code.into(), message: String::new() }
    }

    #[test]
    fn no_result_and_not_found_are_set_aside_once() {
        let batch = vec![
            ("1".to_string(), pending("a", false)),
            ("2".to_string(), pending("b", false)),
            ("3".to_string(), pending("c", false)),
            ("4".to_string(), pending("d", true)),
            ("5".to_string(), pending("e", false)),
        ];
        let outcomes = vec![
            WriteOutcome::Written { trace_id: "a".into(), id: "1".into(), created: false },
            rejected("b", "OBJECT_NOT_FOUND"),
            rejected("c", "INVALID_EMAIL"),
            rejected("d", "NO_RESULT"),
        ];
        let (keep, kept, gone) = set_aside(batch, outcomes);
        let mut gone: Vec<(String, String)> = gone.into_iter().map(|(id, p)| (id, p.pk)).collect();
        gone.sort();
        assert_eq!(gone, [("2".to_string(), "b".to_string()), ("5".to_string(), "e".to_string())]);
        let mut keep: Vec<String> = keep.into_iter().map(|p| p.pk).collect();
        keep.sort();
        assert_eq!(keep, ["a", "c", "d"], "a record read again once is rejected as before");
        assert_eq!(kept.len(), 3);
    }

    #[test]
    fn all_values_leaves_nulls_out() {
        assert_eq!(
            all_values(r#"{"email":"a@x.io","firstname":null}"#).into_iter().collect::<Vec<_>>(),
            [("email".to_string(), "a@x.io".to_string())]
        );
        assert!(all_values("not json").is_empty());
    }
}
