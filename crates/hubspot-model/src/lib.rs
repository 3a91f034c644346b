//! HubSpot's object model as hubsync and its emulator both see it: the standard objects, the
//! association types HubSpot defines between them, and the secret type that keeps tokens out of
//! logs. Leaf values only: this crate imports nothing of the workspace.

pub mod objects;
mod secret;

pub use secret::Secret;
