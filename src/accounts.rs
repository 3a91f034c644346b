//! One HubSpot client per configured account, each with the one rate budget that every sync
//! writing to that account shares, and the credential it uses: the config's token, else the
//! one stored by `hubsync auth token` or `hubsync auth login`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::{CredentialStore, StoredCredential};
use crate::config::{Config, HubSpotAccountConfig, Secret};
use hubspot_client::{ClientSettings, HubSpotClient, OAuthSession, OAuthTokens, RateBudget, TokenEndpoint, TokenStore};

pub struct Accounts {
    clients: BTreeMap<String, Result<HubSpotClient, String>>,
}

/// The client settings of one configured account, with a static token.
pub fn settings(name: &str, account: &HubSpotAccountConfig, token: Secret) -> ClientSettings {
    ClientSettings {
        account: name.to_string(),
        base_url: account.base_url.clone(),
        api_version: account.api_version.clone(),
        token,
        max_requests_per_10s: account.max_requests_per_10s,
        daily_limit: account.daily_limit,
        search_requests_per_sec: account.search_requests_per_sec,
        max_in_flight: account.max_in_flight,
        timeout_secs: account.timeout_secs,
        retry_max_attempts: account.retry_max_attempts,
        ..ClientSettings::default()
    }
}

/// The settings of `name`, from the config's token or the stored credential.
fn account_settings(config: &Config, store: &CredentialStore, name: &str) -> Result<ClientSettings, String> {
    let account = &config.hubspot[name];
    // A token in the config wins; otherwise the one stored with `hubsync auth`.
    if let Some(token) = &account.token {
        return Ok(settings(name, account, token.clone()));
    }
    match store.load(name).map_err(|e| format!("hubspot.{name}: {e}"))? {
        Some(StoredCredential::Static { token }) => Ok(settings(name, account, token)),
        Some(StoredCredential::OAuth(login)) => {
            let app = account.oauth_app().ok_or_else(|| {
                format!(
                    "{}: hubspot.{name}: the account signed in with `hubsync auth login`, which needs the \
                     app's client_id and client_secret in the config to refresh its tokens; set them, or \
                     store a private app token with `hubsync auth token --account {name}`",
                    config.path.display()
                )
            })?;
            let mut s = settings(name, account, Secret::new(""));
            let endpoint = TokenEndpoint::new(&account.base_url, app, s.timeout())
                .map_err(|e| format!("{}: hubspot.{name}: {e}", config.path.display()))?;
            let file = StoredLogin { store: store.clone(), account: name.to_string(), client_id: login.client_id };
            s.oauth = Some(Arc::new(OAuthSession::new(name, endpoint, login.tokens, Box::new(file))));
            Ok(s)
        }
        None => Err(format!(
            "{}: hubspot.{name}.token: no token is configured; set `token = \"${{HUBSPOT_TOKEN}}\"` \
             with a private app or service key token, store one with `hubsync auth token --account \
             {name}`, or sign in with `hubsync auth login --account {name}`",
            config.path.display()
        )),
    }
}

/// The credential file of one OAuth login, as the session's token store.
struct StoredLogin {
    store: CredentialStore,
    account: String,
    client_id: String,
}

impl TokenStore for StoredLogin {
    fn load(&self) -> Option<OAuthTokens> {
        match self.store.load(&self.account) {
            Ok(Some(StoredCredential::OAuth(login))) if login.client_id == self.client_id => Some(login.tokens),
            _ => None,
        }
    }

    fn save(&self, tokens: &OAuthTokens) -> Result<(), String> {
        self.store.update_tokens(&self.account, &self.client_id, tokens)
    }
}

/// An account that cannot be used: its config or its stored credential is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AccountError(pub String);

impl Accounts {
    /// Builds a client for every account. An account that cannot be used (no token) is an
    /// error only when a sync asks for it.
    pub fn build(config: &Config) -> Result<Accounts, AccountError> {
        let mut clients = BTreeMap::new();
        let store = CredentialStore::new(&config.state_dir);
        for name in config.hubspot.keys() {
            let client = account_settings(config, &store, name).and_then(|settings| {
                let budget = RateBudget::new(&settings);
                HubSpotClient::new(settings, budget)
                    .map_err(|e| format!("{}: hubspot.{name}: {e}", config.path.display()))
            });
            clients.insert(name.clone(), client);
        }
        Ok(Accounts { clients })
    }

    /// The client of an account.
    pub fn client(&self, name: &str) -> Result<&HubSpotClient, AccountError> {
        match self.clients.get(name) {
            Some(Ok(client)) => Ok(client),
            Some(Err(message)) => Err(AccountError(message.clone())),
            None => Err(AccountError(format!("HubSpot account `{name}` is not configured"))),
        }
    }
}
