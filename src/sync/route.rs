//! Routing: pure decisions about one changed row: which properties to send, and which way it
//! goes to HubSpot (update by id, upsert by a unique property, or look up first). No I/O here;
//! the requests themselves are built by the HubSpot client.

use std::collections::BTreeMap;

use crate::config::SyncMode;
use crate::state::ChangeRow;

/// HubSpot's limit of inputs per object batch request.
pub const BATCH_SIZE: usize = hubspot_client::OBJECT_BATCH_LIMIT;

/// The properties a changed row must send. New records send their non-null values; known
/// records send only values that differ from what HubSpot acknowledged, with `""` clearing a
/// value that became null. A full resync sends every value of every row.
pub fn changed_properties(props: &[String], row: &ChangeRow, full: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in props.iter().zip(&row.values) {
        let old = row.old_props.as_ref().map(|o| o.get(name).cloned().flatten());
        match (value, old) {
            (Some(v), None) => {
                out.insert(name.clone(), v.clone());
            }
            (None, None) => {}
            (Some(v), Some(old)) => {
                if full || old.as_deref() != Some(v.as_str()) {
                    out.insert(name.clone(), v.clone());
                }
            }
            (None, Some(old)) => {
                if old.is_some() {
                    out.insert(name.clone(), String::new());
                }
            }
        }
    }
    out
}

/// The full property values of a row, as stored in the snapshot once acknowledged.
pub fn snapshot_props(props: &[String], values: &[Option<String>]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = props
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let v = value.as_ref().map_or(serde_json::Value::Null, |s| serde_json::Value::String(s.clone()));
            (name.clone(), v)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Where a changed row goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The record's id is known: batch update by id.
    Update { id: String },
    /// Unknown id, unique match property, upsert mode: batch upsert by `idProperty`.
    Upsert,
    /// Unknown id, unique match property, update or create mode: batch read by `idProperty` first.
    ReadByProperty,
    /// Unknown id, non-unique match property: batched search first.
    Search,
    /// Nothing to do for this row in this mode (counted as skipped).
    Skip,
    /// The row cannot be sent (code, message).
    Reject(&'static str, String),
}

/// Decides how a changed row reaches HubSpot.
pub fn route(row: &ChangeRow, mode: SyncMode, match_is_unique: bool, match_column: &str) -> Route {
    if let Some(id) = &row.hubspot_id {
        return match mode {
            SyncMode::Create => Route::Skip,
            SyncMode::Upsert | SyncMode::Update => Route::Update { id: id.clone() },
        };
    }
    route_by_match(row.match_value.as_deref(), mode, match_is_unique, match_column)
}

/// How a row without a known HubSpot id reaches HubSpot: through its match rule (also for a row
/// whose record was deleted in HubSpot, once its id is forgotten).
pub fn route_by_match(match_value: Option<&str>, mode: SyncMode, match_is_unique: bool, match_column: &str) -> Route {
    match match_value.map(str::trim) {
        None | Some("") => Route::Reject(
            "MISSING_MATCH_VALUE",
            format!("the match column `{match_column}` is empty, so the record cannot be matched in HubSpot"),
        ),
        Some(_) if !match_is_unique => Route::Search,
        Some(_) if mode == SyncMode::Upsert => Route::Upsert,
        Some(_) => Route::ReadByProperty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Option<&str>], old: Option<&[(&str, Option<&str>)]>, id: Option<&str>) -> ChangeRow {
        ChangeRow {
            n: 1,
            pk: "k1".into(),
            match_value: Some("a@x.io".into()),
            hash: 1,
            hubspot_id: id.map(str::to_string),
            old_props: old.map(|o| o.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()),
            values: values.iter().map(|v| v.map(str::to_string)).collect(),
            links: Vec::new(),
        }
    }

    fn props() -> Vec<String> {
        vec!["firstname".into(), "lastname".into(), "plan".into()]
    }

    #[test]
    fn new_records_send_non_null_values() {
        let r = row(&[Some("Ada"), None, Some("pro")], None, None);
        let sent = changed_properties(&props(), &r, false);
        assert_eq!(
            sent.into_iter().collect::<Vec<_>>(),
            vec![("firstname".into(), "Ada".into()), ("plan".into(), "pro".into())]
        );
    }

    #[test]
    fn known_records_send_only_changes_and_clear_nulls() {
        let old: &[(&str, Option<&str>)] =
            &[("firstname", Some("Ada")), ("lastname", Some("L")), ("plan", Some("free"))];
        let r = row(&[Some("Ada"), None, Some("pro")], Some(old), Some("7"));
        let sent = changed_properties(&props(), &r, false);
        assert_eq!(
            sent.into_iter().collect::<Vec<_>>(),
            vec![("lastname".into(), "".into()), ("plan".into(), "pro".into())]
        );
        let all = changed_properties(&props(), &r, true);
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn routes_follow_mode_and_uniqueness() {
        let known = row(&[], None, Some("9"));
        assert_eq!(route(&known, SyncMode::Upsert, true, "email"), Route::Update { id: "9".into() });
        assert_eq!(route(&known, SyncMode::Create, true, "email"), Route::Skip);
        let unknown = row(&[], None, None);
        assert_eq!(route(&unknown, SyncMode::Upsert, true, "email"), Route::Upsert);
        assert_eq!(route(&unknown, SyncMode::Update, true, "email"), Route::ReadByProperty);
        assert_eq!(route(&unknown, SyncMode::Upsert, false, "name"), Route::Search);
        let mut blank = unknown.clone();
        blank.match_value = Some("  ".into());
        assert!(matches!(route(&blank, SyncMode::Upsert, true, "email"), Route::Reject("MISSING_MATCH_VALUE", _)));
    }

    #[test]
    fn snapshot_props_keep_nulls() {
        assert_eq!(snapshot_props(&["a".into(), "b".into()], &[Some("1".into()), None]), r#"{"a":"1","b":null}"#);
    }
}
