//! The state of each sync, in its own DuckDB file: the snapshot of what HubSpot acknowledged,
//! the ids learned, the journal that makes acknowledgements crash-safe, rejections and runs
//! (`store.rs`), and delivered associations and list members (`links.rs`). The SQL schema lives
//! in `sql/` and is compiled in.

mod links;
mod store;

pub use links::{LinkCandidate, LinkFailure, PendingLink};
pub use store::{ChangeRow, DiffTotals, Entry, InvalidRow, Rejection, RunCounts, RunRecord, StateError, StateStore};
