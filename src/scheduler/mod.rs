//! The long-running side of hubsync (`hubsync run`): schedules (`config::Schedule`), the daemon that
//! runs every sync on its own schedule with a global run limit and a graceful stop
//! (`daemon.rs`), and the admin HTTP API beside it (`admin.rs`).

mod admin;
mod daemon;
pub mod metrics;

pub use crate::config::{parse_timezone, Schedule};
pub use admin::router;
pub use daemon::{
    CurrentRun, DaemonError, PendingRun, Phase, Refused, RequestInfo, RunningDaemon, ScheduleInfo, Shared,
    StoredStatus, SyncStatus, Trigger,
};
