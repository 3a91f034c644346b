//! The long-running side of hubsync (`hubsync run`): schedules (`config::Schedule`), the
//! daemon's shared state (`shared.rs`), what its status shows (`status.rs`), the scheduling
//! loop of workers and timers (`scheduling.rs`), the daemon that wires them together with a
//! global run limit and a graceful stop (`daemon.rs`), the admin HTTP API (`admin.rs`) and who
//! may use it (`access.rs`).

mod access;
mod admin;
mod daemon;
pub mod metrics;
mod scheduling;
mod shared;
mod status;

pub use crate::config::{parse_timezone, Schedule};
pub use access::Access;
pub use admin::router;
pub use daemon::RunningDaemon;
pub use shared::{DaemonError, Refused, Shared};
pub use status::{CurrentRun, PendingRun, Phase, RequestInfo, ScheduleInfo, StoredStatus, SyncStatus, Trigger};
