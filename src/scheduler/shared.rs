//! The daemon's shared state: one slot per sync, the global run limit, the stop flag, and the
//! operations the admin API and the scheduling loop perform on them (request a run, reset,
//! read the status, begin the stop).
//!
//! Each sync has a slot. Requests to run (scheduled or manual) land in the slot's single
//! pending request, where manual ones merge (a full resync wins); the sync's worker takes it
//! once it holds a permit of the global semaphore and the slot's state-file lock, so a sync
//! never overlaps itself and never runs beside a reset. A scheduled fire time that finds the
//! sync busy is skipped (and counted), as cron does; a manual request always waits its turn.
//!
//! Syncs that write to one HubSpot account share that account's client, and so its one rate
//! budget: `Accounts` is built once for the whole daemon.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{watch, Notify, Semaphore};

use super::access::Access;
use super::metrics::ScheduledRunSkipped;
use super::status::{
    now_text, read_status, CurrentRun, PendingRun, Phase, RequestInfo, ScheduleInfo, StoredStatus, SyncStatus, Trigger,
};
use crate::accounts::Accounts;
use crate::config::{Config, DaemonSettings, SyncSpec};
use crate::state::{StateLimits, StateReader, StateStore};
use crate::sync::RunSummary;
use hubspot_client::metrics::BudgetObserved;
use hubspot_client::HubSpotClient;

/// Requests remembered per sync, for `GET /syncs/{name}/requests/{id}`.
const REQUESTS_KEPT: usize = 200;

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

/// Everything the daemon knows, shared by workers, timers and the admin API.
pub struct Shared {
    pub(super) config: Config,
    accounts: Accounts,
    pub(super) slots: BTreeMap<String, Arc<Slot>>,
    pub(super) permits: Semaphore,
    /// Given to every run: set to make runs stop once the requests in flight are answered.
    pub(super) stop_runs: Arc<AtomicBool>,
    pub(super) shutdown: watch::Sender<bool>,
    next_request_id: AtomicU64,
    pub(super) ready: AtomicBool,
    pub(super) started_at: DateTime<Utc>,
    access: Access,
}

/// One sync in the daemon.
pub(super) struct Slot {
    pub(super) spec: SyncSpec,
    state: Mutex<SlotState>,
    /// Wakes the worker when a request is pending.
    pub(super) wake: Notify,
    /// Held while the state file is in use (a run, a reset, a status read).
    pub(super) store: tokio::sync::Mutex<()>,
}

pub(super) struct SlotState {
    pub(super) phase: Phase,
    pub(super) pending: Option<PendingRun>,
    pub(super) current: Option<CurrentRun>,
    pub(super) next_run_at: Option<DateTime<Utc>>,
    pub(super) last_run: Option<RunSummary>,
    pub(super) last_success_at: Option<String>,
    pub(super) skipped: u64,
    pub(super) stored: Option<StoredStatus>,
    pub(super) requests: BTreeMap<u64, RequestInfo>,
}

impl Slot {
    pub(super) fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Shared {
    /// Checks that every sync can run (its account has a token) and builds the clients.
    pub fn new(config: Config, access: Access) -> Result<Arc<Shared>, DaemonError> {
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
            access,
        }))
    }

    pub fn settings(&self) -> &DaemonSettings {
        &self.config.daemon
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Who may use the admin API.
    pub fn access(&self) -> &Access {
        &self.access
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

    pub(super) fn client(&self, spec: &SyncSpec) -> &HubSpotClient {
        // Checked in `new`.
        self.accounts.client(&spec.hubspot).expect("every sync's account has a client")
    }

    /// Asks for a run of `name`. Scheduled requests are skipped (`Ok(None)`) when the sync is
    /// busy; manual ones wait their turn, merged with any request already waiting.
    pub fn request_run(&self, name: &str, trigger: Trigger, full: bool) -> Result<Option<RequestInfo>, Refused> {
        self.request_run_with(name, trigger, full, false)
    }

    /// `request_run`, with `allow_deletes`: the run sends removals the delete guard would hold
    /// (merged like `full`: one request that allows them lets the merged run send them).
    pub fn request_run_with(
        &self,
        name: &str,
        trigger: Trigger,
        full: bool,
        allow_deletes: bool,
    ) -> Result<Option<RequestInfo>, Refused> {
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
            allow_deletes: false,
            request_ids: Vec::new(),
            requested_at: requested_at.clone(),
        });
        pending.full |= full;
        pending.allow_deletes |= allow_deletes;
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
        let limits = StateLimits::of(&self.config);
        let result = tokio::task::spawn_blocking(move || {
            let mut store = StateStore::open_with(&path, &limits).map_err(|e| e.to_string())?;
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

    pub(super) async fn refresh_stored(&self, slot: &Slot) {
        let Ok(guard) = slot.store.try_lock() else { return };
        let path = self.config.state_path(&slot.spec);
        if !path.exists() {
            return;
        }
        let read = tokio::task::spawn_blocking(move || {
            // Read-only: a status read never writes the state file.
            let store = StateReader::open_read_only(&path).map_err(|e| e.to_string())?;
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
        tracing::info!("Stopping: no new runs; runs in progress wait for the requests in flight and commit them.");
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
