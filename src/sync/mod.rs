//! The sync runner: source -> diff -> plan -> deliver -> commit. The run lifecycle (`run.rs`)
//! stages and diffs the model (`stage.rs`), delivers the records (`deliver.rs`) and then
//! associations and list members (`links.rs`); `route.rs` holds the pure routing and property
//! decisions, `unique_key.rs` hubsync's own unique key property for idempotent creates,
//! `object.rs` the object resolution, `options.rs` what a run is asked and answers,
//! `blocking.rs` how DuckDB work runs from async code, `pipeline.rs` the requests a run has
//! in flight; `removals.rs` what a run takes away (archives, clears, unlinks, list removals)
//! and the delete guard; `plan.rs` and `validate.rs` are the read-only views of a sync.

mod blocking;
mod deliver;
mod links;
pub mod metrics;
mod object;
mod options;
mod pipeline;
mod plan;
mod removals;
mod route;
mod run;
mod stage;
mod unique_key;
mod validate;

pub use links::{parse_link_cell, LinkValue, ASSOCIATION_BATCH_SIZE, LIST_BATCH_SIZE};
pub use object::{check_mappings, resolve_object, resolve_object_name, ObjectMeta};
pub use options::{Phases, RunOptions, RunStatus, RunSummary};
pub(crate) use plan::batches;
pub use plan::{plan_sync, Plan};
pub use removals::Removals;
pub use route::BATCH_SIZE;
pub use run::run_sync;
pub use unique_key::{KEY_GROUP, KEY_PROPERTY};
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
