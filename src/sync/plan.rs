//! `hubsync plan`: what a run would send, without sending it. The model is staged and diffed
//! exactly as a run does, in a scratch store that reads the state file and never writes it;
//! the changes are routed but not delivered.

use std::collections::BTreeMap;

use super::blocking::blocking;
use super::object::{check_mappings, resolve_object};
use super::removals::{collect_link_candidates, find_removals, removal_scope};
use super::route::{changed_properties, route, Route, BATCH_SIZE};
use super::stage::stage_and_diff;
use super::SyncError;
use crate::config::{Config, OnDelete, SyncMode, SyncSpec};
use crate::state::{RunCounts, StateLimits, StateStore};
use hubspot_client::HubSpotClient;

/// Sample rows shown per plan.
const SAMPLE_ROWS: usize = 10;

/// One row's field-level change, for the sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleChange {
    pub pk: String,
    pub operation: String,
    /// property -> (old value, new value); old is `None` for a record never delivered.
    pub changes: BTreeMap<String, (Option<String>, String)>,
}

/// What a run would do now.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Plan {
    pub sync: String,
    pub rows: u64,
    pub invalid: u64,
    pub unchanged: u64,
    /// Rows HubSpot refused for these very values before: not sent until they change.
    pub held: u64,
    /// Records with a known HubSpot id, updated by id.
    pub update_by_id: u64,
    /// Records upserted by their unique match property (created or updated).
    pub upsert: u64,
    /// Records to look up by their unique match property before writing.
    pub lookup_by_property: u64,
    /// Records to look up by search (non-unique match property) before writing.
    pub lookup_by_search: u64,
    pub skipped: u64,
    pub rejected: u64,
    /// Write requests for the operations known now (lookups add their own).
    pub write_requests: u64,
    pub samples: Vec<SampleChange>,
    /// Records to archive because their rows left the model (`on_delete = "archive"`).
    pub archive: u64,
    /// Records to clear because their rows left the model (`on_delete = "clear"`).
    pub clear: u64,
    /// Associations to create (their targets are looked up when sent).
    pub association_creates: u64,
    /// Links hubsync made that no row asks for any more, to remove (`remove_stale`).
    pub association_removals: u64,
    /// Records with a HubSpot id to add to the list (records created by the run are added too).
    pub list_adds: u64,
    /// Records to remove from the list.
    pub list_removes: u64,
    /// Sample links and list and record removals.
    pub link_samples: Vec<SampleLink>,
    /// Records losing something (archive, clear, unlink, list removal), each counted once.
    pub removal_records: u64,
    /// The delete guard's message when it would hold the removals.
    pub delete_guard: Option<String>,
}

/// One association, list membership or record removal, for the sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleLink {
    pub operation: String,
    pub pk: String,
    /// The associated value (and labels), or the record's HubSpot id.
    pub detail: String,
}

/// Requests needed for `n` records in object batches.
pub(crate) fn batches(n: u64) -> u64 {
    n.div_ceil(BATCH_SIZE as u64)
}

/// Stages and diffs the model, then routes every change without sending anything.
pub async fn plan_sync(
    config: &Config,
    sync: &SyncSpec,
    client: &HubSpotClient,
    full: bool,
) -> Result<Plan, SyncError> {
    let path = config.state_path(sync);
    let mut store = blocking(|| StateStore::open_scratch_with(&path, &StateLimits::of(config)))?;
    let mut counts = RunCounts::default();
    let result = plan_with(config, sync, client, full, &mut store, &mut counts).await;
    blocking(|| store.drop_work_tables())?;
    result
}

async fn plan_with(
    config: &Config,
    sync: &SyncSpec,
    client: &HubSpotClient,
    full: bool,
    store: &mut StateStore,
    counts: &mut RunCounts,
) -> Result<Plan, SyncError> {
    let staged = stage_and_diff(config, sync, store, full, false, counts, None).await?;
    let props = staged.props.clone();
    let mut plan = Plan {
        sync: sync.name.clone(),
        rows: counts.rows_read,
        invalid: counts.invalid,
        unchanged: counts.unchanged,
        held: counts.held,
        ..Plan::default()
    };
    plan_links_and_removals(sync, store, &mut plan, 2 + props.len(), &staged.label_objects).await?;
    if counts.rows_read == counts.invalid + counts.held + counts.unchanged {
        return Ok(plan);
    }
    let meta = resolve_object(client, sync).await?;
    if let Some((key, message)) = check_mappings(sync, &meta).into_iter().next() {
        return Err(SyncError::Config { sync: sync.name.clone(), key, message });
    }
    let unique = meta.is_unique(&sync.match_on.property);
    let mut after = 0;
    loop {
        let page = blocking(|| store.changes_page(after, 5_000, &props, sync.associations.len()))?;
        let Some(last) = page.last() else { break };
        after = last.n;
        for row in page {
            let operation = match route(&row, sync.mode, unique, &sync.match_on.column) {
                Route::Update { .. } => {
                    plan.update_by_id += 1;
                    "update"
                }
                Route::Upsert => {
                    plan.upsert += 1;
                    "upsert"
                }
                Route::ReadByProperty => {
                    plan.lookup_by_property += 1;
                    if sync.mode == SyncMode::Create {
                        "create if missing"
                    } else {
                        "update if found"
                    }
                }
                Route::Search => {
                    plan.lookup_by_search += 1;
                    "search, then write"
                }
                Route::Skip => {
                    plan.skipped += 1;
                    continue;
                }
                Route::Reject(..) => {
                    plan.rejected += 1;
                    continue;
                }
            };
            if plan.samples.len() < SAMPLE_ROWS {
                let changes = changed_properties(&props, &row, full)
                    .into_iter()
                    .map(|(name, new)| {
                        let old = row.old_props.as_ref().and_then(|o| o.get(&name).cloned().flatten());
                        (name, (old, new))
                    })
                    .collect();
                plan.samples.push(SampleChange { pk: row.pk.clone(), operation: operation.to_string(), changes });
            }
        }
    }
    plan.write_requests = batches(plan.update_by_id) + batches(plan.upsert);
    Ok(plan)
}

/// Adds the associations to create, the list's adds and removes, the removals of rows that
/// left the model and of stale links, and the delete guard's verdict, to the plan.
async fn plan_links_and_removals(
    sync: &SyncSpec,
    store: &mut StateStore,
    plan: &mut Plan,
    first_cell: usize,
    label_objects: &[bool],
) -> Result<(), SyncError> {
    let sample = |plan: &mut Plan, operation: &str, pk: String, detail: String| {
        plan.link_samples.push(SampleLink { operation: operation.to_string(), pk, detail });
    };
    if !sync.associations.is_empty() {
        collect_link_candidates(sync, store, first_cell, label_objects)?;
        plan.association_creates = blocking(|| store.prepare_pending_links())?;
        for p in blocking(|| store.pending_links_page(0, SAMPLE_ROWS))? {
            let labels = if p.link.labels.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.link.labels.replace('\n', ", "))
            };
            let to = p.link.assoc.split('|').next().unwrap_or("").to_string();
            sample(plan, "associate", p.link.from_pk, format!("{to} {}{labels}", p.link.to_value));
        }
    }
    if let Some(list_name) = &sync.list_name {
        let list_id = blocking(|| store.meta_get(&format!("list:{list_name}")))?.unwrap_or_default();
        let (adds, removes) = blocking(|| store.prepare_list_changes(&list_id))?;
        plan.list_adds = adds;
        plan.list_removes = removes;
        for (pk, id) in blocking(|| store.list_changes_page(false, 0, SAMPLE_ROWS))? {
            sample(plan, "list add", pk, format!("record {id}"));
        }
        for (pk, id) in blocking(|| store.list_changes_page(true, 0, SAMPLE_ROWS))? {
            sample(plan, "list remove", pk, format!("record {id}"));
        }
    }
    let Some(scope) = removal_scope(sync, !sync.associations.is_empty()) else { return Ok(()) };
    let removals = find_removals(sync, store, &scope, false, false).await?;
    match sync.on_delete {
        OnDelete::Archive => plan.archive = removals.totals.rows,
        OnDelete::Clear => plan.clear = removals.totals.rows,
        OnDelete::Nothing => {}
    }
    plan.association_removals = removals.totals.links;
    plan.removal_records = removals.totals.records;
    plan.delete_guard = removals.held.clone();
    for (pk, id) in blocking(|| store.removed_rows_page(0, SAMPLE_ROWS))? {
        sample(plan, sync.on_delete.as_str(), pk, format!("record {id}"));
    }
    for link in blocking(|| store.removal_links_page(0, SAMPLE_ROWS))? {
        let to = link.assoc.split('|').next().unwrap_or("").to_string();
        let what = if link.kept.is_empty() { "unlink" } else { "remove labels" };
        let labels =
            if link.labels.is_empty() { String::new() } else { format!(" ({})", link.labels.replace('\n', ", ")) };
        sample(plan, what, link.from_pk, format!("{to} {}{labels}", link.to_value));
    }
    Ok(())
}
