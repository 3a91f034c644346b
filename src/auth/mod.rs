//! Credentials and scopes: which token an account uses (a private app / service key token from
//! the config or stored with `hubsync auth token`), where stored credentials live, which scopes
//! each sync needs, and the one message a missing scope produces. The OAuth protocol itself
//! (code exchange, refresh, introspection) is in `hubspot::oauth`; `hubsync auth login` is in
//! `cli::auth`.
//!
//! File roles:
//! - `scopes.rs`: pure: a sync -> the scopes it needs, and the missing-scope message.
//! - `store.rs`: the credential files under `<state_dir>/credentials/` (mode 0600).
//! - `admin_token.rs`: the admin API token the daemon generates in `<state_dir>/admin-token` (0600).

mod admin_token;
mod scopes;
mod store;

pub use admin_token::{admin_token_path, load_admin_token, load_or_create_admin_token, ADMIN_TOKEN_FILE};
pub use scopes::{
    describe_hubspot_error, is_granted, missing_scope_message, missing_scopes, required_scopes, unique_key_scope,
    ScopeNeed,
};
pub use store::{credentials_dir, CredentialStore, OAuthCredential, StoredCredential};
