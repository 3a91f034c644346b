//! One HubSpot client per configured account, each with the one rate budget that every sync
//! writing to that account shares.

use std::collections::BTreeMap;

use super::CliError;
use crate::auth::CredentialStore;
use crate::config::{Config, HubSpotAccountConfig, Secret};
use crate::hubspot::{ClientSettings, HubSpotClient, RateBudget};

pub struct Accounts {
    clients: BTreeMap<String, Result<HubSpotClient, String>>,
}

/// The client settings of one configured account.
pub fn settings(name: &str, account: &HubSpotAccountConfig, stored: Option<Secret>) -> Option<ClientSettings> {
    let token = account.token.clone().or(stored)?;
    Some(ClientSettings {
        account: name.to_string(),
        base_url: account.base_url.clone(),
        api_version: account.api_version.clone(),
        token,
        max_requests_per_10s: account.max_requests_per_10s,
        daily_limit: account.daily_limit,
        search_requests_per_sec: account.search_requests_per_sec,
        timeout_secs: account.timeout_secs,
        retry_max_attempts: account.retry_max_attempts,
        ..ClientSettings::default()
    })
}

impl Accounts {
    /// Builds a client for every account. An account that cannot be used (no token) is an
    /// error only when a sync asks for it.
    pub fn build(config: &Config) -> Result<Accounts, CliError> {
        let mut clients = BTreeMap::new();
        let store = CredentialStore::new(&config.state_dir);
        for (name, account) in &config.hubspot {
            // A token in the config wins; otherwise the one stored with `hubsync auth`.
            let stored = match account.token {
                Some(_) => Ok(None),
                None => store.load(name).map(|c| c.map(|c| c.bearer().clone())),
            };
            let client = match stored.map(|stored| settings(name, account, stored)) {
                Err(message) => Err(format!("hubspot.{name}: {message}")),
                Ok(None) => Err(format!(
                    "{}: hubspot.{name}.token: no token is configured; set `token = \"${{HUBSPOT_TOKEN}}\"` \
                     with a private app or service key token, or store one with \
                     `hubsync auth token --account {name}`",
                    config.path.display()
                )),
                Ok(Some(settings)) => {
                    let budget = RateBudget::new(&settings);
                    HubSpotClient::new(settings, budget)
                        .map_err(|e| format!("{}: hubspot.{name}: {e}", config.path.display()))
                }
            };
            clients.insert(name.clone(), client);
        }
        Ok(Accounts { clients })
    }

    /// The client of an account.
    pub fn client(&self, name: &str) -> Result<&HubSpotClient, CliError> {
        match self.clients.get(name) {
            Some(Ok(client)) => Ok(client),
            Some(Err(message)) => Err(CliError::Config(message.clone())),
            None => Err(CliError::Config(format!("HubSpot account `{name}` is not configured"))),
        }
    }
}
