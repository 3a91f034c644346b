//! Read-only endpoints under `/_emulator/` for a process that runs the emulator as a separate
//! process (`hubsync bench`) and cannot call the [`super::Emulator`] handle: the request
//! journal and what the portal holds. They need no token, are never rate limited, faulted or
//! journaled, and are not HubSpot's.

use serde_json::{json, Value};

use super::reply::Reply;
use super::Shared;

/// The path prefix of these endpoints.
pub(crate) const PREFIX: &str = "/_emulator/";

/// Answers `GET /_emulator/journal?since=N` and `GET /_emulator/counts?...`.
pub(crate) fn respond(shared: &Shared, method: &str, path: &str, query: &str) -> Reply {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("");
    match (method, path.trim_end_matches('/')) {
        ("GET", "/_emulator/journal") => journal(shared, param("since").parse().unwrap_or(0)),
        ("GET", "/_emulator/counts") => counts(shared, param("records"), param("associations"), param("lists")),
        _ => {
            Reply::json(404, &json!({"status": "error", "message": "unknown emulator endpoint; see docs/emulator.md"}))
        }
    }
}

/// The requests numbered `since` and after: method, path, status, and arrival and answer times
/// in microseconds since the emulator started; `next` is the `since` of the next call.
fn journal(shared: &Shared, since: u64) -> Reply {
    let (entries, next) = shared.journal.since(since);
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "method": e.method,
                "path": e.path,
                "status": e.status,
                "received_us": e.received_at.saturating_duration_since(shared.journal.started).as_micros() as u64,
                "answered_us": e.answered_at.saturating_duration_since(shared.journal.started).as_micros() as u64,
            })
        })
        .collect();
    Reply::json(200, &json!({"next": next, "entries": entries}))
}

/// Live records per object type (`records=contacts,companies`), associations per pair of
/// types (`associations=contacts:companies`) and members per list name (`lists=NAME,...`).
fn counts(shared: &Shared, records: &str, associations: &str, lists: &str) -> Reply {
    let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    let names = |s: &str| s.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect::<Vec<_>>();
    let mut out = json!({"records": {}, "associations": {}, "lists": {}});
    for name in names(records) {
        let n = store
            .resolve(&name)
            .map(|i| store.object_type(i).records.values().filter(|r| !r.archived).count())
            .unwrap_or(0);
        out["records"][name.as_str()] = json!(n);
    }
    for pair in names(associations) {
        let n = match pair.split_once(':') {
            Some((from, to)) => match (store.type_id_of(from), store.type_id_of(to)) {
                (Some(from), Some(to)) => store.associations.all_links(&from, &to).len(),
                _ => 0,
            },
            None => 0,
        };
        out["associations"][pair.as_str()] = json!(n);
    }
    for name in names(lists) {
        let n = store.lists.by_name(&name).map(|l| l.members.len()).unwrap_or(0);
        out["lists"][name.as_str()] = json!(n);
    }
    Reply::json(200, &out)
}
