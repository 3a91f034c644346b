//! Credentials and scopes: which token an account uses (a private app / service key token from
//! the config or stored with `hubsync auth token`), where stored credentials live, which scopes
//! each sync needs, and the one message a missing scope produces. The OAuth protocol itself
//! (code exchange, refresh, introspection) is in `hubspot::oauth`; `hubsync auth login` is in
//! `cli::auth`.
//!
//! File roles:
//! - `scopes.rs`: pure: a sync -> the scopes it needs, and the missing-scope message.
//! - `store.rs`: the credential files under `<state_dir>/credentials/` (mode 0600), the only I/O.

mod scopes;
mod store;

pub use scopes::{
    describe_hubspot_error, is_granted, missing_scope_message, missing_scopes, required_scopes, ScopeNeed,
};
pub use store::{credentials_dir, CredentialStore, OAuthCredential, StoredCredential};
