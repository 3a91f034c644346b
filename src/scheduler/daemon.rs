//! The long-running side: one worker and one timer per sync, a global limit on runs at once,
//! run requests from the schedule and the admin API, and the graceful stop.
//!
//! Each sync has a slot. Requests to run (scheduled or manual) land in the slot's single
//! pending request, where manual ones merge (a full resync wins); the sync's worker takes it
//! once it holds a permit of the global semaphore and the slot's state-file lock, so a sync
//! never overlaps itself and never runs beside a reset. A scheduled fire time that finds the
//! sync busy is skipped (and counted), as cron does; a manual request always waits its turn.
//!
//! Syncs that write to one HubSpot account share that account's client, and so its one rate
//! budget: `Accounts` is built once for the whole daemon.
//!
//! Stopping: the shared stop flag asks every run to finish the batch in flight, commit it and
//! return (`Cancelled`); queued requests are dropped; timers stop. The state files then hold
//! everything HubSpot acknowledged, so the next start loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use super::metrics::{DaemonStarted, ScheduledRunSkipped, SyncRegistered, SyncRunning};
use crate::accounts::Accounts;
use crate::config::Schedule;
use crate::config::{Config, DaemonSettings, SyncSpec};
use crate::state::{Rejection, RunRecord, StateStore};
use crate::sync::{run_sync, RunOptions, RunStatus, RunSummary};
use hubspot_client::metrics::BudgetObserved;
use hubspot_client::HubSpotClient;

/// Requests remembered per sync, for `GET /syncs/{name}/requests/{id}`.
const REQUESTS_KEPT: usize = 200;
/// Runs and rejections shown per sync.
const STATUS_ROWS: usize = 10;

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config cannot be run as it is.
    #[error("{0}")]
    Config(String),
    /// The admin API cannot listen.
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: SocketAddr, message: String },
}

/// Why a run request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    UnknownSync,
    ShuttingDown,
    /// The sync is running or queued (for a reset).
    Busy,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
        }
    }
}

/// Where a sync is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Idle,
    /// A run is requested and waits for a permit (or for the run or reset before it).
    Queued,
    Running,
    Resetting,
}

/// A run waiting to start: every request merged into it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingRun {
    pub trigger: Trigger,
    pub full: bool,
    pub request_ids: Vec<u64>,
    pub requested_at: String,
}

/// The run in progress.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentRun {
    pub trigger: Trigger,
    pub full: bool,
    pub request_ids: Vec<u64>,
    pub started_at: String,
}

/// One run request and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestInfo {
    pub request_id: u64,
    pub sync: String,
    pub full: bool,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `dropped`.
    pub state: String,
    pub requested_at: String,
    /// The run that carried it out, once finished.
    pub run: Option<RunSummary>,
    /// Why it did not run, when dropped.
    pub error: Option<String>,
}

/// What the state file said when last read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoredStatus {
    pub snapshot_rows: u64,
    pub rejected_total: u64,
    pub runs: Vec<RunRecord>,
    pub rejections: Vec<Rejection>,
    pub read_at: String,
}

/// The schedule of a sync, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleInfo {
    /// `cron` or `interval`.
    pub kind: &'static str,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub interval_secs: Option<u64>,
    /// Longest expected gap between runs.
    pub period_secs: f64,
    pub description: String,
}

impl ScheduleInfo {
    fn of(schedule: &Schedule) -> ScheduleInfo {
        let (cron, timezone, interval_secs) = match schedule {
            Schedule::Cron { expression, timezone, .. } => (Some(expression.clone()), Some(timezone.to_string()), None),
            Schedule::Interval { every } => (None, None, Some(every.as_secs())),
        };
        ScheduleInfo {
            kind: schedule.kind(),
            cron,
            timezone,
            interval_secs,
            period_secs: schedule.period_secs(),
            description: schedule.to_string(),
        }
    }
}

/// The status of one sync: `GET /syncs` and `GET /syncs/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatus {
    pub sync: String,
    pub object: String,
    pub account: String,
    pub schedule: Option<ScheduleInfo>,
    pub state: Phase,
    pub next_run_at: Option<String>,
    pub running: Option<CurrentRun>,
    pub queued: Option<PendingRun>,
    /// The last run this daemon finished.
    pub last_run: Option<RunSummary>,
    pub last_success_at: Option<String>,
    /// Scheduled fire times skipped because the sync was busy, since the daemon started.
    pub skipped_scheduled_runs: u64,
    pub snapshot_rows: Option<u64>,
    /// Records currently rejected (they are retried on every run).
    pub rejected_total: Option<u64>,
    /// The last runs in the state file, newest first.
    pub runs: Vec<RunRecord>,
    /// Currently rejected records (only in `GET /syncs/{name}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejections: Option<Vec<Rejection>>,
    /// When the state file was last read; a running sync's file is not read until it ends.
    pub status_read_at: Option<String>,
}

/// Everything the daemon knows, shared by workers, timers and the admin API.
pub struct Shared {
    config: Config,
    accounts: Accounts,
    slots: BTreeMap<String, Arc<Slot>>,
    permits: Semaphore,
    /// Given to every run: set to make runs stop after the batch in flight.
    stop_runs: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    next_request_id: AtomicU64,
    ready: AtomicBool,
    started_at: DateTime<Utc>,
}

/// One sync in the daemon.
struct Slot {
    spec: SyncSpec,
    state: Mutex<SlotState>,
    /// Wakes the worker when a request is pending.
    wake: Notify,
    /// Held while the state file is in use (a run, a reset, a status read).
    store: tokio::sync::Mutex<()>,
}

struct SlotState {
    phase: Phase,
    pending: Option<PendingRun>,
    current: Option<CurrentRun>,
    next_run_at: Option<DateTime<Utc>>,
    last_run: Option<RunSummary>,
    last_success_at: Option<String>,
    skipped: u64,
    stored: Option<StoredStatus>,
    requests: BTreeMap<u64, RequestInfo>,
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Shared {
    /// Checks that every sync can run (its account has a token) and builds the clients.
    pub fn new(config: Config) -> Result<Arc<Shared>, DaemonError> {
        let accounts = Accounts::build(&config).map_err(|e| DaemonError::Config(e.to_string()))?;
        let mut problems = Vec::new();
        let mut slots = BTreeMap::new();
        for spec in &config.syncs {
            if let Err(e) = accounts.client(&spec.hubspot) {
                problems.push(e.to_string());
            }
            let state = SlotState {
                phase: Phase::Idle,
                pending: None,
                current: None,
                next_run_at: None,
                last_run: None,
                last_success_at: None,
                skipped: 0,
                stored: None,
                requests: BTreeMap::new(),
            };
            let slot =
                Slot { spec: spec.clone(), state: Mutex::new(state), wake: Notify::new(), store: Default::default() };
            slots.insert(spec.name.clone(), Arc::new(slot));
        }
        problems.dedup();
        if !problems.is_empty() {
            return Err(DaemonError::Config(problems.join("\n")));
        }
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Shared {
            permits: Semaphore::new(config.daemon.max_concurrent_runs.max(1)),
            config,
            accounts,
            slots,
            stop_runs: Arc::new(AtomicBool::new(false)),
            shutdown,
            next_request_id: AtomicU64::new(1),
            ready: AtomicBool::new(false),
            started_at: Utc::now(),
        }))
    }

    pub fn settings(&self) -> &DaemonSettings {
        &self.config.daemon
    }

    /// True once the workers run, until the stop begins.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn is_stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn sync_names(&self) -> Vec<String> {
        self.slots.keys().cloned().collect()
    }

    fn client(&self, spec: &SyncSpec) -> &HubSpotClient {
        // Checked in `new`.
        self.accounts.client(&spec.hubspot).expect("every sync's account has a client")
    }

    /// Asks for a run of `name`. Scheduled requests are skipped (`Ok(None)`) when the sync is
    /// busy; manual ones wait their turn, merged with any request already waiting.
    pub fn request_run(&self, name: &str, trigger: Trigger, full: bool) -> Result<Option<RequestInfo>, Refused> {
        let slot = self.slots.get(name).ok_or(Refused::UnknownSync)?;
        if self.is_stopping() {
            return Err(Refused::ShuttingDown);
        }
        let mut st = slot.lock();
        if trigger == Trigger::Schedule && (st.phase != Phase::Idle || st.pending.is_some()) {
            st.skipped += 1;
            drop(st);
            ScheduledRunSkipped { sync: name }.emit();
            return Ok(None);
        }
        let id = self.next_request_id.fetch_add(1, Ordering::SeqCst);
        let requested_at = now_text();
        let pending = st.pending.get_or_insert_with(|| PendingRun {
            trigger,
            full: false,
            request_ids: Vec::new(),
            requested_at: requested_at.clone(),
        });
        pending.full |= full;
        pending.request_ids.push(id);
        if trigger == Trigger::Api {
            pending.trigger = Trigger::Api;
        }
        if st.phase == Phase::Idle {
            st.phase = Phase::Queued;
        }
        let info = RequestInfo {
            request_id: id,
            sync: name.to_string(),
            full,
            state: "queued".into(),
            requested_at,
            run: None,
            error: None,
        };
        st.requests.insert(id, info.clone());
        while st.requests.len() > REQUESTS_KEPT {
            st.requests.pop_first();
        }
        drop(st);
        slot.wake.notify_one();
        tracing::info!(sync = name, trigger = trigger.as_str(), full, request_id = id, "Sync run requested.");
        Ok(Some(info))
    }

    /// What became of a run request.
    pub fn request_info(&self, name: &str, id: u64) -> Option<RequestInfo> {
        self.slots.get(name)?.lock().requests.get(&id).cloned()
    }

    /// Forgets a sync's snapshot, so its next run compares against nothing. Refused while the
    /// sync is running or queued.
    pub async fn reset(&self, name: &str) -> Result<Result<StoredStatus, String>, Refused> {
        let slot = self.slots.get(name).ok_or(Refused::UnknownSync)?;
        {
            let mut st = slot.lock();
            if st.phase != Phase::Idle {
                return Err(Refused::Busy);
            }
            st.phase = Phase::Resetting;
        }
        let guard = slot.store.lock().await;
        let path = self.config.state_path(&slot.spec);
        let result = tokio::task::spawn_blocking(move || {
            let mut store = StateStore::open(&path).map_err(|e| e.to_string())?;
            store.reset_snapshot().map_err(|e| e.to_string())?;
            read_status(&store).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the reset stopped: {e}")));
        drop(guard);
        let mut st = slot.lock();
        st.phase = if st.pending.is_some() { Phase::Queued } else { Phase::Idle };
        match &result {
            Ok(stored) => {
                st.stored = Some(stored.clone());
                tracing::info!(sync = name, "Sync snapshot forgotten; the next run compares against nothing.");
            }
            Err(e) => tracing::warn!(sync = name, error = %e, "Sync reset failed."),
        }
        Ok(result)
    }

    /// The status of one sync; reads its state file unless a run holds it.
    pub async fn status(&self, name: &str, with_rejections: bool) -> Option<SyncStatus> {
        let slot = self.slots.get(name)?;
        self.refresh_stored(slot).await;
        Some(self.status_of(slot, with_rejections))
    }

    /// The status of every sync.
    pub async fn statuses(&self) -> Vec<SyncStatus> {
        let mut out = Vec::new();
        for slot in self.slots.values() {
            self.refresh_stored(slot).await;
            out.push(self.status_of(slot, false));
        }
        out
    }

    async fn refresh_stored(&self, slot: &Slot) {
        let Ok(guard) = slot.store.try_lock() else { return };
        let path = self.config.state_path(&slot.spec);
        if !path.exists() {
            return;
        }
        let read = tokio::task::spawn_blocking(move || {
            let store = StateStore::open(&path).map_err(|e| e.to_string())?;
            read_status(&store).map_err(|e| e.to_string())
        })
        .await;
        drop(guard);
        match read {
            Ok(Ok(stored)) => slot.lock().stored = Some(stored),
            Ok(Err(e)) => tracing::debug!(sync = %slot.spec.name, error = %e, "Could not read the state file."),
            Err(_) => {}
        }
    }

    fn status_of(&self, slot: &Slot, with_rejections: bool) -> SyncStatus {
        let st = slot.lock();
        let stored = st.stored.clone();
        SyncStatus {
            sync: slot.spec.name.clone(),
            object: slot.spec.object.clone(),
            account: slot.spec.hubspot.clone(),
            schedule: slot.spec.schedule.as_ref().map(ScheduleInfo::of),
            state: st.phase,
            next_run_at: st.next_run_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            running: st.current.clone(),
            queued: st.pending.clone(),
            last_run: st.last_run.clone(),
            last_success_at: st.last_success_at.clone(),
            skipped_scheduled_runs: st.skipped,
            snapshot_rows: stored.as_ref().map(|s| s.snapshot_rows),
            rejected_total: stored.as_ref().map(|s| s.rejected_total),
            runs: stored.as_ref().map(|s| s.runs.clone()).unwrap_or_default(),
            rejections: with_rejections.then(|| stored.as_ref().map(|s| s.rejections.clone()).unwrap_or_default()),
            status_read_at: stored.map(|s| s.read_at),
        }
    }

    /// Updates the rate-budget gauges of every account in use (called when metrics are read).
    pub fn observe_budgets(&self) {
        let accounts: BTreeSet<&str> = self.slots.values().map(|s| s.spec.hubspot.as_str()).collect();
        for account in accounts {
            if let Ok(client) = self.accounts.client(account) {
                let snapshot = client.budget().snapshot();
                BudgetObserved { account, snapshot: &snapshot }.emit();
            }
        }
    }

    /// Starts the stop: no new runs, runs in progress finish their batch and commit.
    pub fn begin_shutdown(&self) {
        if self.shutdown.send_replace(true) {
            return;
        }
        self.ready.store(false, Ordering::SeqCst);
        self.stop_runs.store(true, Ordering::SeqCst);
        tracing::info!("Stopping: no new runs; runs in progress finish the batch in flight and commit.");
        for slot in self.slots.values() {
            let mut st = slot.lock();
            if let Some(pending) = st.pending.take() {
                for id in pending.request_ids {
                    if let Some(r) = st.requests.get_mut(&id) {
                        r.state = "dropped".into();
                        r.error = Some("the daemon stopped before the run started".into());
                    }
                }
            }
            if st.phase == Phase::Queued {
                st.phase = Phase::Idle;
            }
            st.next_run_at = None;
            drop(st);
            slot.wake.notify_one();
        }
    }
}

/// Reads what the status shows from an open state file.
fn read_status(store: &StateStore) -> Result<StoredStatus, crate::state::StateError> {
    let runs = store.runs(STATUS_ROWS)?;
    let (rejections, rejected_total) = store.rejections(STATUS_ROWS)?;
    Ok(StoredStatus { snapshot_rows: store.snapshot_rows()?, rejected_total, runs, rejections, read_at: now_text() })
}

/// Unix time of a `YYYY-MM-DD HH:MM:SS` timestamp from the state file (UTC).
fn stored_time_unix(text: &str) -> Option<f64> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc().timestamp() as f64)
}

/// A running daemon: its workers, timers and admin API.
pub struct RunningDaemon {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: JoinSet<()>,
    server: tokio::task::JoinHandle<()>,
    server_stop: watch::Sender<bool>,
}

impl RunningDaemon {
    /// Starts the daemon: reads each sync's state, binds the admin API on `listen`, starts the
    /// workers and timers.
    pub async fn start(config: Config, listen: SocketAddr) -> Result<RunningDaemon, DaemonError> {
        if let Some(message) = DaemonSettings::bind_problem(listen, config.daemon.admin_token.as_ref()) {
            return Err(DaemonError::Config(format!(
                "{message}; listen on 127.0.0.1, or set daemon.admin_token in {}",
                config.path.display()
            )));
        }
        let shared = Shared::new(config)?;
        for slot in shared.slots.values() {
            shared.refresh_stored(slot).await;
            let mut st = slot.lock();
            let last_success = st.stored.as_ref().and_then(|s| {
                s.runs.iter().find(|r| r.status == RunStatus::Succeeded.as_str()).and_then(|r| r.finished_at.clone())
            });
            st.last_success_at = last_success.as_deref().and_then(stored_time_unix).and_then(|t| {
                DateTime::from_timestamp(t as i64, 0).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            });
            SyncRegistered {
                sync: &slot.spec.name,
                account: &slot.spec.hubspot,
                schedule_interval_secs: slot.spec.schedule.as_ref().map(Schedule::period_secs),
                last_success_unix: last_success.as_deref().and_then(stored_time_unix),
                last_run_succeeded: st.stored.as_ref().and_then(|s| {
                    s.runs
                        .iter()
                        .find(|r| r.status == "succeeded" || r.status == "failed")
                        .map(|r| r.status == "succeeded")
                }),
                snapshot_rows: st.stored.as_ref().map(|s| s.snapshot_rows),
            }
            .emit();
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| DaemonError::Bind { addr: listen, message: e.to_string() })?;
        let addr = listener.local_addr().map_err(|e| DaemonError::Bind { addr: listen, message: e.to_string() })?;
        let (server_stop, mut stop_rx) = watch::channel(false);
        let app = super::admin::router(shared.clone());
        let server = tokio::spawn(async move {
            let stopped = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                tracing::error!(error = %e, "The admin API stopped.");
            }
        });
        let mut tasks = JoinSet::new();
        for slot in shared.slots.values() {
            tasks.spawn(worker(shared.clone(), slot.clone()));
            if let Some(schedule) = slot.spec.schedule.clone() {
                tasks.spawn(timer(shared.clone(), slot.clone(), schedule));
            }
        }
        shared.ready.store(true, Ordering::SeqCst);
        DaemonStarted { listen: &addr.to_string(), syncs: shared.slots.len() }.emit();
        Ok(RunningDaemon { shared, addr, tasks, server, server_stop })
    }

    /// The admin API's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Begins the graceful stop (also what the first SIGTERM or SIGINT does).
    pub fn begin_shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// Waits until every run has finished and committed, then stops the admin API.
    pub async fn wait(mut self) {
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done {
                if e.is_panic() {
                    tracing::error!(error = %e, "A daemon task panicked.");
                }
            }
        }
        let _ = self.server_stop.send(true);
        let _ = self.server.await;
        tracing::info!("hubsync daemon stopped.");
    }
}

/// Runs a sync's requests one at a time.
async fn worker(shared: Arc<Shared>, slot: Arc<Slot>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        // Wait for a request.
        loop {
            if *shutdown.borrow() {
                return;
            }
            if slot.lock().pending.is_some() {
                break;
            }
            tokio::select! {
                _ = slot.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        // Wait for a permit and for the state file.
        let permit = tokio::select! {
            p = shared.permits.acquire() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let store_guard = tokio::select! {
            g = slot.store.lock() => g,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Some(run) = take_pending(&slot) else { continue };
        let options = RunOptions {
            full: run.full,
            trigger: run.trigger.as_str().to_string(),
            stop: Some(shared.stop_runs.clone()),
            ..RunOptions::default()
        };
        SyncRunning { sync: &slot.spec.name, running: true }.emit();
        let result = run_sync(&shared.config, &slot.spec, shared.client(&slot.spec), &options).await;
        SyncRunning { sync: &slot.spec.name, running: false }.emit();
        let summary = match result {
            Ok(summary) => summary,
            Err(e) => RunSummary {
                sync: slot.spec.name.clone(),
                run_id: 0,
                status: RunStatus::Failed,
                counts: Default::default(),
                duration_secs: 0.0,
                error: Some(e.to_string()),
            },
        };
        // Read the state file while still holding it, so the status shows this run.
        let path = shared.config.state_path(&slot.spec);
        let stored = tokio::task::spawn_blocking(move || StateStore::open(&path).and_then(|s| read_status(&s)))
            .await
            .ok()
            .and_then(Result::ok);
        drop(store_guard);
        drop(permit);
        finish(&slot, &run, summary, stored);
    }
}

/// Moves the pending request to the running slot.
fn take_pending(slot: &Slot) -> Option<CurrentRun> {
    let mut st = slot.lock();
    let pending = st.pending.take()?;
    for id in &pending.request_ids {
        if let Some(r) = st.requests.get_mut(id) {
            r.state = "running".into();
        }
    }
    let run = CurrentRun {
        trigger: pending.trigger,
        full: pending.full,
        request_ids: pending.request_ids,
        started_at: now_text(),
    };
    st.current = Some(run.clone());
    st.phase = Phase::Running;
    Some(run)
}

fn finish(slot: &Slot, run: &CurrentRun, summary: RunSummary, stored: Option<StoredStatus>) {
    let mut st = slot.lock();
    for id in &run.request_ids {
        if let Some(r) = st.requests.get_mut(id) {
            r.state = summary.status.as_str().to_string();
            r.run = Some(summary.clone());
        }
    }
    if summary.status == RunStatus::Succeeded {
        st.last_success_at = Some(now_text());
    }
    if stored.is_some() {
        st.stored = stored;
    }
    st.last_run = Some(summary);
    st.current = None;
    st.phase = if st.pending.is_some() { Phase::Queued } else { Phase::Idle };
}

/// Fires a sync's schedule until the stop.
async fn timer(shared: Arc<Shared>, slot: Arc<Slot>, schedule: Schedule) {
    let mut shutdown = shared.shutdown.subscribe();
    let anchor = shared.started_at;
    let name = slot.spec.name.clone();
    if schedule.runs_at_start() {
        let _ = shared.request_run(&name, Trigger::Schedule, false);
    }
    let mut after = Utc::now();
    loop {
        let Some(next) = schedule.next_after_anchored(after, anchor) else {
            tracing::warn!(sync = %name, "The schedule has no more fire times.");
            return;
        };
        slot.lock().next_run_at = Some(next);
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        // The clock may have jumped; fire only once per wake-up, then look from now.
        after = Utc::now().max(next);
        if shared.request_run(&name, Trigger::Schedule, false).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_are_read_as_utc() {
        assert_eq!(stored_time_unix("1970-01-01 00:01:40"), Some(100.0));
        assert_eq!(stored_time_unix("garbage"), None);
    }
}
