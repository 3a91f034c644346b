//! hubsync's integration tests, one binary (DuckDB links once): real syncs against real
//! PostgreSQL and the emulator over real HTTP, the daemon, the CLI and the metrics.

mod auth;
mod bench;
mod cli;
#[allow(dead_code)]
mod common;
mod creates;
mod daemon;
mod host_safety;
mod links;
mod metrics;
mod migration;
mod pipelining;
mod rejections;
mod removals;
mod second_read;
mod state_budget;
mod sync_core;
mod sync_resilience;
mod unique_key;
mod vanished;
mod warehouse_tls;
mod warehouses;
