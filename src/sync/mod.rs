//! The sync runner: source -> diff -> plan -> deliver -> commit (`runner.rs`), the pure
//! routing and property decisions (`request_builder.rs`), object resolution (`object.rs`),
//! and the read-only views of a sync: `plan.rs` and `validate.rs`.

mod links;
pub mod metrics;
mod object;
mod plan;
mod request_builder;
mod runner;
mod validate;

pub use links::{parse_link_cell, LinkValue, ASSOCIATION_BATCH_SIZE, LIST_BATCH_SIZE};
pub use object::{check_mappings, resolve_object, resolve_object_name, ObjectMeta};
pub(crate) use plan::batches;
pub use plan::{plan_sync, Plan};
pub use runner::{run_sync, RunOptions, RunStatus, RunSummary, BATCH_SIZE};
pub use validate::{validate_sync, Finding, Severity};

use crate::source::SourceError;
use crate::state::StateError;
use hubspot_client::HubSpotError;

/// Why a sync could not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The sync's configuration does not fit the warehouse or the portal.
    #[error("sync `{sync}`: {key}: {message}")]
    Config { sync: String, key: String, message: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    HubSpot(#[from] HubSpotError),
}

impl SyncError {
    /// The error as the user reads it: a missing scope names the sync, the call and the scope.
    pub fn describe(&self, sync: &str) -> String {
        match self {
            SyncError::HubSpot(e) => crate::auth::describe_hubspot_error(sync, e),
            other => other.to_string(),
        }
    }
}
