//! hubsync: keeps HubSpot in step with SQL models in a warehouse.
//!
//! The library holds every part of the daemon; `main.rs` is only the command line on top.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod private_files;
pub mod scheduler;
pub mod source;
pub mod state;
pub mod sync;
pub mod telemetry;
