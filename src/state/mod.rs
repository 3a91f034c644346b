//! The state of each sync, in its own DuckDB file: the snapshot of what HubSpot acknowledged,
//! the ids learned, the journal that makes acknowledgements crash-safe, rejections, pending
//! creates and runs. The SQL schema lives in `sql/` and is compiled in.
//!
//! The order of calls is carried by types:
//! - [`StateReader::open_read_only`] reads a file without writing it (`status`, the daemon's
//!   status routes);
//! - [`StateStore::open`] opens it for writing (creating and migrating it, merging what a crash
//!   left); [`StateStore::open_scratch`] gives `plan` a store that cannot write the file;
//! - [`StateStore::begin_run`] gives the only [`Run`], which journals entries under its id and
//!   with its counts, and is consumed by [`Run::finish`].
//!
//! Files: `types.rs` (the values), `read.rs` (reads), `store.rs` (opening, staging, diff and
//! merge), `run.rs` (a run's record and journal), `links.rs` (associations and list members),
//! `budget.rs` (the memory budget every phase runs within, and the temp work tables).

mod budget;
mod links;
mod read;
mod run;
mod store;
mod types;

pub use budget::{temp_dir_of, StateLimits};
pub use links::{LinkCandidate, LinkFailure, PendingLink};
pub use read::StateReader;
pub use run::Run;
pub use store::StateStore;
pub use types::{
    waits_for_change, ChangeRow, DiffTotals, Entry, InvalidRow, PendingCreate, Rejection, RunCounts, RunRecord,
    StateError,
};
