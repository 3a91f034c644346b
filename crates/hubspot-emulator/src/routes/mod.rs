//! HTTP handlers. `Route::parse` turns a method and path of either path family (dated
//! `/crm/objects/2026-03/...` or legacy `/crm/v3/...`, `/crm/v4/...`) into one `Route`;
//! `dispatch` hands it to the handler of its area. Handlers are plain functions of the
//! request context: they parse the body outside the store lock and return a `Reply`.
//!
//! Files: one per area (`objects.rs` single records, `batch.rs` object batches, `search.rs`,
//! `associations.rs`, `properties.rs` with schemas, `lists.rs`, `oauth.rs`), and below them
//! what several areas share: `context.rs` (the request, type resolution), `wire.rs` (JSON
//! shapes in and out), `writes.rs` (record-write checks and errors). Handlers import only
//! those three, never each other or this file.

pub(crate) mod associations;
pub(crate) mod batch;
pub(crate) mod context;
pub(crate) mod lists;
pub(crate) mod oauth;
pub(crate) mod objects;
pub(crate) mod properties;
pub(crate) mod search;
pub(crate) mod wire;
pub(crate) mod writes;

use axum::http::Method;

use crate::reply::Reply;
pub(crate) use context::Ctx;

/// A batch operation on objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchOp {
    Create,
    Read,
    Update,
    Upsert,
    Archive,
}

/// Every endpoint the emulator serves, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    ObjectList { object_type: String },
    ObjectCreate { object_type: String },
    ObjectGet { object_type: String, id: String },
    ObjectUpdate { object_type: String, id: String },
    ObjectArchive { object_type: String, id: String },
    ObjectBatch { object_type: String, op: BatchOp },
    ObjectMerge { object_type: String },
    Search { object_type: String },

    AssocPutDefault { from: String, from_id: String, to: String, to_id: String },
    AssocPut { from: String, from_id: String, to: String, to_id: String },
    AssocDelete { from: String, from_id: String, to: String, to_id: String },
    AssocList { from: String, from_id: String, to: String },
    AssocBatchCreate { from: String, to: String },
    AssocBatchDefault { from: String, to: String },
    AssocBatchRead { from: String, to: String },
    AssocBatchArchive { from: String, to: String },
    AssocBatchLabelsArchive { from: String, to: String },
    LabelsList { from: String, to: String },
    LabelCreate { from: String, to: String },
    LabelUpdate { from: String, to: String },
    LabelDelete { from: String, to: String, type_id: String },

    PropertiesList { object_type: String },
    PropertyCreate { object_type: String },
    PropertyGet { object_type: String, name: String },
    PropertyUpdate { object_type: String, name: String },
    PropertyArchive { object_type: String, name: String },
    PropertiesBatchCreate { object_type: String },
    PropertiesBatchRead { object_type: String },
    PropertiesBatchArchive { object_type: String },
    PropertyGroups { object_type: String },
    PropertyGroupCreate { object_type: String },
    PropertyGroupGet { object_type: String, name: String },

    SchemasList,
    SchemaCreate,
    SchemaGet { object_type: String },
    SchemaUpdate { object_type: String },
    SchemaDelete { object_type: String },
    SchemaAssociationCreate { object_type: String },

    ListCreate,
    ListSearch,
    ListGet { list_id: String },
    ListDelete { list_id: String },
    ListByName { object_type_id: String, name: String },
    ListRename { list_id: String },
    MembershipsAdd { list_id: String },
    MembershipsRemove { list_id: String },
    MembershipsAddRemove { list_id: String },
    MembershipsAddFrom { list_id: String, source_id: String },
    MembershipsGet { list_id: String, join_order: bool },
    MembershipsClear { list_id: String },
    RecordMemberships { object_type_id: String, record_id: String },

    OAuthAuthorize,
    OAuthToken { v3: bool },
    OAuthAccessTokenInfo { token: String },
    OAuthRefreshTokenInfo { token: String },
    OAuthRefreshTokenDelete { token: String },
    OAuthIntrospect,
    OAuthRevoke,
}

/// `YYYY-MM`, the dated API version.
fn is_version(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7 && b[4] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit())
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Route {
    /// Matches a method and a path (without the query) to a route.
    pub(crate) fn parse(method: &Method, path: &str) -> Option<Route> {
        let raw: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let segs: Vec<String> = raw.iter().map(|s| percent_decode(s)).collect();
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        match s.as_slice() {
            ["crm", "v3", "objects", rest @ ..] => objects_route(method, rest, false),
            ["crm", "v4", "objects", rest @ ..] => objects_route(method, rest, true).filter(Route::is_association),
            ["crm", "objects", v, rest @ ..] if is_version(v) => objects_route(method, rest, true),
            ["crm", "v4", "associations", rest @ ..] => associations_route(method, rest),
            ["crm", "associations", v, rest @ ..] if is_version(v) || *v == "v4" => associations_route(method, rest),
            ["crm", "v3", "lists", rest @ ..] => lists_route(method, rest),
            ["crm", "lists", v, rest @ ..] if is_version(v) => lists_route(method, rest),
            ["crm", "v3", "properties", rest @ ..] => properties_route(method, rest),
            ["crm", "properties", v, rest @ ..] if is_version(v) => properties_route(method, rest),
            ["crm-object-schemas", v, "schemas", rest @ ..] if *v == "v3" || is_version(v) => {
                schemas_route(method, rest)
            }
            ["crm", "v3", "schemas", rest @ ..] => schemas_route(method, rest),
            ["crm", "schemas", v, rest @ ..] if is_version(v) => schemas_route(method, rest),
            ["oauth", "authorize"] | ["oauth", "v1", "authorize"] if method == Method::GET => {
                Some(Route::OAuthAuthorize)
            }
            ["oauth", v, rest @ ..] if *v == "v1" || *v == "v3" || is_version(v) => oauth_route(method, v, rest),
            _ => None,
        }
    }

    fn is_association(&self) -> bool {
        matches!(
            self,
            Route::AssocPut { .. }
                | Route::AssocPutDefault { .. }
                | Route::AssocDelete { .. }
                | Route::AssocList { .. }
        )
    }

    /// Whether the route needs a bearer token (everything but the OAuth endpoints).
    pub(crate) fn needs_auth(&self) -> bool {
        !matches!(
            self,
            Route::OAuthAuthorize
                | Route::OAuthToken { .. }
                | Route::OAuthAccessTokenInfo { .. }
                | Route::OAuthRefreshTokenInfo { .. }
                | Route::OAuthRefreshTokenDelete { .. }
                | Route::OAuthIntrospect
                | Route::OAuthRevoke
        )
    }

    /// Search has its own per-second limit and answers without rate-limit headers.
    pub(crate) fn is_search(&self) -> bool {
        matches!(self, Route::Search { .. })
    }

    /// Whether the request creates or upserts records: the requests an after-write fault
    /// (`FaultConfig::error_after_write_rate`, `drop_after_write_rate`) may hit.
    pub(crate) fn creates_or_upserts(&self) -> bool {
        matches!(self, Route::ObjectCreate { .. } | Route::ObjectBatch { op: BatchOp::Create | BatchOp::Upsert, .. })
    }

    /// Whether the answer carries `X-HubSpot-RateLimit-*` headers: every one but search and
    /// the association labels read, as recorded (recorded real HubSpot answers, docs/emulator.md). The labels read still
    /// counts against the window.
    pub(crate) fn sends_rate_headers(&self) -> bool {
        !matches!(self, Route::Search { .. } | Route::LabelsList { .. })
    }
}

fn objects_route(method: &Method, rest: &[&str], v4: bool) -> Option<Route> {
    let s = |x: &str| x.to_string();
    Some(match (method.as_str(), rest) {
        ("GET", [t]) => Route::ObjectList { object_type: s(t) },
        ("POST", [t]) => Route::ObjectCreate { object_type: s(t) },
        ("POST", [t, "search"]) => Route::Search { object_type: s(t) },
        ("POST", [t, "merge"]) => Route::ObjectMerge { object_type: s(t) },
        ("POST", [t, "batch", op]) => Route::ObjectBatch {
            object_type: s(t),
            op: match *op {
                "create" => BatchOp::Create,
                "read" => BatchOp::Read,
                "update" => BatchOp::Update,
                "upsert" => BatchOp::Upsert,
                "archive" => BatchOp::Archive,
                _ => return None,
            },
        },
        ("GET", [t, id]) => Route::ObjectGet { object_type: s(t), id: s(id) },
        ("PATCH", [t, id]) => Route::ObjectUpdate { object_type: s(t), id: s(id) },
        ("DELETE", [t, id]) => Route::ObjectArchive { object_type: s(t), id: s(id) },
        ("GET", [f, id, "associations", to]) if v4 => Route::AssocList { from: s(f), from_id: s(id), to: s(to) },
        ("PUT", [f, id, "associations", "default", to, to_id]) if v4 => {
            Route::AssocPutDefault { from: s(f), from_id: s(id), to: s(to), to_id: s(to_id) }
        }
        ("PUT", [f, id, "associations", to, to_id]) if v4 => {
            Route::AssocPut { from: s(f), from_id: s(id), to: s(to), to_id: s(to_id) }
        }
        ("DELETE", [f, id, "associations", to, to_id]) if v4 => {
            Route::AssocDelete { from: s(f), from_id: s(id), to: s(to), to_id: s(to_id) }
        }
        _ => return None,
    })
}

fn associations_route(method: &Method, rest: &[&str]) -> Option<Route> {
    let s = |x: &str| x.to_string();
    Some(match (method.as_str(), rest) {
        ("POST", [f, t, "batch", "create"]) => Route::AssocBatchCreate { from: s(f), to: s(t) },
        ("POST", [f, t, "batch", "associate", "default"]) => Route::AssocBatchDefault { from: s(f), to: s(t) },
        ("POST", [f, t, "batch", "read"]) => Route::AssocBatchRead { from: s(f), to: s(t) },
        ("POST", [f, t, "batch", "archive"]) => Route::AssocBatchArchive { from: s(f), to: s(t) },
        ("POST", [f, t, "batch", "labels", "archive"]) => Route::AssocBatchLabelsArchive { from: s(f), to: s(t) },
        ("GET", [f, t, "labels"]) => Route::LabelsList { from: s(f), to: s(t) },
        ("POST", [f, t, "labels"]) => Route::LabelCreate { from: s(f), to: s(t) },
        ("PUT", [f, t, "labels"]) => Route::LabelUpdate { from: s(f), to: s(t) },
        ("DELETE", [f, t, "labels", id]) => Route::LabelDelete { from: s(f), to: s(t), type_id: s(id) },
        _ => return None,
    })
}

fn lists_route(method: &Method, rest: &[&str]) -> Option<Route> {
    let s = |x: &str| x.to_string();
    Some(match (method.as_str(), rest) {
        ("POST", []) => Route::ListCreate,
        ("POST", ["search"]) => Route::ListSearch,
        ("GET", ["object-type-id", t, "name", name]) => Route::ListByName { object_type_id: s(t), name: s(name) },
        ("GET", ["records", t, id, "memberships"]) => {
            Route::RecordMemberships { object_type_id: s(t), record_id: s(id) }
        }
        ("GET", [id]) => Route::ListGet { list_id: s(id) },
        ("DELETE", [id]) => Route::ListDelete { list_id: s(id) },
        ("PUT", [id, "update-list-name"]) => Route::ListRename { list_id: s(id) },
        ("GET", [id, "memberships"]) => Route::MembershipsGet { list_id: s(id), join_order: false },
        ("GET", [id, "memberships", "join-order"]) => Route::MembershipsGet { list_id: s(id), join_order: true },
        ("DELETE", [id, "memberships"]) => Route::MembershipsClear { list_id: s(id) },
        ("PUT", [id, "memberships", "add"]) => Route::MembershipsAdd { list_id: s(id) },
        ("PUT", [id, "memberships", "remove"]) => Route::MembershipsRemove { list_id: s(id) },
        ("PUT", [id, "memberships", "add-and-remove"]) => Route::MembershipsAddRemove { list_id: s(id) },
        ("PUT", [id, "memberships", "add-from", src]) => {
            Route::MembershipsAddFrom { list_id: s(id), source_id: s(src) }
        }
        _ => return None,
    })
}

fn properties_route(method: &Method, rest: &[&str]) -> Option<Route> {
    let s = |x: &str| x.to_string();
    Some(match (method.as_str(), rest) {
        ("GET", [t]) => Route::PropertiesList { object_type: s(t) },
        ("POST", [t]) => Route::PropertyCreate { object_type: s(t) },
        ("POST", [t, "batch", "create"]) => Route::PropertiesBatchCreate { object_type: s(t) },
        ("POST", [t, "batch", "read"]) => Route::PropertiesBatchRead { object_type: s(t) },
        ("POST", [t, "batch", "archive"]) => Route::PropertiesBatchArchive { object_type: s(t) },
        ("GET", [t, "groups"]) => Route::PropertyGroups { object_type: s(t) },
        ("POST", [t, "groups"]) => Route::PropertyGroupCreate { object_type: s(t) },
        ("GET", [t, "groups", name]) => Route::PropertyGroupGet { object_type: s(t), name: s(name) },
        ("GET", [t, name]) => Route::PropertyGet { object_type: s(t), name: s(name) },
        ("PATCH", [t, name]) => Route::PropertyUpdate { object_type: s(t), name: s(name) },
        ("DELETE", [t, name]) => Route::PropertyArchive { object_type: s(t), name: s(name) },
        _ => return None,
    })
}

fn schemas_route(method: &Method, rest: &[&str]) -> Option<Route> {
    let s = |x: &str| x.to_string();
    Some(match (method.as_str(), rest) {
        ("GET", []) => Route::SchemasList,
        ("POST", []) => Route::SchemaCreate,
        ("GET", [t]) => Route::SchemaGet { object_type: s(t) },
        ("PATCH", [t]) => Route::SchemaUpdate { object_type: s(t) },
        ("DELETE", [t]) => Route::SchemaDelete { object_type: s(t) },
        ("POST", [t, "associations"]) => Route::SchemaAssociationCreate { object_type: s(t) },
        _ => return None,
    })
}

fn oauth_route(method: &Method, version: &str, rest: &[&str]) -> Option<Route> {
    let s = |x: &str| x.to_string();
    Some(match (method.as_str(), rest) {
        ("POST", ["token"]) => Route::OAuthToken { v3: version != "v1" },
        ("POST", ["token", "introspect"]) => Route::OAuthIntrospect,
        ("POST", ["token", "revoke"]) => Route::OAuthRevoke,
        ("GET", ["access-tokens", t]) => Route::OAuthAccessTokenInfo { token: s(t) },
        ("GET", ["refresh-tokens", t]) => Route::OAuthRefreshTokenInfo { token: s(t) },
        ("DELETE", ["refresh-tokens", t]) => Route::OAuthRefreshTokenDelete { token: s(t) },
        _ => return None,
    })
}

pub(crate) fn dispatch(ctx: &Ctx<'_>, route: Route) -> Reply {
    let result = match route {
        Route::ObjectList { object_type } => objects::list(ctx, &object_type),
        Route::ObjectCreate { object_type } => objects::create(ctx, &object_type),
        Route::ObjectGet { object_type, id } => objects::get(ctx, &object_type, &id),
        Route::ObjectUpdate { object_type, id } => objects::update(ctx, &object_type, &id),
        Route::ObjectArchive { object_type, id } => objects::archive(ctx, &object_type, &id),
        Route::ObjectBatch { object_type, op } => match op {
            BatchOp::Create => batch::create(ctx, &object_type),
            BatchOp::Read => batch::read(ctx, &object_type),
            BatchOp::Update => batch::update(ctx, &object_type),
            BatchOp::Upsert => batch::upsert(ctx, &object_type),
            BatchOp::Archive => batch::archive(ctx, &object_type),
        },
        Route::ObjectMerge { object_type } => objects::merge(ctx, &object_type),
        Route::Search { object_type } => search::search(ctx, &object_type),

        Route::AssocPutDefault { from, from_id, to, to_id } => {
            associations::put_default(ctx, &from, &from_id, &to, &to_id)
        }
        Route::AssocPut { from, from_id, to, to_id } => associations::put_labeled(ctx, &from, &from_id, &to, &to_id),
        Route::AssocDelete { from, from_id, to, to_id } => associations::delete(ctx, &from, &from_id, &to, &to_id),
        Route::AssocList { from, from_id, to } => associations::list(ctx, &from, &from_id, &to),
        Route::AssocBatchCreate { from, to } => associations::batch_create(ctx, &from, &to),
        Route::AssocBatchDefault { from, to } => associations::batch_default(ctx, &from, &to),
        Route::AssocBatchRead { from, to } => associations::batch_read(ctx, &from, &to),
        Route::AssocBatchArchive { from, to } => associations::batch_archive(ctx, &from, &to),
        Route::AssocBatchLabelsArchive { from, to } => associations::batch_labels_archive(ctx, &from, &to),
        Route::LabelsList { from, to } => associations::labels(ctx, &from, &to),
        Route::LabelCreate { from, to } => associations::label_create(ctx, &from, &to),
        Route::LabelUpdate { from, to } => associations::label_update(ctx, &from, &to),
        Route::LabelDelete { from, to, type_id } => associations::label_delete(ctx, &from, &to, &type_id),

        Route::PropertiesList { object_type } => properties::list(ctx, &object_type),
        Route::PropertyCreate { object_type } => properties::create(ctx, &object_type),
        Route::PropertyGet { object_type, name } => properties::get(ctx, &object_type, &name),
        Route::PropertyUpdate { object_type, name } => properties::update(ctx, &object_type, &name),
        Route::PropertyArchive { object_type, name } => properties::archive(ctx, &object_type, &name),
        Route::PropertiesBatchCreate { object_type } => properties::batch_create(ctx, &object_type),
        Route::PropertiesBatchRead { object_type } => properties::batch_read(ctx, &object_type),
        Route::PropertiesBatchArchive { object_type } => properties::batch_archive(ctx, &object_type),
        Route::PropertyGroups { object_type } => properties::groups(ctx, &object_type),
        Route::PropertyGroupCreate { object_type } => properties::group_create(ctx, &object_type),
        Route::PropertyGroupGet { object_type, name } => properties::group_get(ctx, &object_type, &name),

        Route::SchemasList => properties::schemas_list(ctx),
        Route::SchemaCreate => properties::schema_create(ctx),
        Route::SchemaGet { object_type } => properties::schema_get(ctx, &object_type),
        Route::SchemaUpdate { object_type } => properties::schema_update(ctx, &object_type),
        Route::SchemaDelete { object_type } => properties::schema_delete(ctx, &object_type),
        Route::SchemaAssociationCreate { object_type } => properties::schema_association_create(ctx, &object_type),

        Route::ListCreate => lists::create(ctx),
        Route::ListSearch => lists::search(ctx),
        Route::ListGet { list_id } => lists::get(ctx, &list_id),
        Route::ListDelete { list_id } => lists::delete(ctx, &list_id),
        Route::ListByName { object_type_id, name } => lists::by_name(ctx, &object_type_id, &name),
        Route::ListRename { list_id } => lists::rename(ctx, &list_id),
        Route::MembershipsAdd { list_id } => lists::add(ctx, &list_id),
        Route::MembershipsRemove { list_id } => lists::remove(ctx, &list_id),
        Route::MembershipsAddRemove { list_id } => lists::add_and_remove(ctx, &list_id),
        Route::MembershipsAddFrom { list_id, source_id } => lists::add_from(ctx, &list_id, &source_id),
        Route::MembershipsGet { list_id, join_order } => lists::memberships(ctx, &list_id, join_order),
        Route::MembershipsClear { list_id } => lists::clear(ctx, &list_id),
        Route::RecordMemberships { object_type_id, record_id } => {
            lists::record_memberships(ctx, &object_type_id, &record_id)
        }

        Route::OAuthAuthorize => oauth::authorize(ctx),
        Route::OAuthToken { v3 } => oauth::token(ctx, v3),
        Route::OAuthAccessTokenInfo { token } => oauth::access_token_info(ctx, &token),
        Route::OAuthRefreshTokenInfo { token } => oauth::refresh_token_info(ctx, &token),
        Route::OAuthRefreshTokenDelete { token } => oauth::refresh_token_delete(ctx, &token),
        Route::OAuthIntrospect => oauth::introspect(ctx),
        Route::OAuthRevoke => oauth::revoke(ctx),
    };
    result.unwrap_or_else(|reply| reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_path_families_route_the_same() {
        let legacy = Route::parse(&Method::POST, "/crm/v3/objects/contacts/batch/upsert");
        let dated = Route::parse(&Method::POST, "/crm/objects/2026-03/contacts/batch/upsert");
        assert_eq!(legacy, dated);
        assert_eq!(legacy, Some(Route::ObjectBatch { object_type: "contacts".into(), op: BatchOp::Upsert }));
        assert_eq!(
            Route::parse(&Method::PUT, "/crm/v4/objects/contacts/1/associations/companies/2"),
            Route::parse(&Method::PUT, "/crm/objects/2026-09/contacts/1/associations/companies/2"),
        );
        assert!(Route::parse(&Method::GET, "/crm/v4/objects/contacts").is_none());
        assert_eq!(
            Route::parse(&Method::POST, "/crm/associations/2026-03/0-1/0-2/batch/read"),
            Some(Route::AssocBatchRead { from: "0-1".into(), to: "0-2".into() })
        );
        assert_eq!(
            Route::parse(&Method::GET, "/crm/v3/lists/object-type-id/0-1/name/Test%20List"),
            Some(Route::ListByName { object_type_id: "0-1".into(), name: "Test List".into() })
        );
        assert_eq!(Route::parse(&Method::POST, "/oauth/v1/token"), Some(Route::OAuthToken { v3: false }));
        assert!(Route::parse(&Method::GET, "/crm/objects/2026-3/contacts").is_none());
        assert!(Route::parse(&Method::GET, "/nope").is_none());
    }
}
