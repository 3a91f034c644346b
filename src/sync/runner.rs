//! One run of one sync: source -> staging -> diff -> deliver -> commit.
//!
//! The model is read twice in one warehouse snapshot: every row's key and hash stream into
//! DuckDB, the diff is SQL, and only the changed rows' values are read again; those are read
//! back a page at a time and routed into per-operation queues sent in full batches of 100.
//! Every acknowledged batch is journaled in its own transaction before the next one is sent,
//! so a crash at any moment loses nothing and re-sends only what HubSpot had not acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::Instrument;

use super::links::{deliver_associations, sync_list};
use super::metrics::{RecordRejected, RunFinished};
use super::object::{check_mappings, resolve_object, ObjectMeta};
use super::request_builder::{changed_properties, route, snapshot_props, Route};
use super::SyncError;
use crate::config::{Config, SyncMode, SyncSpec};
use crate::source::{row_hash_seed, select_columns, ColumnInfo, Source, SourceError};
use crate::state::{Entry, RunCounts, StateStore};
use hubspot_client::{HubSpotClient, WriteInput, WriteOutcome};

/// HubSpot's limit of inputs per object batch request.
pub const BATCH_SIZE: usize = hubspot_client::OBJECT_BATCH_LIMIT;
/// Changed rows read back from DuckDB at a time.
const PAGE_ROWS: usize = 5_000;

/// How a run was asked for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Send every row, not only the changed ones.
    pub full: bool,
    /// What started the run: `cli`, `schedule`, `api`, `demo`.
    pub trigger: String,
    /// Set to stop after the batch in flight (graceful shutdown).
    pub stop: Option<Arc<AtomicBool>>,
    /// Show a progress bar when stderr is a terminal.
    pub progress: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub sync: String,
    pub run_id: i64,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub duration_secs: f64,
    pub error: Option<String>,
}

/// Runs DuckDB work on the current thread without starving a multi-threaded runtime.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

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
    let mut store = blocking(|| StateStore::open(&path))?;
    let run_id = store.begin_run(&options.trigger, options.full)?;
    // Instrumented rather than entered: a span guard held across `.await` would make the run's
    // future `!Send`, and the daemon runs syncs on spawned tasks.
    let span = tracing::info_span!("run", sync = %sync.name, run_id);
    span.in_scope(|| tracing::info!(full = options.full, trigger = %options.trigger, "Sync run started."));
    let requests_before = client.stats().total_requests();
    let mut counts = RunCounts::default();
    let outcome =
        execute(config, sync, client, options, &mut store, run_id, &mut counts).instrument(span.clone()).await;
    counts.requests = client.stats().total_requests().saturating_sub(requests_before);
    // Whatever happened, fold in what HubSpot acknowledged so far.
    let merged = blocking(|| store.merge_journal().and_then(|_| store.drop_work_tables()));
    let (status, error) = match (&outcome, merged) {
        (Ok(false), Ok(())) => (RunStatus::Succeeded, None),
        (Ok(true), Ok(())) => (RunStatus::Cancelled, Some("stopped before the end by a shutdown".to_string())),
        (Err(e @ SyncError::Source(SourceError::Cancelled { .. })), _) => (RunStatus::Cancelled, Some(e.to_string())),
        (Err(e), _) => (RunStatus::Failed, Some(e.describe(&sync.name))),
        (Ok(_), Err(e)) => (RunStatus::Failed, Some(e.to_string())),
    };
    store.finish_run(run_id, status.as_str(), &counts, error.as_deref())?;
    let summary = RunSummary {
        sync: sync.name.clone(),
        run_id,
        status,
        counts,
        duration_secs: started.elapsed().as_secs_f64(),
        error,
    };
    let snapshot_rows = blocking(|| store.snapshot_rows()).ok();
    span.in_scope(|| RunFinished { summary: &summary, snapshot_rows }.emit());
    Ok(summary)
}

/// The model columns a sync reads, in staging order: key, match column, then one per property.
/// Association columns follow the properties.
pub(crate) fn staged_columns(sync: &SyncSpec) -> (Vec<String>, Vec<String>) {
    let mut columns = vec![sync.primary_key.clone(), sync.match_on.column.clone()];
    let mut props = Vec::new();
    for (column, property) in &sync.fields {
        columns.push(column.clone());
        props.push(property.clone());
    }
    columns.extend(sync.associations.iter().map(|a| a.column.clone()));
    (columns, props)
}

/// Connects to the sync's warehouse.
pub(crate) async fn connect_source(config: &Config, sync: &SyncSpec) -> Result<Source, SyncError> {
    let warehouse = config.warehouses.get(&sync.warehouse).ok_or_else(|| SyncError::Config {
        sync: sync.name.clone(),
        key: format!("{}.warehouse", sync.key),
        message: format!("warehouse `{}` is not defined", sync.warehouse),
    })?;
    Ok(Source::connect(&sync.warehouse, warehouse).await?)
}

/// What staging the model found, for the rest of the run.
pub(crate) struct Staged {
    /// The property names, in staging order.
    pub props: Vec<String>,
    /// Per association: whether some row of the model uses `{ value, label }` objects.
    pub label_objects: Vec<bool>,
}

/// The seed of a sync's row hashes: a row's hash changes when its values change, and when the
/// sync maps its columns differently.
fn row_seed(columns: &[ColumnInfo], props: &[String]) -> u64 {
    let mut parts = vec!["hubsync row hash 1".to_string()];
    parts.extend(columns.iter().map(|c| format!("{}:{:?}", c.name, c.kind)));
    parts.extend(props.iter().cloned());
    row_hash_seed(&parts.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Reads the model and diffs it against the snapshot, leaving the rows to send in `changes`.
///
/// The model is read twice in one warehouse snapshot. The first read stages every row's key
/// and hash only (the values are hashed as they stream and dropped), which is all the diff
/// needs; the second reads the values of the changed rows (and of rows whose associations
/// failed before), and happens only when there are some. A run with nothing to send costs one
/// streaming read and a join of keys and hashes.
pub(crate) async fn stage_and_diff(
    config: &Config,
    sync: &SyncSpec,
    store: &mut StateStore,
    run_id: Option<i64>,
    full: bool,
    counts: &mut RunCounts,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Staged, SyncError> {
    let source = connect_source(config, sync).await?.with_stop(stop);
    let described = source.describe(&sync.name, &sync.model_sql).await?;
    let (wanted, props) = staged_columns(sync);
    let mut columns = select_columns(&sync.name, &described, &wanted)?;
    let first_link = 2 + props.len();
    for column in columns.iter_mut().skip(first_link) {
        column.kind = column.kind.for_links();
    }
    let seed = row_seed(&columns, &props);
    let links = sync.associations.len();

    let source = Arc::new(source);
    source.begin_snapshot(&sync.name).await?;
    let read = read_twice(&source, sync, store, &columns, seed, run_id, full, counts).await;
    let ended = source.end_snapshot(&sync.name).await;
    let label_objects = read?;
    ended?;
    let changed = blocking(|| store.build_changes(&props, links))?;
    counts.unchanged = counts.rows_read - counts.invalid - changed;
    tracing::info!(rows = counts.rows_read, invalid = counts.invalid, changed, "Model diffed against the snapshot.");
    Ok(Staged { props, label_objects })
}

/// The two reads of `stage_and_diff`; returns which associations use label objects.
#[allow(clippy::too_many_arguments)]
async fn read_twice(
    source: &Arc<Source>,
    sync: &SyncSpec,
    store: &mut StateStore,
    columns: &[ColumnInfo],
    seed: u64,
    run_id: Option<i64>,
    full: bool,
    counts: &mut RunCounts,
) -> Result<Vec<bool>, SyncError> {
    let first_link = columns.len() - sync.associations.len();
    blocking(|| store.create_staging())?;
    // The reader runs on its own task, so parsing and hashing overlap with appending.
    let (tx, mut rx) = mpsc::channel(4);
    let reader = {
        let (source, name, sql, columns) =
            (source.clone(), sync.name.clone(), sync.model_sql.clone(), columns.to_vec());
        tokio::spawn(async move { source.stream_keys(&name, &sql, &columns, first_link, seed, tx).await })
    };
    let mut next_rownum = 1i64;
    let mut label_objects = vec![false; sync.associations.len()];
    let mut written = Ok(());
    while let Some(chunk) = rx.recv().await {
        written = blocking(|| store.append_staging(next_rownum, &chunk.keys));
        if written.is_err() {
            break;
        }
        next_rownum += chunk.keys.len() as i64;
        for (seen, now) in label_objects.iter_mut().zip(&chunk.label_objects) {
            *seen |= *now;
        }
    }
    drop(rx);
    let read = reader.await.map_err(|e| reader_stopped(sync, e))?;
    written?;
    counts.rows_read = read?;
    let totals = blocking(|| store.diff_keys(run_id, full))?;
    counts.invalid = totals.invalid;

    let wanted = blocking(|| store.wanted_keys(!sync.associations.is_empty()))?;
    blocking(|| store.create_staging_rows(columns.len()))?;
    if wanted.is_empty() {
        return Ok(label_objects);
    }
    let (tx, mut rx) = mpsc::channel(4);
    let reader = {
        let (source, name, sql, columns) =
            (source.clone(), sync.name.clone(), sync.model_sql.clone(), columns.to_vec());
        let wanted = Arc::new(wanted);
        tokio::spawn(async move { source.stream_filtered(&name, &sql, &columns, wanted, tx).await })
    };
    let mut next_rownum = 1i64;
    let mut written = Ok(());
    while let Some(chunk) = rx.recv().await {
        written = blocking(|| store.append_staging_rows(next_rownum, &chunk));
        if written.is_err() {
            break;
        }
        next_rownum += chunk.len() as i64;
    }
    drop(rx);
    let read = reader.await.map_err(|e| reader_stopped(sync, e))?;
    written?;
    read?;
    Ok(label_objects)
}

/// The reading task panicked or was cancelled.
fn reader_stopped(sync: &SyncSpec, e: tokio::task::JoinError) -> SyncError {
    SyncError::Source(crate::source::SourceError::Query {
        sync: sync.name.clone(),
        warehouse: sync.warehouse.clone(),
        message: format!("the reading task stopped: {e}"),
    })
}

/// Returns `Ok(true)` when stopped early by the stop flag.
async fn execute(
    config: &Config,
    sync: &SyncSpec,
    client: &HubSpotClient,
    options: &RunOptions,
    store: &mut StateStore,
    run_id: i64,
    counts: &mut RunCounts,
) -> Result<bool, SyncError> {
    let Staged { props, label_objects } =
        stage_and_diff(config, sync, store, Some(run_id), options.full, counts, options.stop.clone()).await?;
    let changed = counts.rows_read - counts.invalid - counts.unchanged;
    let mut meta_slot: Option<ObjectMeta> = None;
    if changed > 0 && deliver_records(client, sync, options, store, run_id, counts, &props, &mut meta_slot).await? {
        return Ok(true);
    }
    // Associations and list members need the ids of this run's records.
    blocking(|| store.merge_journal())?;
    let link_failures = blocking(|| store.link_failures(0))?.1;
    if !sync.associations.is_empty() && (changed > 0 || link_failures > 0) {
        let meta = object_meta(&mut meta_slot, client, sync).await?;
        deliver_associations(client, sync, meta, store, 2 + props.len(), &label_objects, counts).await?;
    }
    if let Some(list_name) = &sync.list_name {
        if options.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Ok(true);
        }
        sync_list(client, sync, list_name, &mut meta_slot, store, counts).await?;
    }
    Ok(false)
}

/// Resolves the sync's object once, when first needed.
pub(crate) async fn object_meta<'m>(
    slot: &'m mut Option<ObjectMeta>,
    client: &HubSpotClient,
    sync: &SyncSpec,
) -> Result<&'m ObjectMeta, SyncError> {
    if slot.is_none() {
        *slot = Some(resolve_object(client, sync).await?);
    }
    slot.as_ref().ok_or_else(|| SyncError::Config {
        sync: sync.name.clone(),
        key: format!("{}.object", sync.key),
        message: "the object type could not be resolved".into(),
    })
}

/// Sends the changed records. Returns true when stopped early.
#[allow(clippy::too_many_arguments)]
async fn deliver_records(
    client: &HubSpotClient,
    sync: &SyncSpec,
    options: &RunOptions,
    store: &mut StateStore,
    run_id: i64,
    counts: &mut RunCounts,
    props: &[String],
    meta_slot: &mut Option<ObjectMeta>,
) -> Result<bool, SyncError> {
    let changed = counts.rows_read - counts.invalid - counts.unchanged;
    let meta = object_meta(meta_slot, client, sync).await?;
    let problems = check_mappings(sync, meta);
    if let Some((key, message)) = problems.into_iter().next() {
        return Err(SyncError::Config { sync: sync.name.clone(), key, message });
    }
    let links = sync.associations.len();
    let progress = progress_bar(options.progress, changed);
    let mut delivery = Delivery {
        client,
        meta,
        sync,
        store,
        run_id,
        counts,
        match_is_unique: meta.is_unique(&sync.match_on.property),
        queues: Queues::default(),
        stop: options.stop.clone(),
    };
    let mut after = 0i64;
    loop {
        let page = blocking(|| delivery.store.changes_page(after, PAGE_ROWS, props, links))?;
        let Some(last) = page.last() else { break };
        after = last.n;
        for row in page {
            let send = changed_properties(props, &row, options.full);
            let snapshot = snapshot_props(props, &row.values);
            let pending = Pending {
                pk: row.pk.clone(),
                hash: row.hash,
                snapshot,
                send,
                match_value: row.match_value.clone().unwrap_or_default(),
            };
            match route(&row, sync.mode, delivery.match_is_unique, &sync.match_on.column) {
                Route::Update { id } => delivery.queues.update.push((id, pending)),
                Route::Upsert => delivery.queues.upsert.push(pending),
                Route::ReadByProperty => delivery.queues.read.push(pending),
                Route::Search => delivery.queues.search.push(pending),
                Route::Skip => delivery.counts.skipped += 1,
                Route::Reject(code, message) => {
                    delivery.counts.rejected += 1;
                    RecordRejected { sync: &sync.name, code }.emit();
                    let entry = Entry::Reject { pk: pending.pk, code: code.to_string(), message };
                    blocking(|| delivery.store.record(run_id, &[entry]))?;
                }
            }
            if delivery.send_full_batches().await? {
                progress.abandon();
                return Ok(true);
            }
            progress.set_position(
                delivery.counts.created + delivery.counts.updated + delivery.counts.skipped + delivery.counts.rejected,
            );
        }
    }
    let stopped = delivery.send_rest().await?;
    progress.finish_and_clear();
    Ok(stopped)
}

fn progress_bar(wanted: bool, len: u64) -> indicatif::ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} records ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A changed row on its way to HubSpot.
struct Pending {
    pk: String,
    hash: u64,
    /// The row's full property values, stored once acknowledged.
    snapshot: String,
    /// The properties to send.
    send: BTreeMap<String, String>,
    match_value: String,
}

#[derive(Default)]
struct Queues {
    update: Vec<(String, Pending)>,
    upsert: Vec<Pending>,
    read: Vec<Pending>,
    search: Vec<Pending>,
    create: Vec<Pending>,
}

struct Delivery<'a> {
    client: &'a HubSpotClient,
    meta: &'a ObjectMeta,
    sync: &'a SyncSpec,
    store: &'a mut StateStore,
    run_id: i64,
    counts: &'a mut RunCounts,
    match_is_unique: bool,
    queues: Queues,
    stop: Option<Arc<AtomicBool>>,
}

impl Delivery<'_> {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Sends every queue that holds a full batch. Returns true when asked to stop.
    async fn send_full_batches(&mut self) -> Result<bool, SyncError> {
        loop {
            if self.stopping() {
                return Ok(true);
            }
            let q = &self.queues;
            if q.read.len() >= BATCH_SIZE {
                self.send_reads(BATCH_SIZE).await?;
            } else if q.search.len() >= BATCH_SIZE {
                self.send_searches(BATCH_SIZE).await?;
            } else if q.update.len() >= BATCH_SIZE {
                self.send_updates(BATCH_SIZE).await?;
            } else if q.upsert.len() >= BATCH_SIZE {
                self.send_upserts(BATCH_SIZE).await?;
            } else if q.create.len() >= BATCH_SIZE {
                self.send_creates(BATCH_SIZE).await?;
            } else {
                return Ok(false);
            }
        }
    }

    /// Sends everything left, lookups first since they feed the write queues.
    async fn send_rest(&mut self) -> Result<bool, SyncError> {
        while !self.queues.read.is_empty() || !self.queues.search.is_empty() {
            if self.send_full_batches().await? {
                return Ok(true);
            }
            let n = self.queues.read.len().min(BATCH_SIZE);
            if n > 0 {
                self.send_reads(n).await?;
            }
            let n = self.queues.search.len().min(BATCH_SIZE);
            if n > 0 {
                self.send_searches(n).await?;
            }
        }
        if self.send_full_batches().await? {
            return Ok(true);
        }
        let n = self.queues.update.len();
        if n > 0 {
            self.send_updates(n).await?;
        }
        let n = self.queues.upsert.len();
        if n > 0 {
            self.send_upserts(n).await?;
        }
        let n = self.queues.create.len();
        if n > 0 {
            self.send_creates(n).await?;
        }
        Ok(false)
    }

    fn with_match_property(&self, p: &Pending) -> BTreeMap<String, String> {
        let mut properties = p.send.clone();
        properties.entry(self.sync.match_on.property.clone()).or_insert_with(|| p.match_value.clone());
        properties
    }

    /// Journals a write batch's outcomes in one transaction and counts them.
    fn commit_writes(
        &mut self,
        batch: Vec<Pending>,
        outcomes: Vec<WriteOutcome>,
        created_by_default: bool,
    ) -> Result<(), SyncError> {
        let mut by_pk: HashMap<String, Pending> = batch.into_iter().map(|p| (p.pk.clone(), p)).collect();
        let mut entries = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                WriteOutcome::Written { trace_id, id, created } => {
                    let Some(p) = by_pk.remove(&trace_id) else { continue };
                    if created || created_by_default {
                        self.counts.created += 1;
                    } else {
                        self.counts.updated += 1;
                    }
                    entries.push(Entry::Ack { pk: p.pk, hubspot_id: id, hash: p.hash, props: p.snapshot });
                }
                WriteOutcome::Rejected { trace_id, code, message } => {
                    if by_pk.remove(&trace_id).is_none() {
                        continue;
                    }
                    self.counts.rejected += 1;
                    tracing::debug!(pk = %trace_id, code = %code, "HubSpot rejected a record.");
                    entries.push(Entry::Reject { pk: trace_id, code, message });
                }
            }
        }
        // An input without an outcome was not acknowledged: it stays unsent and is retried.
        for (pk, _) in by_pk {
            self.counts.rejected += 1;
            entries.push(Entry::Reject {
                pk,
                code: "NO_RESULT".into(),
                message: "HubSpot returned no result for this record; it will be sent again next run".into(),
            });
        }
        for entry in &entries {
            if let Entry::Reject { code, .. } = entry {
                RecordRejected { sync: &self.sync.name, code }.emit();
            }
        }
        let (store, run_id) = (&mut *self.store, self.run_id);
        blocking(|| store.record(run_id, &entries))?;
        Ok(())
    }

    async fn send_updates(&mut self, n: usize) -> Result<(), SyncError> {
        let batch: Vec<(String, Pending)> = self.queues.update.drain(..n).collect();
        // Rows whose values did not change for HubSpot (only the hash did) need no request.
        let (empty, batch): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, p)| p.send.is_empty());
        let acks: Vec<Entry> = empty
            .into_iter()
            .map(|(id, p)| Entry::Ack { pk: p.pk, hubspot_id: id, hash: p.hash, props: p.snapshot })
            .collect();
        let (store, run_id) = (&mut *self.store, self.run_id);
        blocking(|| store.record(run_id, &acks))?;
        if batch.is_empty() {
            return Ok(());
        }
        let inputs = batch
            .iter()
            .map(|(id, p)| WriteInput { trace_id: p.pk.clone(), id: Some(id.clone()), properties: p.send.clone() })
            .collect();
        let outcomes = self.client.batch_update(&self.meta.path_name, inputs).await?;
        self.commit_writes(batch.into_iter().map(|(_, p)| p).collect(), outcomes, false)
    }

    async fn send_upserts(&mut self, n: usize) -> Result<(), SyncError> {
        let batch: Vec<Pending> = self.queues.upsert.drain(..n).collect();
        let inputs = batch
            .iter()
            .map(|p| WriteInput {
                trace_id: p.pk.clone(),
                id: Some(p.match_value.clone()),
                properties: self.with_match_property(p),
            })
            .collect();
        let outcomes = self.client.batch_upsert(&self.meta.path_name, &self.sync.match_on.property, inputs).await?;
        self.commit_writes(batch, outcomes, false)
    }

    async fn send_creates(&mut self, n: usize) -> Result<(), SyncError> {
        let batch: Vec<Pending> = self.queues.create.drain(..n).collect();
        let inputs = batch
            .iter()
            .map(|p| WriteInput { trace_id: p.pk.clone(), id: None, properties: self.with_match_property(p) })
            .collect();
        let outcomes = self.client.batch_create(&self.meta.path_name, inputs).await?;
        self.commit_writes(batch, outcomes, true)
    }

    async fn send_reads(&mut self, n: usize) -> Result<(), SyncError> {
        let batch: Vec<Pending> = self.queues.read.drain(..n).collect();
        let values = unique_values(&batch);
        let found =
            self.client.batch_read_by_property(&self.meta.path_name, &self.sync.match_on.property, values).await?;
        self.route_found(batch, found)
    }

    async fn send_searches(&mut self, n: usize) -> Result<(), SyncError> {
        let batch: Vec<Pending> = self.queues.search.drain(..n).collect();
        let values = unique_values(&batch);
        let found = self.client.search_by_values(&self.meta.path_name, &self.sync.match_on.property, values).await?;
        self.route_found(batch, found)
    }

    /// After a lookup: remembers every id found, then sends found records to the update queue
    /// (or skips them in create mode) and missing ones to the create queue (or skips them in
    /// update mode).
    fn route_found(&mut self, batch: Vec<Pending>, found: Vec<(String, String)>) -> Result<(), SyncError> {
        // When several records share a value, the oldest (lowest id) wins, as HubSpot's own
        // deduplication keeps the oldest record.
        let mut ids: HashMap<String, String> = HashMap::new();
        for (value, id) in found {
            let key = value.trim().to_lowercase();
            match ids.get(&key) {
                Some(existing) if id_order(existing) <= id_order(&id) => {}
                _ => {
                    ids.insert(key, id);
                }
            }
        }
        let mut entries = Vec::new();
        for p in batch {
            match ids.get(&p.match_value.trim().to_lowercase()) {
                Some(id) => {
                    entries.push(Entry::Id { pk: p.pk.clone(), hubspot_id: id.clone() });
                    match self.sync.mode {
                        SyncMode::Create => self.counts.skipped += 1,
                        SyncMode::Upsert | SyncMode::Update => self.queues.update.push((id.clone(), p)),
                    }
                }
                None => match self.sync.mode {
                    SyncMode::Update => self.counts.skipped += 1,
                    SyncMode::Upsert | SyncMode::Create => self.queues.create.push(p),
                },
            }
        }
        let (store, run_id) = (&mut *self.store, self.run_id);
        blocking(|| store.record(run_id, &entries))?;
        Ok(())
    }
}

fn unique_values(batch: &[Pending]) -> Vec<String> {
    let mut values: Vec<String> = batch.iter().map(|p| p.match_value.clone()).collect();
    values.sort();
    values.dedup();
    values
}

/// Orders numeric ids numerically, others after them.
fn id_order(id: &str) -> (u8, u128, &str) {
    match id.parse::<u128>() {
        Ok(n) => (0, n, id),
        Err(_) => (1, 0, id),
    }
}
