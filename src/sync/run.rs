//! The lifecycle of one run of one sync: open the state, begin the run record, stage and diff
//! (`stage.rs`), deliver the records (`deliver.rs`), then associations and list members
//! (`links.rs`), merge the journal into the snapshot, and finish the record, whatever happened.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::blocking::blocking;
use super::deliver::{deliver_records, reconcile_pending_creates};
use super::links::{deliver_associations, sync_list};
use super::metrics::RunFinished;
use super::object::{object_meta, ObjectMeta};
use super::options::{PeakRss, Phases, RunOptions, RunStatus, RunSummary};
use super::removals::{find_removals, removal_scope, report_held, send_removals};
use super::stage::{stage_and_diff, Staged};
use super::SyncError;
use crate::config::{Config, SyncSpec, DEFAULT_SEARCH_INDEX_LAG_SECS};
use crate::source::SourceError;
use crate::state::{Run, StateLimits, StateStore};
use hubspot_client::{HubSpotClient, HubSpotError};

/// Runs one sync now. Errors that stop the run are stored in its run record and returned in
/// the summary; only a state file that cannot be opened is an `Err`.
pub async fn run_sync(
    config: &Config,
    sync: &SyncSpec,
    client: &HubSpotClient,
    options: &RunOptions,
) -> Result<RunSummary, SyncError> {
    let started = Instant::now();
    let path = config.state_path(sync);
    let mut store = blocking(|| StateStore::open_with(&path, &StateLimits::of(config)))?;
    let mut phases = Phases { open_secs: started.elapsed().as_secs_f64(), ..Phases::default() };
    let mut run = store.begin_run(&options.trigger, options.full)?;
    let run_id = run.id();
    // Instrumented rather than entered: a span guard held across `.await` would make the run's
    // future `!Send`, and the daemon runs syncs on spawned tasks.
    let span = tracing::info_span!("run", sync = %sync.name, run_id);
    span.in_scope(|| tracing::info!(full = options.full, trigger = %options.trigger, "Sync run started."));
    // This run's own requests, exact even when other syncs share the account's client; on a
    // stop, the requests still waiting for the budget give up unsent, and those on the wire are
    // answered and journaled.
    let client = &match &options.stop {
        Some(stop) => client.with_run_stats().with_stop(stop.clone()),
        None => client.with_run_stats(),
    };
    let mut held = None;
    let outcome =
        execute(config, sync, client, options, &mut run, &mut held, &mut phases).instrument(span.clone()).await;
    run.counts.requests = client.stats().total_requests();
    // Whatever happened, fold in what HubSpot acknowledged so far.
    let merging = Instant::now();
    let merged = blocking(|| run.merge_journal().and_then(|_| run.drop_work_tables()));
    phases.merge_secs += merging.elapsed().as_secs_f64();
    phases.peak_rss_mb.merge = PeakRss::now();
    let (status, error) = match (&outcome, merged) {
        (Ok(false), Ok(())) if held.is_some() => (RunStatus::Held, held),
        (Ok(false), Ok(())) => (RunStatus::Succeeded, None),
        (Ok(true), Ok(())) => (RunStatus::Cancelled, Some("stopped before the end by a shutdown".to_string())),
        (Err(e @ SyncError::Source(SourceError::Cancelled { .. })), _) => (RunStatus::Cancelled, Some(e.to_string())),
        (Err(SyncError::HubSpot(HubSpotError::Stopped { .. })), _) => {
            (RunStatus::Cancelled, Some("stopped before the end by a shutdown".to_string()))
        }
        (Err(e), _) => (RunStatus::Failed, Some(e.describe(&sync.name))),
        (Ok(_), Err(e)) => (RunStatus::Failed, Some(e.to_string())),
    };
    let counts = run.finish(status.as_str(), error.as_deref())?;
    let summary = RunSummary {
        sync: sync.name.clone(),
        run_id,
        status,
        counts,
        duration_secs: started.elapsed().as_secs_f64(),
        error,
        phases,
    };
    let snapshot_rows = blocking(|| store.snapshot_rows()).ok();
    span.in_scope(|| RunFinished { summary: &summary, snapshot_rows }.emit());
    Ok(summary)
}

/// Returns `Ok(true)` when stopped early by the stop flag. `held` gets the delete guard's
/// message when it held the run's removals.
async fn execute(
    config: &Config,
    sync: &SyncSpec,
    client: &HubSpotClient,
    options: &RunOptions,
    run: &mut Run<'_>,
    held: &mut Option<String>,
    phases: &mut Phases,
) -> Result<bool, SyncError> {
    let mut meta_slot: Option<ObjectMeta> = None;
    let lag = Duration::from_secs(
        config.hubspot.get(&sync.hubspot).map_or(DEFAULT_SEARCH_INDEX_LAG_SECS, |a| a.search_index_lag_secs),
    );
    // Creates a crash left without an answer are settled before anything is read, so the diff
    // routes the ones that happened by id and never creates them twice.
    let pending = blocking(|| run.pending_creates())?;
    if !pending.is_empty() {
        let meta = object_meta(&mut meta_slot, client, sync).await?;
        if reconcile_pending_creates(client, sync, meta, run, pending, lag, &options.stop).await? {
            return Ok(true);
        }
        blocking(|| run.merge_journal())?;
    }
    let mut counts = run.counts;
    let staged =
        stage_and_diff(config, sync, run, options.full, options.retry_rejected, &mut counts, options.stop.clone())
            .await;
    run.counts = counts;
    let Staged { props, label_objects, phases: read } = staged?;
    *phases = Phases { open_secs: phases.open_secs, merge_secs: phases.merge_secs, ..read };
    blocking(|| run.keep_invalid_rows())?;
    if !sync.associations.is_empty() {
        // Before any record is acknowledged: a run stopped after its records but before their
        // links leaves them to the next run.
        blocking(|| run.keep_links_due())?;
    }
    let c = &run.counts;
    let changed = c.rows_read - c.invalid - c.held - c.unchanged;
    let delivering = Instant::now();
    if changed > 0 && deliver_records(client, sync, options, run, &props, &mut meta_slot, lag).await? {
        return Ok(true);
    }
    phases.deliver_secs = delivering.elapsed().as_secs_f64();
    phases.peak_rss_mb.deliver = PeakRss::now();
    // Associations and list members need the ids of this run's records.
    let merging = Instant::now();
    blocking(|| run.merge_journal())?;
    let stopping = || options.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    phases.merge_secs += merging.elapsed().as_secs_f64();
    phases.peak_rss_mb.merge_delivered = PeakRss::now();
    let linking = Instant::now();
    let link_failures = blocking(|| run.link_failures(0))?.1;
    let links_due = if sync.associations.is_empty() { 0 } else { blocking(|| run.links_due_count())? };
    let links_read = !sync.associations.is_empty() && (changed > 0 || link_failures > 0 || links_due > 0);
    if links_read {
        if stopping() {
            return Ok(true);
        }
        let meta = object_meta(&mut meta_slot, client, sync).await?;
        if deliver_associations(client, sync, meta, run, 2 + props.len(), &label_objects).await? {
            return Ok(true);
        }
    }
    // Removals are counted before any is sent, the list's included: the delete guard lets
    // all of them through or none.
    let removals = match removal_scope(sync, links_read) {
        Some(scope) => Some(find_removals(sync, run, &scope, options.allow_deletes, true).await?),
        None => None,
    };
    let may_remove = removals.as_ref().is_none_or(|r| r.may_send());
    if let Some(list_name) = &sync.list_name {
        if stopping() {
            return Ok(true);
        }
        if sync_list(client, sync, list_name, &mut meta_slot, run, may_remove).await? {
            return Ok(true);
        }
    }
    if let Some(removals) = removals {
        if stopping() {
            return Ok(true);
        }
        report_held(sync, &removals);
        if let Some(message) = &removals.held {
            run.counts.removals_held = removals.totals.records;
            *held = Some(message.clone());
        } else if send_removals(client, sync, options, &removals, &mut meta_slot, run).await? {
            return Ok(true);
        }
    }
    phases.links_secs = linking.elapsed().as_secs_f64();
    phases.peak_rss_mb.links = PeakRss::now();
    Ok(false)
}
