//! `hubsync auth`: store a private app token for an account, and show which credential each
//! account uses, never the token itself.

use std::io::{IsTerminal, Read};
use std::path::Path;

use super::CliError;
use crate::auth::{CredentialStore, StoredCredential};
use crate::config::{Config, Secret};

/// `hubsync auth token --account NAME`: reads the token from stdin (never from an argument,
/// which `ps` would show) and stores it with mode 0600.
pub fn auth_token(config_path: &Path, account: &str) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    if !config.hubspot.contains_key(account) {
        let known: Vec<&str> = config.hubspot.keys().map(String::as_str).collect();
        return Err(CliError::Config(format!(
            "HubSpot account `{account}` is not configured (configured accounts: {})",
            known.join(", ")
        )));
    }
    if std::io::stdin().is_terminal() {
        eprintln!("Paste the private app or service key token for account `{account}`, then press Enter:");
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| CliError::Failed(format!("cannot read the token from stdin: {e}")))?;
    let token = input.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_string();
    if token.is_empty() {
        return Err(CliError::Failed(format!(
            "no token on stdin; pipe it in, e.g. `hubsync auth token --account {account} < token.txt`"
        )));
    }
    let store = CredentialStore::new(&config.state_dir);
    let path =
        store.save(account, &StoredCredential::Static { token: Secret::new(token) }).map_err(CliError::Failed)?;
    println!("account `{account}`: private app token stored in {} (mode 0600).", path.display());
    if config.hubspot.get(account).is_some_and(|a| a.token.is_some()) {
        println!("note: the config also sets hubspot.{account}.token, which is used instead while it is set.");
    }
    Ok(())
}

/// `hubsync auth status`: per account, the kind of credential in use; never the token.
pub fn auth_status(config_path: &Path) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let store = CredentialStore::new(&config.state_dir);
    for (name, account) in &config.hubspot {
        let kind = if account.token.is_some() {
            "private app token (config)".to_string()
        } else {
            match store.load(name) {
                Ok(Some(c)) => c.kind().to_string(),
                Ok(None) => format!("none: set hubspot.{name}.token or run `hubsync auth token`"),
                Err(e) => format!("unreadable: {e}"),
            }
        };
        println!("account `{name}`: {kind}");
        println!("  portal id: unknown for private app tokens (HubSpot reports it on OAuth tokens only)");
        println!("  scopes:    checked by HubSpot per request; `hubsync validate` reports missing ones");
    }
    if config.hubspot.is_empty() {
        println!("{}: no HubSpot accounts are configured.", config.path.display());
    }
    Ok(())
}
