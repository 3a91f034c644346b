//! The long-running side: `RunningDaemon` wires the shared state, the admin API and the
//! scheduling loop together, starts them, and waits for the graceful stop.
//!
//! Stopping: the shared stop flag asks every run to wait for the requests in flight, commit
//! them and return (`Cancelled`); queued requests are dropped; timers stop. The state files then hold
//! everything HubSpot acknowledged, so the next start loses nothing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::access::Access;
use super::metrics::{DaemonStarted, SyncRegistered};
use super::scheduling::{timer, worker};
use super::shared::{DaemonError, Shared};
use super::status::stored_time_unix;
use crate::auth::{admin_token_path, load_or_create_admin_token};
use crate::config::{Config, DaemonSettings, Schedule};
use crate::sync::RunStatus;

/// The admin API's access rules: the config's token, else the one generated in the state
/// directory (created, mode 0700, on the first start).
fn admin_access(config: &Config, listen: SocketAddr) -> Result<Access, DaemonError> {
    if let Some(token) = &config.daemon.admin_token {
        return Ok(Access::new(listen, token.clone(), true));
    }
    let token = load_or_create_admin_token(&config.state_dir)
        .map_err(|e| DaemonError::Config(format!("{e} (or set daemon.admin_token in {})", config.path.display())))?;
    tracing::info!(
        file = %admin_token_path(&config.state_dir).display(),
        "The admin API's runs and resets need the bearer token in this file (mode 0600)."
    );
    Ok(Access::new(listen, token, false))
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
        let access = admin_access(&config, listen)?;
        let shared = Shared::new(config, access)?;
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
