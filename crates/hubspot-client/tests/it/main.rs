//! The client's integration tests, one binary: the client against the emulator (and, where a
//! fault must be exact, a hand-made axum server) over real HTTP.

mod client;
mod concurrency;
mod removals;
mod support;
