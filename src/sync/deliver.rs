//! Delivery of a run's changed records: each change is routed (`route.rs`) into per-operation
//! queues that are sent in full batches of 100, lookups first since they feed the write
//! queues. Several batches are in flight at once (`pipeline.rs`, up to the account's
//! `max_in_flight`; the account's rate budget decides when each goes): sending a batch
//! (`send_updates`, `send_upserts`, `send_creates`, `send_reads`, `send_searches`) only starts
//! its request, and each answer is journaled, in its own transaction, when it arrives, in
//! whatever order (`commit_writes`, `commit_creates`, `route_found`).
//!
//! Ordering rules, which the pipeline keeps:
//! - A row is in one request at a time: it is routed once, and a lookup hands it to a write
//!   queue only when its answer is journaled.
//! - Two requests in flight never write the same HubSpot record: a batch leaves out rows whose
//!   record (its id, or its match value) is in a write still in flight, and they go in a later
//!   batch. A batch is sent whole or waits: it is never cut short for a conflict.
//! - A create is never sent twice: its intent is journaled before its request starts, the
//!   client never repeats it once it may have reached HubSpot, and a create whose answer was
//!   lost is reconciled (below) only after every request in flight has been answered.
//! - An update waits for its record's create: a record gets an id only from a journaled answer
//!   (a create's, an upsert's or a lookup's), and only then is it routed by id.
//! - Associations and list members come after every record request of the run has been
//!   answered and the journal merged (`run.rs`), so both ends of a link have ids.
//! - On a stop (SIGTERM), no new request starts; the ones on the wire are answered and
//!   journaled before the run returns, and the ones still waiting for the budget give up unsent.
//!   On an error, the answers in flight are journaled first, then the error ends the run.
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
use super::pipeline::Pipeline;
use super::route::{changed_properties, route, snapshot_props, Route, BATCH_SIZE};
use super::unique_key::{self, KEY_PROPERTY};
use super::SyncError;
use crate::config::{SyncMode, SyncSpec};
use crate::state::{Entry, PendingCreate, Run};
use hubspot_client::{outcome_codes, HubSpotClient, HubSpotError, WriteInput, WriteOutcome};

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

/// Sends the changed records. Returns true when stopped early. Every request started has been
/// answered and journaled when it returns, an error included.
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
        flight: Pipeline::new(client),
        busy: HashSet::new(),
        lookups_in_flight: 0,
        failure: None,
    };
    let sent: Result<bool, SyncError> = async {
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
        // go out in the same run; `send_rest` has journaled every answer by then.
        while !stopped && delivery.has_queued() {
            let gone = std::mem::take(&mut delivery.queues.vanished);
            delivery.recheck_vanished(gone).await?;
            stopped = delivery.send_rest().await?;
        }
        Ok(stopped)
    }
    .await;
    // Whatever stopped the sending, the answers of the requests in flight are journaled.
    let stopped = delivery.finish(sent).await;
    if matches!(stopped, Ok(false)) {
        progress.finish_and_clear();
    } else {
        progress.abandon();
    }
    stopped
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
    /// Updates by id that got no result or `OBJECT_NOT_FOUND`, with the id they went to: their
    /// records are read again once (`vanished.rs`) before anything is concluded.
    vanished: Vec<(String, Pending)>,
}

/// One answered request of the pipeline, with what journaling it needs.
struct Answer {
    /// The records its rows write (see `record_keys`), free again once it is journaled.
    keys: Vec<String>,
    kind: Answered,
}

enum Answered {
    /// With the id each row was sent to.
    Updates { batch: Vec<(String, Pending)>, outcomes: Result<Vec<WriteOutcome>, HubSpotError> },
    /// `created`: upserts by hubsync's key property of rows search did not find, counted as
    /// created (also when a retry after a lost answer updated what the first attempt made).
    Upserts { batch: Vec<Pending>, outcomes: Result<Vec<WriteOutcome>, HubSpotError>, created: bool },
    /// `answered_at`: when the answer (or the failure) came back; the search index lag of an
    /// uncertain create counts from there.
    Creates { batch: Vec<Pending>, outcomes: Result<Vec<WriteOutcome>, HubSpotError>, answered_at: Instant },
    /// A batch read by a unique property, or a search: `(value, id)` of each record found.
    Lookups { batch: Vec<Pending>, found: Result<Vec<(String, String)>, HubSpotError> },
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
    /// The requests in flight.
    flight: Pipeline<Answer>,
    /// The records written by requests in flight (`record_keys`).
    busy: HashSet<String>,
    /// Lookups in flight: their answers may still fill the write queues.
    lookups_in_flight: usize,
    /// The first error an answer brought: no new request starts, and the run ends with it
    /// once the others are journaled.
    failure: Option<SyncError>,
}

/// The HubSpot records a write of this row touches, as keys of `Delivery::busy`: its id when
/// it is known, and its match value (HubSpot matches upserts and searches case-insensitively).
fn record_keys(id: Option<&str>, p: &Pending) -> Vec<String> {
    let mut keys = Vec::with_capacity(2);
    if let Some(id) = id {
        keys.push(format!("id:{id}"));
    }
    let value = p.match_value.trim().to_lowercase();
    if !value.is_empty() {
        keys.push(format!("value:{value}"));
    }
    keys
}

/// Takes the first `n` entries of `queue` whose records no write in flight touches, keeping the
/// others in order. `None` (and the queue untouched) when fewer than `n` are free: the batch
/// waits for an answer rather than go short.
fn take_batch<T>(
    queue: &mut Vec<T>,
    n: usize,
    busy: &HashSet<String>,
    keys: impl Fn(&T) -> Vec<String>,
) -> Option<Vec<T>> {
    let n = n.min(queue.len());
    if busy.is_empty() {
        return Some(queue.drain(..n).collect());
    }
    let free: Vec<bool> = queue.iter().map(|item| keys(item).iter().all(|k| !busy.contains(k))).collect();
    let mut picked = 0;
    let take: Vec<bool> = free
        .into_iter()
        .map(|f| {
            let t = f && picked < n;
            picked += usize::from(t);
            t
        })
        .collect();
    if picked < n {
        return None;
    }
    let (mut batch, mut rest) = (Vec::with_capacity(n), Vec::with_capacity(queue.len() - n));
    for (item, t) in queue.drain(..).zip(take) {
        if t {
            batch.push(item);
        } else {
            rest.push(item);
        }
    }
    *queue = rest;
    Some(batch)
}

impl Delivery<'_, '_> {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// True when no new request may start: asked to stop, or an answer brought an error.
    fn halted(&self) -> bool {
        self.failure.is_some() || self.stopping()
    }

    /// Waits for every request in flight and journals its answer. Returns the run's outcome:
    /// the first error (of `sent`, or of an answer), else whether it stopped early.
    async fn finish(&mut self, sent: Result<bool, SyncError>) -> Result<bool, SyncError> {
        let drained = self.drain().await;
        let stopped = sent?;
        drained?;
        match self.failure.take() {
            Some(e) => Err(e),
            None => Ok(stopped || self.stopping()),
        }
    }

    /// Journals every answer still to come.
    async fn drain(&mut self) -> Result<(), SyncError> {
        while self.journal_next().await? {}
        Ok(())
    }

    /// Waits for the next answer and journals it with those that arrived beside it. False when
    /// nothing was in flight.
    async fn journal_next(&mut self) -> Result<bool, SyncError> {
        match self.flight.next().await {
            Some(answer) => self.journal_group(Some(answer)).map(|()| true),
            None => Ok(false),
        }
    }

    /// Makes room for the next request: when the pipeline is full, waits until it has drained
    /// to its refill level ([`Pipeline::refill_level`]), then journals every answer that came in
    /// one transaction.
    async fn make_room(&mut self) -> Result<(), SyncError> {
        let mut waited = Vec::new();
        if self.flight.is_full() {
            while self.flight.len() > self.flight.refill_level() {
                match self.flight.next().await {
                    Some(answer) => waited.push(answer),
                    None => break,
                }
            }
        }
        self.journal_group(waited)
    }

    /// Journals `answers` and those that have arrived since in one transaction (one commit,
    /// not one per batch: a commit costs milliseconds). Nothing is sent meanwhile, so every
    /// answer is journaled before the next request leaves, as with one transaction per batch.
    fn journal_group(&mut self, answers: impl IntoIterator<Item = Answer>) -> Result<(), SyncError> {
        self.run.begin_group();
        let mut journaled = Ok(());
        for answer in answers {
            journaled = self.journal(answer);
            if journaled.is_err() {
                break;
            }
        }
        while journaled.is_ok() {
            let Some(answer) = self.flight.arrived() else { break };
            journaled = self.journal(answer);
        }
        // What was acknowledged is journaled even when a later answer failed.
        let ended = blocking(|| self.run.end_group());
        journaled?;
        Ok(ended?)
    }

    /// Journals one answer (in the open group's transaction) and frees the records it wrote.
    fn journal(&mut self, answer: Answer) -> Result<(), SyncError> {
        for key in &answer.keys {
            self.busy.remove(key);
        }
        match answer.kind {
            Answered::Updates { batch, outcomes } => match outcomes {
                Ok(outcomes) => self.commit_updates(batch, outcomes),
                Err(e) => self.failed(e),
            },
            Answered::Upserts { batch, outcomes, created } => match outcomes {
                Ok(outcomes) => self.commit_writes(batch, outcomes, created),
                Err(e) => self.failed(e),
            },
            Answered::Creates { batch, outcomes, answered_at } => match outcomes {
                Ok(outcomes) => self.commit_creates(batch, outcomes, answered_at),
                Err(HubSpotError::Stopped { .. }) => {
                    // Never sent: the intents are settled, and the next run creates them.
                    let settled: Vec<Entry> = batch.into_iter().map(|p| Entry::Settle { pk: p.pk }).collect();
                    blocking(|| self.run.record(&settled))?;
                    Ok(())
                }
                // Intents stay journaled: the next run reconciles them.
                Err(e) => self.failed(e),
            },
            Answered::Lookups { batch, found } => {
                self.lookups_in_flight -= 1;
                match found {
                    Ok(found) => self.route_found(batch, found),
                    Err(e) => self.failed(e),
                }
            }
        }
    }

    /// Keeps the first error an answer brought; a request not sent because of a stop is none.
    fn failed(&mut self, e: HubSpotError) -> Result<(), SyncError> {
        if !matches!(e, HubSpotError::Stopped { .. }) && self.failure.is_none() {
            self.failure = Some(e.into());
        }
        Ok(())
    }

    /// Marks the records of a write as in flight.
    fn hold(&mut self, keys: &[String]) {
        self.busy.extend(keys.iter().cloned());
    }

    /// Sends every queue that holds a full batch, while the pipeline has room (waiting for
    /// answers when it has none). Returns true when halted.
    async fn send_full_batches(&mut self) -> Result<bool, SyncError> {
        loop {
            self.make_room().await?;
            if self.halted() {
                return Ok(true);
            }
            let q = &self.queues;
            let sent = if q.read.len() >= BATCH_SIZE {
                self.send_reads(BATCH_SIZE)
            } else if q.search.len() >= BATCH_SIZE {
                self.send_searches(BATCH_SIZE)
            } else if q.update.len() >= BATCH_SIZE {
                self.send_updates(BATCH_SIZE)?
            } else if q.upsert.len() >= BATCH_SIZE {
                self.send_upserts(BATCH_SIZE)?
            } else if q.create.len() >= BATCH_SIZE {
                self.send_creates(BATCH_SIZE)?
            } else {
                return Ok(false);
            };
            if !sent {
                // Its rows' records are in writes in flight: wait for one of them.
                self.wait_for_a_write().await?;
            }
        }
    }

    /// Waits for an answer, when a batch found its records in writes in flight.
    async fn wait_for_a_write(&mut self) -> Result<(), SyncError> {
        if !self.journal_next().await? {
            // Nothing in flight holds a record any more (never the case: each answer frees its
            // records); free them all rather than wait for ever.
            self.busy.clear();
        }
        Ok(())
    }

    /// Sends everything left, lookups first since they feed the write queues, then settles
    /// the creates whose answer was lost. Returns true when halted.
    async fn send_rest(&mut self) -> Result<bool, SyncError> {
        loop {
            if self.send_full_batches().await? {
                return Ok(true);
            }
            let (reads, searches) = (self.queues.read.len(), self.queues.search.len());
            if reads > 0 {
                self.send_reads(reads);
            } else if searches > 0 {
                self.send_searches(searches);
            } else if self.lookups_in_flight > 0 {
                self.journal_next().await?;
            } else {
                break;
            }
        }
        loop {
            if self.send_full_batches().await? {
                return Ok(true);
            }
            let q = &self.queues;
            let (updates, upserts, creates) = (q.update.len(), q.upsert.len(), q.create.len());
            let sent = if updates > 0 {
                self.send_updates(updates)?
            } else if upserts > 0 {
                self.send_upserts(upserts)?
            } else if creates > 0 {
                self.send_creates(creates)?
            } else {
                break;
            };
            if !sent {
                self.wait_for_a_write().await?;
            }
        }
        self.reconcile().await
    }

    /// Settles the creates whose answer was lost: once every request in flight is answered,
    /// waits until HubSpot's search index shows them, looks them up by match value,
    /// acknowledges those found (the create happened, with these values) and creates the
    /// others again, journaling each step. Returns true when halted (what is left stays
    /// journaled for the next run).
    async fn reconcile(&mut self) -> Result<bool, SyncError> {
        let mut round = 0;
        loop {
            // Their answers may set more creates aside.
            self.drain().await?;
            if self.halted() {
                return Ok(true);
            }
            if self.queues.uncertain.is_empty() {
                return Ok(false);
            }
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
                self.make_room().await?;
                if self.halted() {
                    return Ok(true);
                }
                let n = self.queues.create.len().min(BATCH_SIZE);
                if !self.send_creates(n)? {
                    self.wait_for_a_write().await?;
                }
            }
        }
        Ok(false)
    }

    fn with_match_property(&self, p: &Pending) -> BTreeMap<String, String> {
        let mut properties = p.send.clone();
        properties.entry(self.sync.match_on.property.clone()).or_insert_with(|| p.match_value.clone());
        properties
    }

    /// Journals a write batch's outcomes in one transaction and counts them. Inputs a stop
    /// kept from being sent (`STOPPED`) are left as they were: the next run sends them.
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
                WriteOutcome::Rejected { trace_id, code, .. } if code == outcome_codes::STOPPED => {
                    by_pk.remove(&trace_id);
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

    /// Starts an update batch of `n` queued rows. False when fewer than `n` rows are free of
    /// writes in flight (nothing is sent; the caller waits for an answer).
    fn send_updates(&mut self, n: usize) -> Result<bool, SyncError> {
        let keys = |(id, p): &(String, Pending)| record_keys(Some(id), p);
        let Some(batch) = take_batch(&mut self.queues.update, n, &self.busy, keys) else { return Ok(false) };
        // Rows whose values did not change for HubSpot (only the hash did) need no request.
        let (empty, batch): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, p)| p.send.is_empty());
        let acks: Vec<Entry> = empty
            .into_iter()
            .map(|(id, p)| Entry::Ack { pk: p.pk, hubspot_id: id, hash: p.hash, props: p.snapshot })
            .collect();
        blocking(|| self.run.record(&acks))?;
        if batch.is_empty() {
            return Ok(true);
        }
        let inputs = batch
            .iter()
            .map(|(id, p)| WriteInput { trace_id: p.pk.clone(), id: Some(id.clone()), properties: p.send.clone() })
            .collect();
        let held: Vec<String> = batch.iter().flat_map(keys).collect();
        self.hold(&held);
        let (client, path) = (self.client.clone(), self.meta.path_name.clone());
        self.flight.send(async move {
            let outcomes = client.batch_update(&path, inputs).await;
            Answer { keys: held, kind: Answered::Updates { batch, outcomes } }
        });
        Ok(true)
    }

    /// Journals an update batch's answer. A found record that refused the row's key (by
    /// `unique_key`): the record holding it is the row's own, and the row goes to the create
    /// queue (an upsert by the key). Inputs answered without a result or as not found: their
    /// records may have been merged or deleted, and are read again before anything is
    /// concluded (`vanished.rs`).
    fn commit_updates(
        &mut self,
        mut batch: Vec<(String, Pending)>,
        mut outcomes: Vec<WriteOutcome>,
    ) -> Result<(), SyncError> {
        if self.by_key {
            let taken: HashSet<String> =
                outcomes.iter().filter(|o| unique_key::key_taken(o)).map(|o| o.trace_id().to_string()).collect();
            if !taken.is_empty() {
                outcomes.retain(|o| !taken.contains(o.trace_id()));
                let (moved, kept): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, p)| taken.contains(&p.pk));
                batch = kept;
                self.queues.create.extend(moved.into_iter().map(|(_, p)| p));
            }
        }
        let (batch, outcomes, gone) = vanished::set_aside(batch, outcomes);
        self.commit_writes(batch, outcomes, false)?;
        self.queues.vanished.extend(gone);
        Ok(())
    }

    /// Starts an upsert batch of `n` queued rows (false, as `send_updates`, when not free).
    fn send_upserts(&mut self, n: usize) -> Result<bool, SyncError> {
        let keys = |p: &Pending| record_keys(None, p);
        let Some(batch) = take_batch(&mut self.queues.upsert, n, &self.busy, keys) else { return Ok(false) };
        let inputs = batch
            .iter()
            .map(|p| WriteInput {
                trace_id: p.pk.clone(),
                id: Some(p.match_value.clone()),
                properties: self.with_match_property(p),
            })
            .collect();
        let held: Vec<String> = batch.iter().flat_map(keys).collect();
        self.hold(&held);
        let (client, path, property) =
            (self.client.clone(), self.meta.path_name.clone(), self.sync.match_on.property.clone());
        self.flight.send(async move {
            let outcomes = client.batch_upsert(&path, &property, inputs).await;
            Answer { keys: held, kind: Answered::Upserts { batch, outcomes, created: false } }
        });
        Ok(true)
    }

    /// Starts a create batch of `n` queued rows (false, as `send_updates`, when not free). Its
    /// intent (keys, match values, batch) is committed before the request starts, so a crash
    /// at any later moment leaves it to be reconciled.
    fn send_creates(&mut self, n: usize) -> Result<bool, SyncError> {
        if self.by_key {
            return Ok(self.send_key_upserts(n));
        }
        let keys = |p: &Pending| record_keys(None, p);
        let Some(batch) = take_batch(&mut self.queues.create, n, &self.busy, keys) else { return Ok(false) };
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
        let held: Vec<String> = batch.iter().flat_map(keys).collect();
        self.hold(&held);
        let (client, path) = (self.client.clone(), self.meta.path_name.clone());
        self.flight.send(async move {
            let outcomes = client.batch_create(&path, inputs).await;
            // Whatever HubSpot wrote, it wrote before this: the index lag counts from here.
            let answered_at = Instant::now();
            Answer { keys: held, kind: Answered::Creates { batch, outcomes, answered_at } }
        });
        Ok(true)
    }

    /// Journals a create batch's answer: inputs whose answer was lost are set aside for
    /// reconciliation instead of being rejected; inputs a stop kept from being sent are
    /// settled (not created; the next run creates them).
    fn commit_creates(
        &mut self,
        batch: Vec<Pending>,
        outcomes: Vec<WriteOutcome>,
        answered_at: Instant,
    ) -> Result<(), SyncError> {
        let mut by_pk: HashMap<String, Pending> = batch.into_iter().map(|p| (p.pk.clone(), p)).collect();
        let (mut answered, mut settled_outcomes) = (Vec::with_capacity(by_pk.len()), Vec::with_capacity(by_pk.len()));
        let (mut detail, mut uncertain, mut unsent) = (None, 0, Vec::new());
        for outcome in outcomes {
            match &outcome {
                WriteOutcome::Rejected { trace_id, code, message } if code == outcome_codes::DELIVERY_UNCERTAIN => {
                    if let Some(p) = by_pk.remove(trace_id) {
                        detail.get_or_insert_with(|| message.clone());
                        self.queues.uncertain.push((answered_at, p));
                        self.run.counts.uncertain += 1;
                        uncertain += 1;
                    }
                }
                WriteOutcome::Rejected { trace_id, code, .. } if code == outcome_codes::STOPPED => {
                    if let Some(p) = by_pk.remove(trace_id) {
                        unsent.push(Entry::Settle { pk: p.pk });
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
            CreatesUncertain { sync: &self.sync.name, records: uncertain, detail: &detail }.emit();
        }
        blocking(|| self.run.record(&unsent))?;
        // Inputs without any outcome are rejected as `NO_RESULT` by `commit_writes`.
        answered.extend(by_pk.into_values());
        self.commit_writes(answered, settled_outcomes, true)
    }

    /// Starts an upsert by hubsync's key property of `n` rows search did not find (false, as
    /// `send_updates`, when not free): idempotent, so retried after 5xx like any upsert, with
    /// no intent to journal or reconcile.
    fn send_key_upserts(&mut self, n: usize) -> bool {
        let keys = |p: &Pending| record_keys(None, p);
        let Some(batch) = take_batch(&mut self.queues.create, n, &self.busy, keys) else { return false };
        let rows = batch.iter().map(|p| (p.pk.clone(), self.with_match_property(p))).collect();
        let inputs = unique_key::upsert_inputs(&self.sync.name, rows);
        let held: Vec<String> = batch.iter().flat_map(keys).collect();
        self.hold(&held);
        let (client, path) = (self.client.clone(), self.meta.path_name.clone());
        self.flight.send(async move {
            let outcomes = client.batch_upsert(&path, KEY_PROPERTY, inputs).await;
            Answer { keys: held, kind: Answered::Upserts { batch, outcomes, created: true } }
        });
        true
    }

    /// Starts a batch read of `n` queued rows by their unique match property.
    fn send_reads(&mut self, n: usize) -> bool {
        let batch: Vec<Pending> = self.queues.read.drain(..n).collect();
        let values = unique_values(&batch);
        let (client, path, property) =
            (self.client.clone(), self.meta.path_name.clone(), self.sync.match_on.property.clone());
        self.lookups_in_flight += 1;
        self.flight.send(async move {
            let found = client.batch_read_by_property(&path, &property, values).await;
            Answer { keys: Vec::new(), kind: Answered::Lookups { batch, found } }
        });
        true
    }

    /// Starts a search for `n` queued rows by their match value (searches keep to their own
    /// per-second bucket in the budget, several at once within it).
    fn send_searches(&mut self, n: usize) -> bool {
        let batch: Vec<Pending> = self.queues.search.drain(..n).collect();
        let values = unique_values(&batch);
        let (client, path, property) =
            (self.client.clone(), self.meta.path_name.clone(), self.sync.match_on.property.clone());
        self.lookups_in_flight += 1;
        self.flight.send(async move {
            let found = client.search_by_values(&path, &property, values).await;
            Answer { keys: Vec::new(), kind: Answered::Lookups { batch, found } }
        });
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pk: &str, value: &str) -> Pending {
        Pending {
            pk: pk.into(),
            hash: 0,
            snapshot: String::new(),
            send: BTreeMap::new(),
            match_value: value.into(),
            rechecked: false,
        }
    }

    fn pks(batch: &[Pending]) -> Vec<&str> {
        batch.iter().map(|p| p.pk.as_str()).collect()
    }

    #[test]
    fn a_batch_leaves_out_rows_whose_record_is_in_a_write_in_flight() {
        let mut queue = vec![row("1", "a@x.com"), row("2", " B@x.com"), row("3", "c@x.com"), row("4", "d@x.com")];
        // A write in flight holds b@x.com (match values compare trimmed, in lower case).
        let busy: HashSet<String> = record_keys(None, &row("9", "b@X.com")).into_iter().collect();
        let batch = take_batch(&mut queue, 3, &busy, |p| record_keys(None, p)).expect("three are free");
        assert_eq!(pks(&batch), ["1", "3", "4"]);
        assert_eq!(pks(&queue), ["2"], "the held row keeps its place for a later batch");
    }

    #[test]
    fn a_batch_is_sent_whole_or_waits() {
        let mut queue = vec![row("1", "a@x.com"), row("2", "b@x.com")];
        let busy: HashSet<String> = record_keys(None, &row("9", "a@x.com")).into_iter().collect();
        assert!(take_batch(&mut queue, 2, &busy, |p| record_keys(None, p)).is_none());
        assert_eq!(pks(&queue), ["1", "2"], "nothing taken");
        // Nothing in flight: everything is free.
        let batch = take_batch(&mut queue, 5, &HashSet::new(), |p| record_keys(None, p)).unwrap();
        assert_eq!(pks(&batch), ["1", "2"]);
        assert!(queue.is_empty());
    }

    #[test]
    fn an_update_holds_its_id_and_its_match_value() {
        let keys = record_keys(Some("42"), &row("1", " Ada@X.com "));
        assert_eq!(keys, ["id:42", "value:ada@x.com"]);
        let busy: HashSet<String> = keys.into_iter().collect();
        // An upsert of the same match value, or an update of the same id, waits.
        let mut upserts = vec![row("2", "ada@x.com")];
        assert!(take_batch(&mut upserts, 1, &busy, |p| record_keys(None, p)).is_none());
        let mut updates = vec![("42".to_string(), row("3", "other@x.com"))];
        assert!(take_batch(&mut updates, 1, &busy, |(id, p)| record_keys(Some(id), p)).is_none());
        assert!(record_keys(None, &row("4", "  ")).is_empty(), "no match value, no key");
    }
}
