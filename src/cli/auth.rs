//! `hubsync auth`: store a private app token for an account, sign in with OAuth, and show
//! which credential each account uses, never the token itself.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Html;
use url::Url;

use super::{Accounts, CliError};
use crate::auth::{missing_scopes, required_scopes, CredentialStore, OAuthCredential, StoredCredential};
use crate::config::{Config, HubSpotAccountConfig, Secret};
use hubspot_client::TokenEndpoint;

/// The configured account `name`, or an error listing the configured ones.
fn account<'a>(config: &'a Config, name: &str) -> Result<&'a HubSpotAccountConfig, CliError> {
    config.hubspot.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.hubspot.keys().map(String::as_str).collect();
        CliError::Config(format!(
            "HubSpot account `{name}` is not configured (configured accounts: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
    })
}

/// `hubsync auth token --account NAME`: reads the token from stdin (never from an argument,
/// which `ps` would show) and stores it with mode 0600.
pub fn auth_token(config_path: &Path, name: &str) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let account = account(&config, name)?;
    if std::io::stdin().is_terminal() {
        eprintln!("Paste the private app or service key token for account `{name}`, then press Enter:");
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| CliError::Failed(format!("cannot read the token from stdin: {e}")))?;
    let token = input.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_string();
    if token.is_empty() {
        return Err(CliError::Failed(format!(
            "no token on stdin; pipe it in, e.g. `hubsync auth token --account {name} < token.txt`"
        )));
    }
    let store = CredentialStore::new(&config.state_dir);
    let replaced_login = matches!(store.load(name), Ok(Some(StoredCredential::OAuth(_))));
    let path = store.save(name, &StoredCredential::Static { token: Secret::new(token) }).map_err(CliError::Failed)?;
    println!("account `{name}`: private app token stored in {} (mode 0600).", path.display());
    if replaced_login {
        println!("note: it replaces the account's OAuth login, whose tokens were deleted.");
    }
    if account.token.is_some() {
        println!("note: the config also sets hubspot.{name}.token, which is used instead while it is set.");
    }
    Ok(())
}

/// What the loopback callback server shares with its handler.
struct Callback {
    path: String,
    state: String,
    done: tokio::sync::mpsc::Sender<Result<String, String>>,
}

fn page(status: StatusCode, title: &str, text: &str) -> (StatusCode, Html<String>) {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>hubsync: {title}</title></head>\
             <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{title}</h1><p>{text}</p></body></html>"
        )),
    )
}

/// The redirect from HubSpot: checks `state`, then hands the code (or HubSpot's refusal) over.
async fn callback(State(cb): State<Arc<Callback>>, uri: Uri) -> (StatusCode, Html<String>) {
    if uri.path() != cb.path {
        return page(StatusCode::NOT_FOUND, "Not found", "This is hubsync's sign-in callback; nothing else is here.");
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    if query.get("state") != Some(&cb.state) {
        tracing::warn!("A sign-in callback arrived with a state value this login did not issue; it was ignored.");
        return page(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started here",
            "The answer does not carry the state value hubsync sent, so it was ignored. Open the link \
             `hubsync auth login` printed, from the same terminal session.",
        );
    }
    if let Some(error) = query.get("error") {
        let description = query.get("error_description").map(String::as_str).unwrap_or("no description");
        let _ = cb.done.try_send(Err(format!("HubSpot did not grant access ({error}: {description})")));
        return page(StatusCode::BAD_REQUEST, "HubSpot did not grant access", "Return to the terminal for details.");
    }
    match query.get("code").filter(|c| !c.is_empty()) {
        Some(code) => {
            let _ = cb.done.try_send(Ok(code.clone()));
            page(StatusCode::OK, "Signed in", "hubsync received the authorization; you can close this tab.")
        }
        None => page(StatusCode::BAD_REQUEST, "No authorization code", "HubSpot sent the browser back without a code."),
    }
}

/// The address to listen on for a loopback redirect URL (`localhost` listens on 127.0.0.1).
fn listen_address(redirect: &Url) -> Option<SocketAddr> {
    let ip = match redirect.host()? {
        url::Host::Domain("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        url::Host::Ipv4(ip) if ip.is_loopback() => IpAddr::V4(ip),
        url::Host::Ipv6(ip) if ip == Ipv6Addr::LOCALHOST => IpAddr::V6(ip),
        _ => return None,
    };
    Some(SocketAddr::new(ip, redirect.port()?))
}

/// The missing-scope message of every scope that a sync of account `name` needs and `granted`
/// lacks.
fn missing_scope_messages(config: &Config, name: &str, granted: &[String]) -> Vec<String> {
    config
        .syncs
        .iter()
        .filter(|s| s.hubspot == name)
        .flat_map(|sync| {
            missing_scopes(sync, granted)
                .into_iter()
                .map(|need| crate::auth::missing_scope_message(&sync.name, &need.scope, &need.operation))
        })
        .collect()
}

/// `hubsync auth login --account NAME`: the OAuth authorization-code flow through a one-shot
/// loopback server, then the tokens stored with mode 0600, replacing any stored token.
pub async fn auth_login(config_path: &Path, name: &str, timeout_secs: u64) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let account = account(&config, name)?;
    let app = account.oauth_app().ok_or_else(|| {
        CliError::Config(format!(
            "{}: hubspot.{name}: `hubsync auth login` needs your HubSpot app's client_id and client_secret; \
             set client_id = \"...\" and client_secret = \"${{HUBSPOT_CLIENT_SECRET}}\" from the app's Auth tab, \
             or use a private app token with `hubsync auth token --account {name}`",
            config.path.display()
        ))
    })?;
    let mut scopes: Vec<String> = Vec::new();
    for sync in config.syncs.iter().filter(|s| s.hubspot == name) {
        for need in required_scopes(sync) {
            if !scopes.contains(&need.scope) {
                scopes.push(need.scope);
            }
        }
    }
    scopes.push("oauth".to_string());

    let redirect =
        Url::parse(&account.redirect_uri).map_err(|e| CliError::Config(format!("hubspot.{name}.redirect_uri: {e}")))?;
    let address = listen_address(&redirect).ok_or_else(|| {
        CliError::Config(format!("hubspot.{name}.redirect_uri: `{redirect}` is not a loopback http URL with a port"))
    })?;
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        CliError::Failed(format!(
            "cannot listen on {address} for HubSpot's redirect ({e}); free the port, or change \
             hubspot.{name}.redirect_uri and the app's redirect URL to another port"
        ))
    })?;
    let state = uuid::Uuid::new_v4().simple().to_string();
    let (done, mut received) = tokio::sync::mpsc::channel(1);
    let handler = Arc::new(Callback { path: redirect.path().to_string(), state: state.clone(), done });
    let router = axum::Router::new().fallback(callback).with_state(handler);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let mut authorize = Url::parse(&account.authorize_endpoint())
        .map_err(|e| CliError::Config(format!("hubspot.{name}.authorize_url: {e}")))?;
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect.as_str())
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", &state);
    println!("Open this link in a browser signed in to the HubSpot account, and approve access:");
    println!();
    println!("  {authorize}");
    println!();
    println!("Scopes asked for: {}", scopes.join(", "));
    println!("Waiting up to {timeout_secs} s for HubSpot to send the browser back to {redirect} ...");
    let _ = std::io::stdout().flush();

    let outcome = tokio::time::timeout(Duration::from_secs(timeout_secs), received.recv()).await;
    let _ = stop.send(());
    let _ = server.await;
    let code = match outcome {
        Ok(Some(Ok(code))) => code,
        Ok(Some(Err(refusal))) => return Err(CliError::Failed(refusal)),
        Ok(None) => return Err(CliError::Failed("the sign-in callback server stopped unexpectedly".into())),
        Err(_) => {
            return Err(CliError::Failed(format!(
                "no answer from HubSpot within {timeout_secs} s; run `hubsync auth login --account {name}` \
                 again (with a longer --timeout if needed)"
            )))
        }
    };

    let endpoint = TokenEndpoint::new(&account.base_url, app.clone(), Duration::from_secs(account.timeout_secs))
        .map_err(|e| CliError::Config(format!("hubspot.{name}: {e}")))?;
    let tokens = endpoint.exchange_code(&code, redirect.as_str()).await.map_err(|e| {
        CliError::Failed(format!("account `{name}`: the authorization code could not be exchanged: {e}"))
    })?;
    let info = endpoint.introspect(&tokens.access_token).await.map_err(|e| {
        CliError::Failed(format!("account `{name}`: the new access token could not be introspected: {e}"))
    })?;

    let store = CredentialStore::new(&config.state_dir);
    let replaced_static = matches!(store.load(name), Ok(Some(StoredCredential::Static { .. })));
    let login =
        OAuthCredential { client_id: app.client_id.clone(), tokens, hub_id: info.hub_id, scopes: info.scopes.clone() };
    let path = store.save(name, &StoredCredential::OAuth(login)).map_err(CliError::Failed)?;
    let portal = info.hub_id.map_or_else(|| "an unknown portal".to_string(), |id| format!("portal {id}"));
    println!("account `{name}`: signed in with OAuth to {portal}; tokens stored in {} (mode 0600).", path.display());
    println!("  scopes: {}", info.scopes.join(", "));
    if replaced_static {
        println!("  the private app token stored for `{name}` was deleted; OAuth is used from now on.");
    }
    if account.token.is_some() {
        println!(
            "  note: hubspot.{name}.token is set in the config and is used instead of OAuth while it is set; \
             remove it to use this login."
        );
    }
    for message in missing_scope_messages(&config, name, &info.scopes) {
        println!("  warning: {message}");
    }
    Ok(())
}

/// `hubsync auth status`: per account, the kind of credential in use, its portal and scopes;
/// never a token.
pub async fn auth_status(config_path: &Path) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    if config.hubspot.is_empty() {
        println!("{}: no HubSpot accounts are configured.", config.path.display());
        return Ok(());
    }
    let store = CredentialStore::new(&config.state_dir);
    let accounts = Accounts::build(&config)?;
    let mut problems = 0;
    for (name, account) in &config.hubspot {
        let stored = if account.token.is_some() { Ok(None) } else { store.load(name) };
        let kind = match (&account.token, &stored) {
            (Some(_), _) => "private app token (config)".to_string(),
            (None, Ok(Some(c))) => c.kind().to_string(),
            (None, Ok(None)) => format!(
                "none: set hubspot.{name}.token, run `hubsync auth token --account {name}` or \
                 `hubsync auth login --account {name}`"
            ),
            (None, Err(e)) => format!("unreadable: {e}"),
        };
        println!("account `{name}`: {kind}");
        let Ok(client) = accounts.client(name) else { continue };
        match client.oauth_token_info().await {
            None => {
                println!("  portal id: not reported for private app tokens");
                println!("  scopes:    checked by HubSpot per request; `hubsync validate` reports missing ones");
            }
            Some(Ok(info)) => {
                let portal = info.hub_id.map_or_else(|| "unknown".to_string(), |id| id.to_string());
                let domain = info.hub_domain.map(|d| format!(" ({d})")).unwrap_or_default();
                println!("  portal id: {portal}{domain}");
                println!("  scopes:    {}", info.scopes.join(", "));
                if let Some(secs) = info.expires_in_secs {
                    println!("  access:    valid for {} more min; refreshed automatically", secs / 60);
                }
                for message in missing_scope_messages(&config, name, &info.scopes) {
                    println!("  missing:   {message}");
                }
            }
            Some(Err(e)) => {
                problems += 1;
                println!("  problem:   {e}");
            }
        }
    }
    if problems > 0 {
        return Err(CliError::Failed(format!("{problems} account(s) cannot be used; see above")));
    }
    Ok(())
}
