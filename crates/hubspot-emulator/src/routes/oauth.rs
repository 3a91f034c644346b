//! OAuth 2.0 (HubSpot docs: OAuth and scopes; sources in docs/emulator.md): `/oauth/authorize` redirects straight back with a code
//! (there is no user to ask), `/oauth/v1/token` (and v3, dated) exchanges codes and refresh
//! tokens, and the introspection endpoints describe tokens.

use serde_json::{json, Value};

use super::context::Ctx;
use crate::config::OAuthClient;
use crate::limits::app_number;
use crate::reply::{correlation_id, HsResult, Reply};
use crate::store::tokens::AuthCode;

const CODE_TTL_MS: i64 = 10 * 60 * 1000;
const USER: &str = "emulator@hubsync.local";

fn oauth_error(error: &str, status: &str, message: &str) -> Reply {
    Reply::json(400, &json!({"error": error, "error_description": message, "status": status, "message": message}))
}

fn form(ctx: &Ctx<'_>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(ctx.body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split([' ', ',', '+']).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// The configured client, `Ok(None)` when no clients are configured (any client goes).
fn client<'a>(ctx: &'a Ctx<'_>, id: Option<&str>) -> Result<Option<&'a OAuthClient>, ()> {
    let clients = &ctx.shared.config.oauth_clients;
    if clients.is_empty() {
        return Ok(None);
    }
    let id = id.ok_or(())?;
    clients.iter().find(|c| c.client_id == id).map(Some).ok_or(())
}

fn hub_domain(ctx: &Ctx<'_>) -> String {
    format!("emulator-{}.hubspot.com", ctx.shared.config.portal_id)
}

pub(crate) fn authorize(ctx: &Ctx<'_>) -> HsResult<Reply> {
    let client_id = ctx.param("client_id");
    let client = client(ctx, client_id).map_err(|()| Reply::html(400, "<h1>Invalid client_id</h1>"))?;
    let redirect = ctx.param("redirect_uri").filter(|r| !r.is_empty());
    let redirect = redirect.ok_or_else(|| Reply::html(400, "<h1>Missing redirect_uri</h1>"))?;
    let requested = ctx.param("scope").map(split_scopes).unwrap_or_default();
    let optional: Vec<String> = ctx
        .query
        .iter()
        .filter(|(k, _)| k == "optional_scope" || k == "optional_scopes")
        .flat_map(|(_, v)| split_scopes(v))
        .collect();
    let allowed = |s: &String| client.is_none_or(|c| c.scopes.is_empty() || c.scopes.contains(s));
    if let Some(bad) = requested.iter().find(|s| !allowed(s)) {
        return Err(Reply::html(
            400,
            format!("<h1>Authorization failed because there is a mismatch between the scopes in the install URL and the app's configured scopes ({bad}).</h1>"),
        ));
    }
    let mut scopes: Vec<String> = requested;
    scopes.extend(optional.into_iter().filter(allowed));
    if client.is_some_and(|c| !c.scopes.is_empty()) && scopes.is_empty() {
        scopes = client.map(|c| c.scopes.clone()).unwrap_or_default();
    }
    if !scopes.iter().any(|s| s == "oauth") {
        scopes.push("oauth".into());
    }
    let code = uuid::Uuid::new_v4().to_string();
    ctx.store().tokens.codes.insert(
        code.clone(),
        AuthCode {
            client_id: client_id.unwrap_or_default().to_string(),
            redirect_uri: redirect.to_string(),
            scopes,
            expires_at: ctx.now + CODE_TTL_MS,
        },
    );
    let mut location = url::Url::parse(redirect).map_err(|_| Reply::html(400, "<h1>Invalid redirect_uri</h1>"))?;
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = ctx.param("state") {
        location.query_pairs_mut().append_pair("state", state);
    }
    Ok(Reply::empty(302).with_header("Location", location.to_string()))
}

pub(crate) fn token(ctx: &Ctx<'_>, v3: bool) -> HsResult<Reply> {
    let mut fields = form(ctx);
    if !v3 && fields.is_empty() {
        fields = ctx.query.clone();
    }
    let client_id = field(&fields, "client_id");
    let client = client(ctx, client_id)
        .map_err(|()| oauth_error("invalid_client", "BAD_CLIENT_ID", "missing or unknown client id"))?;
    if let Some(c) = client {
        if field(&fields, "client_secret") != Some(c.client_secret.expose()) {
            return Err(oauth_error("invalid_client", "BAD_CLIENT_SECRET", "missing or invalid client secret"));
        }
    }
    let client_id = client_id.unwrap_or_default().to_string();
    let ttl_secs = ctx.shared.config.access_token_ttl_secs;
    let ttl_ms = i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
    let mut store = ctx.store();
    let (scopes, refresh) = match field(&fields, "grant_type") {
        Some("authorization_code") => {
            let bad_code = || oauth_error("invalid_grant", "BAD_AUTH_CODE", "missing or invalid authorization code");
            let code = field(&fields, "code").ok_or_else(bad_code)?;
            let grant = store.tokens.codes.get(code).cloned().ok_or_else(bad_code)?;
            if grant.expires_at < ctx.now || grant.client_id != client_id {
                return Err(bad_code());
            }
            if field(&fields, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return Err(oauth_error(
                    "invalid_grant",
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match the one used to authorize",
                ));
            }
            store.tokens.codes.remove(code);
            (grant.scopes, None)
        }
        Some("refresh_token") => {
            let bad =
                || oauth_error("invalid_grant", "BAD_REFRESH_TOKEN", "refresh token is invalid, expired or revoked");
            let token = field(&fields, "refresh_token").ok_or_else(bad)?;
            let grant = store.tokens.refresh.get(token).cloned().ok_or_else(bad)?;
            if grant.client_id != client_id {
                return Err(bad());
            }
            (grant.scopes, Some(token.to_string()))
        }
        other => {
            return Err(oauth_error(
                "unsupported_grant_type",
                "BAD_GRANT_TYPE",
                &format!("grant_type {} is not supported", other.unwrap_or("(missing)")),
            ))
        }
    };
    let (access, refresh) = store.tokens.issue(&client_id, &scopes, ttl_ms, ctx.now, refresh);
    let mut body = json!({
        "token_type": "bearer",
        "refresh_token": refresh,
        "access_token": access,
        "expires_in": ttl_secs,
    });
    if v3 {
        body["hub_id"] = json!(ctx.shared.config.portal_id);
        body["scopes"] = json!(scopes);
    }
    Ok(Reply::json(200, &body))
}

fn signed(ctx: &Ctx<'_>, client_id: &str, scopes: &[String], expires_at: i64) -> Value {
    json!({
        "expiresAt": expires_at,
        "scopes": scopes.join(" "),
        "hubId": ctx.shared.config.portal_id,
        "userId": 1,
        "appId": app_number(client_id),
        "signature": uuid::Uuid::new_v4().simple().to_string(),
        "hublet": "na1",
        "isUserLevel": false,
        "isServiceAccount": false,
    })
}

fn token_not_found() -> Reply {
    Reply::json(
        404,
        &json!({"status": "error", "message": "The token is expired, invalid or revoked.", "correlationId": correlation_id()}),
    )
}

pub(crate) fn access_token_info(ctx: &Ctx<'_>, token: &str) -> HsResult<Reply> {
    let store = ctx.store();
    let t = store.tokens.access.get(token).filter(|t| t.expires_at > ctx.now).ok_or_else(token_not_found)?;
    Ok(Reply::json(
        200,
        &json!({
            "token": token,
            "user": USER,
            "hub_domain": hub_domain(ctx),
            "scopes": t.scopes,
            "signed_access_token": signed(ctx, &t.client_id, &t.scopes, t.expires_at),
            "hub_id": ctx.shared.config.portal_id,
            "app_id": app_number(&t.client_id),
            "expires_in": (t.expires_at - ctx.now) / 1000,
            "user_id": 1,
            "token_type": "access",
        }),
    ))
}

pub(crate) fn refresh_token_info(ctx: &Ctx<'_>, token: &str) -> HsResult<Reply> {
    let store = ctx.store();
    let t = store.tokens.refresh.get(token).ok_or_else(token_not_found)?;
    Ok(Reply::json(
        200,
        &json!({
            "client_id": t.client_id,
            "hub_id": ctx.shared.config.portal_id,
            "scopes": t.scopes,
            "token": token,
            "token_type": "refresh",
            "user": USER,
            "user_id": 1,
            "hub_domain": hub_domain(ctx),
        }),
    ))
}

pub(crate) fn refresh_token_delete(ctx: &Ctx<'_>, token: &str) -> HsResult<Reply> {
    ctx.store().tokens.refresh.remove(token);
    Ok(Reply::empty(204))
}

pub(crate) fn introspect(ctx: &Ctx<'_>) -> HsResult<Reply> {
    let fields = form(ctx);
    let client_id = field(&fields, "client_id");
    let client = client(ctx, client_id)
        .map_err(|()| oauth_error("invalid_client", "BAD_CLIENT_ID", "missing or unknown client id"))?;
    if let Some(c) = client {
        if field(&fields, "client_secret") != Some(c.client_secret.expose()) {
            return Err(oauth_error("invalid_client", "BAD_CLIENT_SECRET", "missing or invalid client secret"));
        }
    }
    let token =
        field(&fields, "token").or_else(|| field(&fields, "access_token")).or_else(|| field(&fields, "refresh_token"));
    let Some(token) = token else { return Ok(Reply::json(200, &json!({"active": false}))) };
    let store = ctx.store();
    let base = |client_id: &str, scopes: &[String], use_: &str| {
        json!({
            "active": true,
            "token": token,
            "hub_id": ctx.shared.config.portal_id,
            "user_id": 1,
            "client_id": client_id,
            "app_id": app_number(client_id),
            "user": USER,
            "hub_domain": hub_domain(ctx),
            "scopes": scopes,
            "is_private_distribution": false,
            "token_use": use_,
            "token_type": "bearer",
        })
    };
    if let Some(t) = store.tokens.access.get(token).filter(|t| t.expires_at > ctx.now) {
        let mut body = base(&t.client_id, &t.scopes, "access");
        body["expires_in"] = json!((t.expires_at - ctx.now) / 1000);
        body["signed_access_token"] = signed(ctx, &t.client_id, &t.scopes, t.expires_at);
        return Ok(Reply::json(200, &body));
    }
    if let Some(t) = store.tokens.refresh.get(token) {
        return Ok(Reply::json(200, &base(&t.client_id, &t.scopes, "refresh")));
    }
    Ok(Reply::json(200, &json!({"active": false})))
}

pub(crate) fn revoke(ctx: &Ctx<'_>) -> HsResult<Reply> {
    let fields = form(ctx);
    if let Some(token) = field(&fields, "token").or_else(|| field(&fields, "refresh_token")) {
        ctx.store().tokens.refresh.remove(token);
    }
    Ok(Reply::empty(204))
}
