//! Delivery of a run's changed records: each change is routed (`route.rs`) into per-operation
//! queues that are sent in full batches of 100, lookups first since they feed the write
//! queues. Every answered batch is journaled in its own transaction before the next is sent.
//!
//! Creates (the search-and-create path of a non-unique match property) are not idempotent, so
//! their intent is journaled before they are sent, and a create whose answer was lost is never
//! sent again blindly: once HubSpot's search index has caught up (`search_index_lag_secs`) it is
//! looked up by its match value; found, its id is learned; not found, it is created again.
//! Intents a crash left behind are reconciled the same way at the start of the next run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::blocking::blocking;
use super::metrics::{CreatesReconciled, CreatesUncertain, RecordRejected};
use super::object::{check_mappings, object_meta, ObjectMeta};
use super::options::RunOptions;
use super::route::{changed_properties, route, snapshot_props, Route, BATCH_SIZE};
use super::unique_key::{self, KEY_PROPERTY};
use super::SyncError;
use crate::config::{SyncMode, SyncSpec};
use crate::state::{Entry, PendingCreate, Run};
use hubspot_client::{outcome_codes, HubSpotClient, WriteInput, WriteOutcome};

mod vanished;

/// Changed rows read back from DuckDB at a time.
const PAGE_ROWS: usize = 5_000;
/// Rounds of "wait for the index, look up, create what is missing" within one run; creates
/// still uncertain after them stay journaled and are reconciled by the next run.
const RECONCILE_ROUNDS: usize = 3;
/// An intent older than this cannot belong to a request still on its way (a create is never
/// retried once sent; rate-limit waits are capped at five minutes).
const STALE_INTENT: Duration = Duration::from_secs(600);

/// Waits until `until`, waking up to check the stop flag. Returns true when asked to stop.
async fn wait_until(until: Instant, stop: &Option<Arc<AtomicBool>>) -> bool {
    loop {
        if stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(200))).await;
    }
}

/// Reconciles the creates a crashed (or stopped) run left uncertain, before anything else is
/// staged: once the search index has caught up, each is looked up by its match value; found,
/// its id is learned (the run then updates it by id); not found, it is settled and created
/// like any new record. Returns true when asked to stop first.
pub(super) async fn reconcile_pending_creates(
    client: &HubSpotClient,
    sync: &SyncSpec,
    meta: &ObjectMeta,
    run: &mut Run<'_>,
    pending: Vec<PendingCreate>,
    lag: Duration,
    stop: &Option<Arc<AtomicBool>>,
) -> Result<bool, SyncError> {
    // The intent was journaled before its request left, but the request may have waited for the
    // rate budget, and the process may have died any time after: the write, if any, happened
    // before this run started, so the full lag from now is safe. Intents older than any
    // request could have been pending need no wait.
    let youngest = pending.iter().map(|p| p.age_secs).fold(f64::MAX, f64::min);
    let wait = if youngest > STALE_INTENT.as_secs_f64() { Duration::ZERO } else { lag };
    tracing::info!(
        creates = pending.len(),
        wait_secs = wait.as_secs_f64(),
        "Reconciling creates an interrupted run left without an answer, once HubSpot's search has caught up."
    );
    if wait_until(Instant::now() + wait, stop).await {
        return Ok(true);
    }
    let (mut found_n, mut missing_n) = (0, 0);
    for chunk in pending.chunks(BATCH_SIZE) {
        let mut values: Vec<String> = chunk.iter().map(|p| p.match_value.clone()).collect();
        values.sort();
        values.dedup();
        let ids = ids_by_value(client.search_by_values(&meta.path_name, &sync.match_on.property, values).await?);
        let mut entries = Vec::with_capacity(chunk.len());
        for p in chunk {
            match ids.get(&p.match_value.trim().to_lowercase()) {
                Some(id) => {
                    found_n += 1;
                    entries.push(Entry::Id { pk: p.pk.clone(), hubspot_id: id.clone() });
                }
                None => {
                    missing_n += 1;
                    entries.push(Entry::Settle { pk: p.pk.clone() });
                }
            }
        }
        run.counts.reconciled += chunk.len() as u64;
        blocking(|| run.record(&entries))?;
    }
    CreatesReconciled { sync: &sync.name, found: found_n, not_found: missing_n }.emit();
    Ok(false)
}

/// Sends the changed records. Returns true when stopped early.
pub(super) async fn deliver_records(
    client: &HubSpotClient,
    sync: &SyncSpec,
    options: &RunOptions,
    run: &mut Run<'_>,
    props: &[String],
    meta_slot: &mut Option<ObjectMeta>,
    search_index_lag: Duration,
) -> Result<bool, SyncError> {
    let c = &run.counts;
    let changed = c.rows_read - c.invalid - c.held - c.unchanged;
    let meta = object_meta(meta_slot, client, sync).await?;
    let problems = check_mappings(sync, meta);
    if let Some((key, message)) = problems.into_iter().next() {
        return Err(SyncError::Config { sync: sync.name.clone(), key, message });
    }
    let links = sync.associations.len();
    let by_key = unique_key::ensure(client, sync, meta).await;
    let progress = progress_bar(options.progress, changed);
    let mut delivery = Delivery {
        client,
        meta,
        sync,
        run,
        match_is_unique: meta.is_unique(&sync.match_on.property),
        by_key,
        queues: Queues::default(),
        stop: options.stop.clone(),
        search_index_lag,
        create_batches: 0,
    };
    let mut after = 0i64;
    loop {
        let page = blocking(|| delivery.run.changes_page(after, PAGE_ROWS, props, links))?;
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
                rechecked: false,
            };
            match route(&row, sync.mode, delivery.match_is_unique, &sync.match_on.column) {
                Route::Update { id } => delivery.queues.update.push((id, pending)),
                Route::Upsert => delivery.queues.upsert.push(pending),
                Route::ReadByProperty => delivery.queues.read.push(pending),
                Route::Search => delivery.queues.search.push(pending),
                Route::Skip => delivery.run.counts.skipped += 1,
                Route::Reject(code, message) => {
                    delivery.run.counts.rejected += 1;
                    RecordRejected { sync: &sync.name, code }.emit();
                    let entry =
                        Entry::Reject { pk: pending.pk, code: code.to_string(), message, hash: Some(pending.hash) };
                    blocking(|| delivery.run.record(&[entry]))?;
                }
            }
            if delivery.send_full_batches().await? {
                progress.abandon();
                return Ok(true);
            }
            progress.set_position(
                delivery.run.counts.created
                    + delivery.run.counts.updated
                    + delivery.run.counts.skipped
                    + delivery.run.counts.rejected,
            );
        }
    }
    let mut stopped = delivery.send_rest().await?;
    // Rows re-routed because their record was merged or deleted in HubSpot (`vanished.rs`)
    // go out in the same run.
    while !stopped && delivery.has_queued() {
        stopped = delivery.send_rest().await?;
    }
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
#[derive(Clone)]
struct Pending {
    pk: String,
    hash: u64,
    /// The row's full property values, stored once acknowledged.
    snapshot: String,
    /// The properties to send.
    send: BTreeMap<String, String>,
    match_value: String,
    /// True once its record was read again after an update by id got no result (`vanished.rs`):
    /// it is not read a second time in the same run.
    rechecked: bool,
}

#[derive(Default)]
struct Queues {
    update: Vec<(String, Pending)>,
    upsert: Vec<Pending>,
    read: Vec<Pending>,
    search: Vec<Pending>,
    create: Vec<Pending>,
    /// Creates whose answer was lost, with when the attempt ended: reconciled, never re-sent.
    uncertain: Vec<(Instant, Pending)>,
}

struct Delivery<'a, 'r> {
    client: &'a HubSpotClient,
    meta: &'a ObjectMeta,
    sync: &'a SyncSpec,
    run: &'a mut Run<'r>,
    match_is_unique: bool,
    /// Records not found by search are upserted by hubsync's unique key property instead of
    /// created (`unique_key.rs`); found ones get the key written.
    by_key: bool,
    queues: Queues,
    stop: Option<Arc<AtomicBool>>,
    search_index_lag: Duration,
    /// Create batches sent so far, to name each in its journaled intent.
    create_batches: usize,
}

impl Delivery<'_, '_> {
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
        self.reconcile().await
    }

    /// Settles the creates whose answer was lost: waits until HubSpot's search index shows
    /// them, looks them up by match value, acknowledges those found (the create happened, with
    /// these values) and creates the others again, journaling each step. Returns true when
    /// asked to stop (what is left stays journaled for the next run).
    async fn reconcile(&mut self) -> Result<bool, SyncError> {
        let mut round = 0;
        while !self.queues.uncertain.is_empty() {
            round += 1;
            let Some(last) = self.queues.uncertain.iter().map(|(at, _)| *at).max() else { break };
            let until = last + self.search_index_lag;
            tracing::info!(
                creates = self.queues.uncertain.len(),
                wait_secs = until.saturating_duration_since(Instant::now()).as_secs_f64(),
                "Waiting for HubSpot's search index before looking up creates whose answer was lost."
            );
            if wait_until(until, &self.stop).await {
                return Ok(true);
            }
            let batch: Vec<Pending> = self.queues.uncertain.drain(..).map(|(_, p)| p).collect();
            let (mut found_n, mut missing) = (0, Vec::new());
            for chunk in batch.chunks(BATCH_SIZE) {
                let values = unique_values(chunk);
                let ids = ids_by_value(
                    self.client.search_by_values(&self.meta.path_name, &self.sync.match_on.property, values).await?,
                );
                let mut entries = Vec::with_capacity(chunk.len());
                for p in chunk {
                    match ids.get(&p.match_value.trim().to_lowercase()) {
                        Some(id) => {
                            // The create happened, with these values: it is acknowledged.
                            found_n += 1;
                            self.run.counts.created += 1;
                            entries.push(Entry::Ack {
                                pk: p.pk.clone(),
                                hubspot_id: id.clone(),
                                hash: p.hash,
                                props: p.snapshot.clone(),
                            });
                        }
                        None => {
                            entries.push(Entry::Settle { pk: p.pk.clone() });
                            missing.push(p.clone());
                        }
                    }
                }
                self.run.counts.reconciled += chunk.len() as u64;
                blocking(|| self.run.record(&entries))?;
            }
            CreatesReconciled { sync: &self.sync.name, found: found_n, not_found: missing.len() }.emit();
            if round >= RECONCILE_ROUNDS {
                // Settled as not created: the next run creates them.
                break;
            }
            self.queues.create.extend(missing);
            while !self.queues.create.is_empty() {
                let n = self.queues.create.len().min(BATCH_SIZE);
                self.send_creates(n).await?;
            }
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
                        self.run.counts.created += 1;
                    } else {
                        self.run.counts.updated += 1;
                    }
                    entries.push(Entry::Ack { pk: p.pk, hubspot_id: id, hash: p.hash, props: p.snapshot });
                }
                WriteOutcome::Rejected { trace_id, code, message } => {
                    let Some(p) = by_pk.remove(&trace_id) else { continue };
                    self.run.counts.rejected += 1;
                    tracing::debug!(pk = %trace_id, code = %code, "HubSpot rejected a record.");
                    entries.push(Entry::Reject { pk: trace_id, code, message, hash: Some(p.hash) });
                }
            }
        }
        // An input without an outcome was not acknowledged: it stays unsent and is retried.
        for (pk, p) in by_pk {
            self.run.counts.rejected += 1;
            entries.push(Entry::Reject {
                pk,
                code: "NO_RESULT".into(),
                message: "HubSpot returned no result for this record; it will be sent again next run".into(),
                hash: Some(p.hash),
            });
        }
        for entry in &entries {
            if let Entry::Reject { code, .. } = entry {
                RecordRejected { sync: &self.sync.name, code }.emit();
            }
        }
        blocking(|| self.run.record(&entries))?;
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
        blocking(|| self.run.record(&acks))?;
        if batch.is_empty() {
            return Ok(());
        }
        let inputs = batch
            .iter()
            .map(|(id, p)| WriteInput { trace_id: p.pk.clone(), id: Some(id.clone()), properties: p.send.clone() })
            .collect();
        let mut outcomes = self.client.batch_update(&self.meta.path_name, inputs).await?;
        let mut batch = batch;
        if self.by_key {
            // A found record refused the row's key: the record holding it is the row's own.
            let taken: HashSet<String> =
                outcomes.iter().filter(|o| unique_key::key_taken(o)).map(|o| o.trace_id().to_string()).collect();
            if !taken.is_empty() {
                outcomes.retain(|o| !taken.contains(o.trace_id()));
                let (moved, kept): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, p)| taken.contains(&p.pk));
                batch = kept;
                self.queues.create.extend(moved.into_iter().map(|(_, p)| p));
            }
        }
        // Inputs HubSpot answered without a result or as not found: their records may have been
        // merged or deleted, and are read again before anything is concluded.
        let (batch, outcomes, gone) = vanished::set_aside(batch, outcomes);
        self.commit_writes(batch, outcomes, false)?;
        self.recheck_vanished(gone).await
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

    /// Sends a create batch. Its intent (keys, match values, batch) is committed first, so a
    /// crash at any later moment leaves it to be reconciled; inputs whose answer was lost are
    /// set aside for reconciliation instead of being rejected.
    async fn send_creates(&mut self, n: usize) -> Result<(), SyncError> {
        if self.by_key {
            return self.send_key_upserts(n).await;
        }
        let batch: Vec<Pending> = self.queues.create.drain(..n).collect();
        self.create_batches += 1;
        let label = format!("run {} create batch {}", self.run.id(), self.create_batches);
        let intents: Vec<Entry> = batch
            .iter()
            .map(|p| Entry::Intent { pk: p.pk.clone(), match_value: p.match_value.clone(), batch: label.clone() })
            .collect();
        blocking(|| self.run.record(&intents))?;
        let inputs = batch
            .iter()
            .map(|p| WriteInput { trace_id: p.pk.clone(), id: None, properties: self.with_match_property(p) })
            .collect();
        let outcomes = self.client.batch_create(&self.meta.path_name, inputs).await?;
        // Whatever HubSpot wrote, it wrote before this: the index lag counts from here.
        let answered_at = Instant::now();
        let mut by_pk: HashMap<String, Pending> = batch.into_iter().map(|p| (p.pk.clone(), p)).collect();
        let (mut answered, mut settled_outcomes) = (Vec::with_capacity(by_pk.len()), Vec::with_capacity(by_pk.len()));
        let mut detail = None;
        for outcome in outcomes {
            match &outcome {
                WriteOutcome::Rejected { trace_id, code, message } if code == outcome_codes::DELIVERY_UNCERTAIN => {
                    if let Some(p) = by_pk.remove(trace_id) {
                        detail.get_or_insert_with(|| message.clone());
                        self.queues.uncertain.push((answered_at, p));
                        self.run.counts.uncertain += 1;
                    }
                }
                WriteOutcome::Rejected { trace_id, .. } | WriteOutcome::Written { trace_id, .. } => {
                    if let Some(p) = by_pk.remove(trace_id) {
                        answered.push(p);
                        settled_outcomes.push(outcome);
                    }
                }
            }
        }
        if let Some(detail) = detail {
            let records = self.queues.uncertain.iter().filter(|(at, _)| *at == answered_at).count();
            CreatesUncertain { sync: &self.sync.name, records, detail: &detail }.emit();
        }
        // Inputs without any outcome are rejected as `NO_RESULT` by `commit_writes`.
        answered.extend(by_pk.into_values());
        self.commit_writes(answered, settled_outcomes, true)
    }

    /// Sends records not found by search as an upsert by hubsync's key property: idempotent,
    /// so retried after 5xx like any upsert, with no intent to journal or reconcile.
    async fn send_key_upserts(&mut self, n: usize) -> Result<(), SyncError> {
        let batch: Vec<Pending> = self.queues.create.drain(..n).collect();
        let rows = batch.iter().map(|p| (p.pk.clone(), self.with_match_property(p))).collect();
        let inputs = unique_key::upsert_inputs(&self.sync.name, rows);
        let outcomes = self.client.batch_upsert(&self.meta.path_name, KEY_PROPERTY, inputs).await?;
        // Not found by search: counted as created, also when a retry after a lost answer
        // updated what the first attempt made.
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
        let ids = ids_by_value(found);
        let mut entries = Vec::new();
        for mut p in batch {
            match ids.get(&p.match_value.trim().to_lowercase()) {
                Some(id) => {
                    entries.push(Entry::Id { pk: p.pk.clone(), hubspot_id: id.clone() });
                    if self.by_key && self.sync.mode != SyncMode::Create {
                        p.send.insert(KEY_PROPERTY.to_string(), unique_key::key_value(&self.sync.name, &p.pk));
                    }
                    match self.sync.mode {
                        SyncMode::Create => self.run.counts.skipped += 1,
                        SyncMode::Upsert | SyncMode::Update => self.queues.update.push((id.clone(), p)),
                    }
                }
                None => match self.sync.mode {
                    SyncMode::Update => self.run.counts.skipped += 1,
                    SyncMode::Upsert | SyncMode::Create => self.queues.create.push(p),
                },
            }
        }
        blocking(|| self.run.record(&entries))?;
        Ok(())
    }
}

/// The id found for each value (trimmed, lower case). When several records share a value, the
/// oldest (lowest id) wins, as HubSpot's own deduplication keeps the oldest record.
fn ids_by_value(found: Vec<(String, String)>) -> HashMap<String, String> {
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
    ids
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
