//! One request as handlers see it (`Ctx`: query, body, token, clock) and what every handler
//! asks of it: resolving an object type by any of its names, with the caller's scopes.

use std::sync::MutexGuard;

use crate::auth::{object_scopes, Access, Auth};
use crate::reply::{HsError, HsResult, Reply};
use crate::store::Store;
use crate::Shared;

/// One request as handlers see it.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub query: Vec<(String, String)>,
    pub body: &'a [u8],
    /// `None` on the OAuth endpoints, which need no token.
    pub auth: Option<Auth>,
    pub now: i64,
    pub path: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A repeated or comma-separated list parameter (`properties=a,b&properties=c`).
    pub(crate) fn list_param(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect()
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.param(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Answers 403 `MISSING_SCOPES` unless the token holds one of `any_of`.
    pub(crate) fn require(&self, any_of: &[String]) -> HsResult<()> {
        match &self.auth {
            Some(auth) => auth.require(any_of),
            None => Ok(()),
        }
    }
}

pub(crate) fn unknown_type(name: &str) -> Reply {
    HsError::new(400, format!("Unable to infer object type from: {name}")).reply()
}

/// Resolves an object type by any of its names and checks the caller's scopes for it.
pub(crate) fn resolve_type(ctx: &Ctx<'_>, store: &Store, name: &str, access: Access) -> HsResult<usize> {
    let i = store.resolve(name).ok_or_else(|| unknown_type(name))?;
    let t = store.object_type(i);
    ctx.require(&object_scopes(&t.type_id, t.is_custom(), access))?;
    Ok(i)
}
