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
//! Files: `types.rs` (the values), `read.rs` (reads), `migrate.rs` (schema versions and their
//! migrations), `store.rs` (opening, the second read's tables and the merge), `staging.rs` (the
//! first read's rows and the diff), `staging_file.rs` (the file they stream to) and `diff.rs`
//! (the diff in one pass over that file), `run.rs` (a
//! run's record and journal), `links.rs` (associations and list members), `vanished.rs`
//! (associated records and lists that changed in HubSpot), `removals.rs` (rows that left, stale
//! links, and what the delete guard counts), `budget.rs` (the memory budget every phase runs
//! within, and the temp work tables).

mod budget;
mod diff;
mod links;
mod migrate;
mod read;
mod removals;
mod run;
mod staging;
mod staging_file;
mod store;
mod types;
mod vanished;

pub use budget::{temp_dir_of, StateLimits};
pub use links::{LinkCandidate, LinkFailure, PendingLink};
pub use migrate::{Migration, MIGRATIONS, SCHEMA_VERSION};
pub use read::StateReader;
pub use removals::{RemovalScope, RemovalTotals, StaleLink};
pub use run::Run;
pub use store::StateStore;
pub use types::{
    waits_for_change, ChangeRow, DiffTotals, Entry, InvalidRow, PendingCreate, Rejection, RunCounts, RunRecord,
    StateError,
};
pub use vanished::{list_checked_key, list_fingerprint_key};
