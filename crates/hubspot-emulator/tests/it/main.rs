//! The emulator's integration tests, one binary: each module starts emulators and talks to them
//! over real HTTP, checking statuses, headers and bodies against HubSpot's recorded answers.

mod associations;
mod limits;
mod lists;
mod oauth;
mod objects;
mod properties;
mod recorded;
mod removals;
mod search;
#[allow(dead_code)]
mod support;
