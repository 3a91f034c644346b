//! The scheduling loop: one worker and one timer per sync. A timer turns its sync's schedule
//! into run requests; a worker takes its sync's pending request once it holds a permit of the
//! global limit and the slot's state-file lock, runs it, and records what became of it.
//!
//! Stopping: the shared stop flag asks every run to wait for the requests in flight, commit
//! them and return (`Cancelled`); timers stop, and workers take no new request.

use std::sync::Arc;

use chrono::Utc;

use super::metrics::SyncRunning;
use super::shared::{Shared, Slot};
use super::status::{now_text, read_status, CurrentRun, Phase, StoredStatus, Trigger};
use crate::config::Schedule;
use crate::state::{StateLimits, StateStore};
use crate::sync::{run_sync, RunOptions, RunStatus, RunSummary};

/// Runs a sync's requests one at a time.
pub(super) async fn worker(shared: Arc<Shared>, slot: Arc<Slot>) {
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
            allow_deletes: run.allow_deletes,
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
                phases: Default::default(),
            },
        };
        // Read the state file while still holding it, so the status shows this run.
        let path = shared.config.state_path(&slot.spec);
        let limits = StateLimits::of(&shared.config);
        let stored =
            tokio::task::spawn_blocking(move || StateStore::open_with(&path, &limits).and_then(|s| read_status(&s)))
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
        allow_deletes: pending.allow_deletes,
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
    // A held run sent everything but its removals: its records are fresh.
    if matches!(summary.status, RunStatus::Succeeded | RunStatus::Held) {
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
pub(super) async fn timer(shared: Arc<Shared>, slot: Arc<Slot>, schedule: Schedule) {
    let mut shutdown = shared.shutdown.subscribe();
    let anchor = shared.started_at;
    let name = slot.spec.name.clone();
    if schedule.runs_at_start() {
        let _ = shared.request_run(&name, Trigger::Schedule, false);
    }
    let mut after = Utc::now();
    loop {
        let Some(next) = schedule.next_after_anchored(after, anchor) else {
            slot.lock().next_run_at = None;
            tracing::error!(
                sync = %name,
                schedule = %schedule,
                "The schedule has no more fire times: the sync is no longer run on schedule (hubsync trigger still runs it)."
            );
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
