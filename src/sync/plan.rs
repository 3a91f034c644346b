//! `hubsync plan`: what a run would send, without sending it. The model is staged and diffed
//! exactly as a run does, in a scratch store that reads the state file and never writes it;
//! the changes are routed but not delivered.

use std::collections::BTreeMap;

use super::blocking::blocking;
use super::object::{check_mappings, resolve_object};
use super::route::{changed_properties, route, Route, BATCH_SIZE};
use super::stage::stage_and_diff;
use super::SyncError;
use crate::config::{Config, SyncMode, SyncSpec};
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
    let props = stage_and_diff(config, sync, store, full, false, counts, None).await?.props;
    let mut plan = Plan {
        sync: sync.name.clone(),
        rows: counts.rows_read,
        invalid: counts.invalid,
        unchanged: counts.unchanged,
        held: counts.held,
        ..Plan::default()
    };
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
