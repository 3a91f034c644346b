//! Links whose other end changed in HubSpot behind hubsync's back, following the rule of
//! `deliver/vanished.rs`: an id HubSpot no longer knows is read once on its own; a merged-away
//! id answers with the surviving record, which takes its place in the same run, and a deleted
//! record's id is forgotten.
//! - Associations answered `OBJECT_NOT_FOUND`: a merged target (or record) is linked through its
//!   survivor; a deleted target is looked up again by its value, and linked if another record
//!   has it; a deleted record of the sync is forgotten, so the next run re-creates and links it.
//! - List members HubSpot reports missing: a merged one is added as its survivor, a deleted one
//!   is forgotten (the next run re-creates it and adds it).
//! - The list itself: read by its stored id at least once an hour, so a list renamed in HubSpot
//!   stays the sync's list and a deleted one is created again and refilled; a membership change
//!   answered 404 means the same.

use std::collections::HashMap;
use std::time::Duration;

use super::ResolvedRule;
use crate::config::SyncSpec;
use crate::state::{list_checked_key, Entry, LinkCandidate, LinkFailure, Run};
use crate::sync::blocking::blocking;
use crate::sync::metrics::RecordsVanished;
use crate::sync::object::{object_meta, ObjectMeta};
use crate::sync::SyncError;
use hubspot_client::{AssocOutcome, AssociationInput, HubSpotClient};

/// How long a stored list id is trusted without reading the list: runs with no membership
/// change send nothing until then.
pub const LIST_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// What HubSpot says now about an id hubsync knew.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Now {
    /// The record is there under this id.
    Same,
    /// The id was merged into this record.
    Merged(String),
    /// No record has the id.
    Gone,
}

/// Reads ids once each, remembers the answers, and counts the records found merged or deleted.
#[derive(Default)]
struct Reads {
    known: HashMap<(String, String), Now>,
    merged: usize,
    deleted: usize,
}

impl Reads {
    async fn check(&mut self, client: &HubSpotClient, object: &str, id: &str) -> Result<Now, SyncError> {
        let key = (object.to_string(), id.to_string());
        if let Some(now) = self.known.get(&key) {
            return Ok(now.clone());
        }
        let now = match client.read_record_id(object, id).await? {
            Some(found) if found == id => Now::Same,
            Some(found) => Now::Merged(found),
            None => Now::Gone,
        };
        match now {
            Now::Merged(_) => self.merged += 1,
            Now::Gone => self.deleted += 1,
            Now::Same => {}
        }
        self.known.insert(key, now.clone());
        Ok(now)
    }
}

fn failure(link: &LinkCandidate, code: &str, message: String) -> LinkFailure {
    LinkFailure {
        assoc: link.assoc.clone(),
        from_pk: link.from_pk.clone(),
        to_value: link.to_value.clone(),
        labels: link.labels.clone(),
        code: code.to_string(),
        message,
    }
}

/// Looks a deleted target's value up again, as `look_up_targets` would.
async fn look_up_again(client: &HubSpotClient, rule: &ResolvedRule, value: &str) -> Result<Option<String>, SyncError> {
    let property = &rule.rule.match_property;
    if property == "hs_object_id" {
        return Ok(None);
    }
    let values = vec![value.to_string()];
    let found = if rule.target_unique {
        client.batch_read_by_property(&rule.target.path_name, property, values).await?
    } else {
        client.search_by_values(&rule.target.path_name, property, values).await?
    };
    let wanted = value.trim().to_lowercase();
    Ok(found.into_iter().filter(|(v, _)| v.trim().to_lowercase() == wanted).map(|(_, id)| id).min())
}

/// Settles associations HubSpot answered `OBJECT_NOT_FOUND`: reads both ends once, moves the
/// ids that were merged (target ids in the lookup table, the sync's own records through the
/// journal), looks deleted targets up again, forgets deleted records of the sync, and sends
/// the links that have two live ends again, once. Returns the links made; the others are
/// failures (retried on the next run, never rejected for good).
pub(super) async fn relink(
    client: &HubSpotClient,
    sync: &str,
    from: &ObjectMeta,
    rule: &ResolvedRule,
    lost: Vec<(LinkCandidate, AssociationInput, String)>,
    run: &mut Run<'_>,
    failures: &mut Vec<LinkFailure>,
) -> Result<Vec<(LinkCandidate, String, String)>, SyncError> {
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let mut reads = Reads::default();
    let mut entries = Vec::new();
    let mut again = Vec::new();
    let target_type = rule.target.type_id.clone();
    for (link, mut input, message) in lost {
        let mut changed = false;
        match reads.check(client, &rule.target.path_name, &input.to_id).await? {
            Now::Same => {}
            Now::Merged(survivor) => {
                let old = std::mem::replace(&mut input.to_id, survivor.clone());
                blocking(|| run.move_target_id(&target_type, &old, &survivor))?;
                changed = true;
            }
            Now::Gone => {
                let old = input.to_id.clone();
                blocking(|| run.forget_target_id(&target_type, &old))?;
                match look_up_again(client, rule, &link.to_value).await? {
                    Some(id) => {
                        let found = [(link.to_value.clone(), id.clone())];
                        blocking(|| run.remember_targets(&target_type, &rule.rule.match_property, &found))?;
                        input.to_id = id;
                        changed = true;
                    }
                    None => {
                        failures.push(failure(
                            &link,
                            "ASSOCIATION_TARGET_NOT_FOUND",
                            format!(
                                "the {} record with {} = `{}` was deleted in HubSpot and no other has the value; \
                                 the link is retried on every run until one appears",
                                rule.rule.to, rule.rule.match_property, link.to_value
                            ),
                        ));
                        continue;
                    }
                }
            }
        }
        match reads.check(client, &from.path_name, &input.from_id).await? {
            Now::Same => {}
            Now::Merged(survivor) => {
                entries.push(Entry::Moved { pk: link.from_pk.clone(), hubspot_id: survivor.clone() });
                input.from_id = survivor;
                changed = true;
            }
            Now::Gone => {
                entries.push(Entry::Forget { pk: link.from_pk.clone() });
                failures.push(failure(
                    &link,
                    "RECORD_NOT_DELIVERED",
                    "the record was deleted in HubSpot; the next run creates it again and links it".into(),
                ));
                continue;
            }
        }
        if changed {
            again.push((link, input));
        } else {
            failures.push(failure(&link, "OBJECT_NOT_FOUND", message));
        }
    }
    run.counts.merged += reads.merged as u64;
    run.counts.vanished += reads.deleted as u64;
    RecordsVanished { sync, merged: reads.merged, deleted: reads.deleted }.emit();
    blocking(|| run.record(&entries))?;
    let mut delivered = Vec::new();
    if again.is_empty() {
        return Ok(delivered);
    }
    let inputs: Vec<AssociationInput> = again.iter().map(|(_, input)| input.clone()).collect();
    let outcomes = client.batch_associate(&from.path_name, &rule.target.path_name, &inputs).await?;
    let mut by_trace: HashMap<String, (LinkCandidate, AssociationInput)> =
        again.into_iter().map(|(link, input)| (input.trace.clone(), (link, input))).collect();
    for outcome in outcomes {
        match outcome {
            AssocOutcome::Associated { trace } => {
                if let Some((link, input)) = by_trace.remove(&trace) {
                    delivered.push((link, input.from_id, input.to_id));
                }
            }
            AssocOutcome::Rejected { trace, code, message } => {
                if let Some((link, _)) = by_trace.remove(&trace) {
                    failures.push(failure(&link, &code, message));
                }
            }
        }
    }
    Ok(delivered)
}

/// The sync's stored list id, when it still names a list: read by id when the last check is
/// older than [`LIST_CHECK_INTERVAL`] (a renamed list keeps its id and stays the sync's list).
/// A list deleted in HubSpot is forgotten with its members, and `None` is returned, so it is
/// found by name or created again and refilled.
pub(super) async fn stored_list(
    client: &HubSpotClient,
    sync: &SyncSpec,
    run: &mut Run<'_>,
    meta_key: &str,
) -> Result<Option<String>, SyncError> {
    let Some(list_id) = blocking(|| run.meta_get(meta_key))? else { return Ok(None) };
    let checked_key = list_checked_key(&list_id);
    let now = chrono::Utc::now().timestamp();
    let last = blocking(|| run.meta_get(&checked_key))?.and_then(|t| t.parse::<i64>().ok());
    let Some(last) = last else {
        // Found or created just now, or by a hubsync that did not check: the clock starts here.
        blocking(|| run.meta_set(&checked_key, &now.to_string()))?;
        return Ok(Some(list_id));
    };
    if now - last < LIST_CHECK_INTERVAL.as_secs() as i64 && last <= now {
        return Ok(Some(list_id));
    }
    match client.get_list(&list_id).await? {
        Some(list) => {
            blocking(|| run.meta_set(&checked_key, &now.to_string()))?;
            if !list.name.is_empty() && sync.list_name.as_deref().is_some_and(|n| !n.eq_ignore_ascii_case(&list.name)) {
                tracing::info!(
                    list_id = %list_id,
                    name = %list.name,
                    "The sync's list was renamed in HubSpot; it is still the sync's list."
                );
            }
            Ok(Some(list_id))
        }
        None => {
            list_deleted(sync, run, meta_key, &list_id)?;
            Ok(None)
        }
    }
}

/// Forgets a list HubSpot no longer has, with a warning.
pub(super) fn list_deleted(sync: &SyncSpec, run: &mut Run<'_>, meta_key: &str, list_id: &str) -> Result<(), SyncError> {
    tracing::warn!(
        sync = %sync.name,
        list_id,
        list = sync.list_name.as_deref().unwrap_or(""),
        "The sync's list was deleted in HubSpot; it is created again and refilled with the model's records."
    );
    blocking(|| run.forget_list(meta_key, list_id))?;
    Ok(())
}

/// Sends a run's list changes in `add-and-remove` requests when it has both adds and removes
/// (one request carries both), recording each acknowledged request; returns the adds and
/// removes left for the single-sided loops (none once both were sent here).
pub(super) async fn send_adds_and_removes(
    client: &HubSpotClient,
    sync: &SyncSpec,
    meta_slot: &mut Option<ObjectMeta>,
    run: &mut Run<'_>,
    list_id: &str,
    adds: u64,
    removes: u64,
) -> Result<(u64, u64), SyncError> {
    if adds == 0 || removes == 0 {
        return Ok((adds, removes));
    }
    let page = super::LIST_BATCH_SIZE;
    let (mut a, mut r) = (0u64, 0u64);
    while a < adds || r < removes {
        let remove = if r < removes { blocking(|| run.list_changes_page(true, r, page))? } else { Vec::new() };
        let room = page.saturating_sub(remove.len());
        let add = if a < adds && room > 0 { blocking(|| run.list_changes_page(false, a, room))? } else { Vec::new() };
        r += remove.len() as u64;
        a += add.len() as u64;
        let change = client
            .list_add_and_remove(
                list_id,
                add.iter().map(|(_, id)| id.clone()).collect(),
                remove.iter().map(|(_, id)| id.clone()).collect(),
            )
            .await?;
        blocking(|| run.record_list_removed(list_id, &remove))?;
        run.counts.list_removed += remove.len() as u64;
        let added = settle_missing(client, sync, meta_slot, run, list_id, add, &change.missing).await?;
        run.counts.list_added += added.len() as u64;
        blocking(|| run.record_list_added(list_id, &added))?;
    }
    Ok((0, 0))
}

/// After a membership add: the members HubSpot reported missing (`recordIdsMissing`) are read
/// once by id; a merged one moves to its survivor (journaled) and is added as it, a deleted one
/// is forgotten (the next run re-creates and adds it). Returns the members to record as added.
pub(super) async fn settle_missing(
    client: &HubSpotClient,
    sync: &SyncSpec,
    meta_slot: &mut Option<ObjectMeta>,
    run: &mut Run<'_>,
    list_id: &str,
    chunk: Vec<(String, String)>,
    missing: &[String],
) -> Result<Vec<(String, String)>, SyncError> {
    if missing.is_empty() {
        return Ok(chunk);
    }
    let object = object_meta(meta_slot, client, sync).await?.path_name.clone();
    let mut reads = Reads::default();
    let (mut kept, mut moved, mut entries) = (Vec::with_capacity(chunk.len()), Vec::new(), Vec::new());
    for (pk, id) in chunk {
        if !missing.contains(&id) {
            kept.push((pk, id));
            continue;
        }
        match reads.check(client, &object, &id).await? {
            Now::Same => kept.push((pk, id)),
            Now::Merged(survivor) => {
                entries.push(Entry::Moved { pk: pk.clone(), hubspot_id: survivor.clone() });
                moved.push((pk, survivor));
            }
            Now::Gone => entries.push(Entry::Forget { pk }),
        }
    }
    if !moved.is_empty() {
        client.list_add(list_id, moved.iter().map(|(_, id)| id.clone()).collect()).await?;
    }
    run.counts.merged += reads.merged as u64;
    run.counts.vanished += reads.deleted as u64;
    RecordsVanished { sync: &sync.name, merged: reads.merged, deleted: reads.deleted }.emit();
    blocking(|| run.record(&entries))?;
    kept.extend(moved);
    Ok(kept)
}
