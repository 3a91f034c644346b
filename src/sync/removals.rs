//! Removals: what a run takes away from HubSpot, and the delete guard that keeps a model broken
//! by mistake from taking away too much.
//!
//! After the records and new associations of a run are delivered, `find_removals` finds the
//! records whose rows left the model (archived or cleared as `on_delete` says), the links
//! hubsync made that no row asks for any more (rules with `remove_stale`), and the records the
//! run would remove from its list, and counts the records concerned, each once. When that is
//! more than `max_deletes` allows, or the model returned no rows at all while the snapshot has
//! some, none of those removals is sent (everything else still is) and the run ends `held`,
//! until `--allow-deletes`. Otherwise `send_removals` sends them, journaling each acknowledged
//! batch in its own transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use super::blocking::blocking;
use super::links::{label_key, parse_link_cell, resolve_rules, rule_key, ResolvedRule, ASSOCIATION_BATCH_SIZE};
use super::metrics::RemovalsHeld;
use super::object::{object_meta, ObjectMeta};
use super::options::RunOptions;
use super::route::BATCH_SIZE;
use super::SyncError;
use crate::config::{OnDelete, SyncSpec};
use crate::state::{LinkCandidate, RemovalScope, RemovalTotals, Run, StaleLink, StateStore};
use hubspot_client::{HubSpotClient, WriteInput, WriteOutcome};

/// Stale links read back at a time.
const LINK_PAGE: usize = ASSOCIATION_BATCH_SIZE;
/// List members read back at a time, to count the list's removals.
const LIST_PAGE: usize = 5_000;

/// The removals a run found, and whether the delete guard holds them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Removals {
    pub totals: RemovalTotals,
    /// Records in the snapshot when the removals were counted.
    pub snapshot_rows: u64,
    /// Valid rows the model returned.
    pub model_rows: u64,
    /// The guard's message when it holds the removals; `None` when they may be sent.
    pub held: Option<String>,
}

impl Removals {
    /// True when removals may be sent (none found, or the guard lets them through).
    pub fn may_send(&self) -> bool {
        self.held.is_none()
    }
}

/// What the sync removes at all: `None` when it removes nothing (no `on_delete`, no
/// `remove_stale`, no list), so a run pays nothing for removals.
pub(crate) fn removal_scope(sync: &SyncSpec, candidates: bool) -> Option<RemovalScope> {
    let stale_rules: Vec<String> = sync.associations.iter().filter(|a| a.remove_stale).map(rule_key).collect();
    let rows = sync.on_delete != OnDelete::Nothing;
    if !rows && stale_rules.is_empty() && sync.list_name.is_none() {
        return None;
    }
    Some(RemovalScope { rows, archive: sync.on_delete == OnDelete::Archive, stale_rules, candidates })
}

/// The delete guard: the message naming the numbers when the removals must be held.
pub(crate) fn guard(sync: &SyncSpec, removals: &Removals, allow_deletes: bool) -> Option<String> {
    let records = removals.totals.records;
    if records == 0 || allow_deletes {
        return None;
    }
    let (rows, snapshot) = (removals.model_rows, removals.snapshot_rows);
    let retry = format!("run `hubsync sync {} --allow-deletes`", sync.name);
    if rows == 0 && snapshot > 0 {
        return Some(format!(
            "{records} removals held: the model returned 0 rows, the snapshot has {snapshot}; a model that returns \
             no rows never removes anything on its own: if it is right, {retry}"
        ));
    }
    if sync.max_deletes.exceeded(records, snapshot) {
        return Some(format!(
            "{records} removals held: the model returned {rows} rows, the snapshot has {snapshot}, and max_deletes = \
             {} allows {}; {retry} or raise `max_deletes`",
            sync.max_deletes,
            sync.max_deletes.allowed(snapshot)
        ));
    }
    None
}

/// Finds the run's removals and decides whether the guard holds them. With `keep_marks` (a
/// run, not a plan), the stale links found are remembered for the next runs.
pub(crate) async fn find_removals(
    sync: &SyncSpec,
    store: &mut StateStore,
    scope: &RemovalScope,
    allow_deletes: bool,
    keep_marks: bool,
) -> Result<Removals, SyncError> {
    blocking(|| store.prepare_removals(scope))?;
    if keep_marks {
        blocking(|| store.keep_stale_marks())?;
    }
    if let Some(list_name) = &sync.list_name {
        if let Some(list_id) = blocking(|| store.meta_get(&format!("list:{list_name}")))? {
            count_list_removals(store, &list_id)?;
        }
    }
    let totals = blocking(|| store.removal_totals())?;
    let snapshot_rows = blocking(|| store.snapshot_rows())?;
    let model_rows = blocking(|| store.model_fingerprint())?.1;
    let mut removals = Removals { totals, snapshot_rows, model_rows, held: None };
    removals.held = guard(sync, &removals, allow_deletes);
    Ok(removals)
}

/// Notes the records the list step would remove. When the model's keys are those the list was
/// last made equal to (every one of them a member), no member can have left, so the two joins
/// that would find nothing are skipped, on runs with changes too.
fn count_list_removals(store: &mut StateStore, list_id: &str) -> Result<(), SyncError> {
    let (fingerprint, _) = blocking(|| store.model_fingerprint())?;
    if blocking(|| store.meta_get(&format!("list-fingerprint:{list_id}")))?.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let (_, removes) = blocking(|| store.prepare_list_changes(list_id))?;
    for offset in (0..removes).step_by(LIST_PAGE) {
        let page = blocking(|| store.list_changes_page(true, offset, LIST_PAGE))?;
        let pks: Vec<String> = page.into_iter().map(|(pk, _)| pk).collect();
        blocking(|| store.add_list_removals(&pks))?;
    }
    Ok(())
}

/// Reads the association cells `prepare_link_inputs` picked into `link_candidates`, without
/// resolving anything in HubSpot (for `plan`, which sends nothing). Cells that cannot be read
/// are left out, as a run rejects them.
pub(crate) fn collect_link_candidates(
    sync: &SyncSpec,
    store: &mut StateStore,
    first_cell: usize,
    label_objects: &[bool],
) -> Result<(), SyncError> {
    let rules: Vec<String> = sync.associations.iter().map(rule_key).collect();
    blocking(|| store.begin_links(&[]))?;
    blocking(|| store.prepare_link_inputs(first_cell, rules.len()))?;
    let mut after = 0i64;
    loop {
        let rows = blocking(|| store.link_input_page(after, 5_000, rules.len()))?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        let mut candidates = Vec::new();
        for (_, pk, cells) in rows {
            for (j, cell) in cells.iter().enumerate() {
                let Some(cell) = cell else { continue };
                let Ok(values) = parse_link_cell(cell, label_objects.get(j).copied().unwrap_or(false)) else {
                    continue;
                };
                for v in values {
                    candidates.push(LinkCandidate {
                        assoc: rules[j].clone(),
                        from_pk: pk.clone(),
                        to_value: v.value,
                        labels: label_key(&v.labels),
                    });
                }
            }
        }
        blocking(|| store.append_link_candidates(&candidates))?;
    }
    blocking(|| store.narrow_links())?;
    Ok(())
}

/// Sends the removals `find_removals` found and the guard let through: stale links first,
/// then the records whose rows left (archived or cleared). Returns true when asked to stop.
pub(crate) async fn send_removals(
    client: &HubSpotClient,
    sync: &SyncSpec,
    options: &RunOptions,
    removals: &Removals,
    meta_slot: &mut Option<ObjectMeta>,
    run: &mut Run<'_>,
) -> Result<bool, SyncError> {
    let stopping = || options.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    if removals.totals.links > 0 {
        let meta = object_meta(meta_slot, client, sync).await?;
        let rules = resolve_rules(client, sync, meta).await?;
        let from_type = meta.path_name.clone();
        for offset in (0..removals.totals.links).step_by(LINK_PAGE) {
            if stopping() {
                return Ok(true);
            }
            let page = blocking(|| run.removal_links_page(offset, LINK_PAGE))?;
            let sent = unlink_page(client, &from_type, &rules, &page).await?;
            run.counts.unlinked += sent;
            blocking(|| run.record_unlinked(&page).and_then(|_| run.save_counts()))?;
        }
    }
    if removals.totals.rows > 0 {
        let meta = object_meta(meta_slot, client, sync).await?.clone();
        for offset in (0..removals.totals.rows).step_by(BATCH_SIZE) {
            if stopping() {
                return Ok(true);
            }
            let page = blocking(|| run.removed_rows_page(offset, BATCH_SIZE))?;
            match sync.on_delete {
                OnDelete::Archive => {
                    let ids: Vec<String> = page.iter().map(|(_, id)| id.clone()).collect();
                    client.batch_archive(&meta.path_name, &ids).await?;
                    let pks: Vec<String> = page.into_iter().map(|(pk, _)| pk).collect();
                    run.counts.archived += pks.len() as u64;
                    blocking(|| run.record_archived(&pks).and_then(|_| run.save_counts()))?;
                }
                OnDelete::Clear => {
                    let cleared = clear_page(client, sync, &meta, page).await?;
                    run.counts.cleared += cleared.len() as u64;
                    blocking(|| run.record_cleared(&cleared).and_then(|_| run.save_counts()))?;
                }
                OnDelete::Nothing => break,
            }
        }
    }
    Ok(false)
}

/// Empties the sync's mapped properties (but the match property, which keeps the record
/// findable when its row comes back) on a page of records; returns the keys HubSpot
/// acknowledged, or no longer has (nothing is left to clear). Others are tried again next run.
async fn clear_page(
    client: &HubSpotClient,
    sync: &SyncSpec,
    meta: &ObjectMeta,
    page: Vec<(String, String)>,
) -> Result<Vec<String>, SyncError> {
    let properties: BTreeMap<String, String> =
        sync.fields.values().filter(|p| **p != sync.match_on.property).map(|p| (p.clone(), String::new())).collect();
    if properties.is_empty() {
        return Ok(page.into_iter().map(|(pk, _)| pk).collect());
    }
    let inputs = page
        .iter()
        .map(|(pk, id)| WriteInput { trace_id: pk.clone(), id: Some(id.clone()), properties: properties.clone() })
        .collect();
    let mut done = Vec::new();
    for outcome in client.batch_update(&meta.path_name, inputs).await? {
        match outcome {
            WriteOutcome::Written { trace_id, .. } => done.push(trace_id),
            WriteOutcome::Rejected { trace_id, code, .. } if code == "OBJECT_NOT_FOUND" => done.push(trace_id),
            WriteOutcome::Rejected { trace_id, code, message } => {
                tracing::warn!(pk = %trace_id, code = %code, message = %message, "HubSpot refused to clear a record; it is tried again next run.");
            }
        }
    }
    Ok(done)
}

/// `(category, type id)` pairs to remove, per `(from id, to id)` pair.
type PairTypes = BTreeMap<(String, String), BTreeSet<(String, u32)>>;

/// The association types a link of `rule` with `labels` stands for.
fn link_types(rule: &ResolvedRule, labels: &str) -> Vec<(String, u32)> {
    let labels: Vec<String> =
        if labels.is_empty() { Vec::new() } else { labels.split('\n').map(str::to_string).collect() };
    rule.types_for(&labels).unwrap_or_default()
}

/// Sends the removals of one page of stale links: a pair no link of hubsync's asks for any
/// more is unlinked whole (v4 batch archive); a pair still linked loses only the labels no
/// kept link has (labels archive), never its unlabeled type, whose removal would take every
/// label with it. Returns how many links a request removed.
async fn unlink_page(
    client: &HubSpotClient,
    from_type: &str,
    rules: &[ResolvedRule],
    page: &[StaleLink],
) -> Result<u64, SyncError> {
    let by_key: HashMap<&str, &ResolvedRule> = rules.iter().map(|r| (r.key.as_str(), r)).collect();
    // Per target object: pairs to unlink, and per pair the types to remove.
    let mut unlink: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut unlabel: BTreeMap<String, PairTypes> = BTreeMap::new();
    let mut sent = 0;
    for link in page {
        let Some(rule) = by_key.get(link.assoc.as_str()) else { continue };
        let target = rule.target.path_name.clone();
        let pair = (link.from_id.clone(), link.to_id.clone());
        if link.kept.is_empty() {
            unlink.entry(target).or_default().insert(pair);
            sent += 1;
            continue;
        }
        let mut kept: BTreeSet<(String, u32)> = BTreeSet::new();
        for (kept_rule, labels) in &link.kept {
            match by_key.get(kept_rule.as_str()) {
                Some(r) => kept.extend(link_types(r, labels)),
                // A link of a rule no longer configured: keep everything of the pair.
                None => kept.extend(link_types(rule, &link.labels)),
            }
        }
        let unlabeled: BTreeSet<(String, u32)> =
            rules.iter().filter(|r| r.rule.type_name.is_none()).flat_map(|r| r.default_types.clone()).collect();
        let remove: BTreeSet<(String, u32)> = link_types(rule, &link.labels)
            .into_iter()
            .filter(|t| !kept.contains(t) && !unlabeled.contains(t))
            .collect();
        if !remove.is_empty() {
            unlabel.entry(target).or_default().entry(pair).or_default().extend(remove);
            sent += 1;
        }
    }
    for (target, pairs) in unlink {
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        client.batch_unlink(from_type, &target, &pairs).await?;
    }
    for (target, pairs) in unlabel {
        let removals: Vec<hubspot_client::LabelRemoval> =
            pairs.into_iter().map(|((from, to), types)| (from, to, types.into_iter().collect())).collect();
        client.batch_unlabel(from_type, &target, &removals).await?;
    }
    Ok(sent)
}

/// Emits the guard's event when it held removals.
pub(crate) fn report_held(sync: &SyncSpec, removals: &Removals) {
    RemovalsHeld { sync: &sync.name, records: removals.held.as_ref().map_or(0, |_| removals.totals.records) }.emit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn sync(extra: &str) -> SyncSpec {
        let text = format!(
            "[warehouses.wh]\ntype = \"duckdb\"\npath = \"w.duckdb\"\n[hubspot.main]\ntoken = \"t\"\n[[syncs]]\n\
             name = \"contacts\"\nmodel = \"select 1 as id\"\nprimary_key = \"id\"\nobject = \"contacts\"\n\
             match = {{ column = \"id\", property = \"email\" }}\n{extra}\n"
        );
        Config::parse(std::path::Path::new("/nonexistent/hubsync.toml"), &text, &|_| None).unwrap().syncs.remove(0)
    }

    fn removals(records: u64, model_rows: u64, snapshot_rows: u64) -> Removals {
        Removals {
            totals: RemovalTotals { rows: records, links: 0, list: 0, records },
            snapshot_rows,
            model_rows,
            held: None,
        }
    }

    #[test]
    fn an_empty_model_is_held_whatever_the_limit_and_allow_deletes_lets_everything_through() {
        let s = sync("max_deletes = \"100%\"");
        let message = guard(&s, &removals(300, 0, 300), false).unwrap();
        assert!(message.starts_with("300 removals held: the model returned 0 rows, the snapshot has 300"), "{message}");
        assert!(message.contains("hubsync sync contacts --allow-deletes"), "{message}");
        assert_eq!(guard(&s, &removals(300, 0, 300), true), None);
        assert_eq!(guard(&s, &removals(0, 0, 300), false), None, "no removal, nothing to hold");
    }

    #[test]
    fn counts_and_shares_hold_what_is_more_than_they_allow() {
        let by_count = sync("max_deletes = 20");
        assert_eq!(guard(&by_count, &removals(20, 280, 300), false), None);
        let message = guard(&by_count, &removals(21, 279, 300), false).unwrap();
        assert!(message.contains("21 removals held") && message.contains("max_deletes = 20 allows 20"), "{message}");
        let by_default = sync("");
        assert_eq!(guard(&by_default, &removals(30, 270, 300), false), None, "10% of 300");
        let message = guard(&by_default, &removals(31, 269, 300), false).unwrap();
        assert!(message.contains("max_deletes = \"10%\" allows 30"), "{message}");
    }

    #[test]
    fn a_sync_that_removes_nothing_pays_nothing() {
        assert!(removal_scope(&sync(""), true).is_none());
        let scope = removal_scope(&sync("on_delete = \"archive\""), false).unwrap();
        assert!(scope.rows && scope.archive && scope.stale_rules.is_empty());
        assert!(removal_scope(&sync("list = true"), false).is_some());
    }
}
