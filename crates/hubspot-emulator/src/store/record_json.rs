//! A record rendered as HubSpot returns it (`SimplePublicObject` and friends): serialized
//! straight from the store, without copying values.

use serde::ser::{Serialize, SerializeMap, Serializer};
use std::sync::Arc;

use super::record::Record;
use crate::clock;

/// Which properties a record's JSON carries.
pub(crate) enum Selection<'a> {
    /// Every property the record has.
    AllSet,
    /// Every property the record has, plus these names as `null` when unset: a write answer
    /// echoes the known properties the input wrote as `null` (recorded real HubSpot answers, docs/emulator.md).
    Written(&'a [Arc<str>]),
    /// These names; an unset one reads as `null`.
    Named(&'a [Arc<str>]),
}

/// A record as HubSpot returns it (`SimplePublicObject` and friends), serialized straight
/// from the store without copying.
pub(crate) struct RecordJson<'a> {
    pub record: &'a Record,
    pub selection: &'a Selection<'a>,
    pub trace_id: Option<&'a str>,
    /// `Some` on upsert results.
    pub new: Option<bool>,
    /// The type's record URL without the id (see `ObjectType::url_prefix`).
    pub url_prefix: &'a str,
}

/// `{prefix}{id}`, written without an intermediate `String`.
struct RecordUrl<'a>(&'a str, u64);

impl Serialize for RecordUrl<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}{}", self.0, self.1))
    }
}

struct PropsJson<'a>(&'a Record, &'a Selection<'a>);

impl Serialize for PropsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            Selection::AllSet => {
                let mut map = s.serialize_map(Some(self.0.props.len()))?;
                for (k, v) in &self.0.props {
                    map.serialize_entry(&**k, v)?;
                }
                map.end()
            }
            Selection::Written(nulls) => {
                let mut map = s.serialize_map(None)?;
                for (k, v) in &self.0.props {
                    map.serialize_entry(&**k, v)?;
                }
                for name in nulls.iter().filter(|n| !self.0.props.contains_key(*n)) {
                    map.serialize_entry(&**name, &())?;
                }
                map.end()
            }
            Selection::Named(names) => {
                let mut map = s.serialize_map(Some(names.len()))?;
                for name in names.iter() {
                    map.serialize_entry(&**name, &self.0.props.get(name))?;
                }
                map.end()
            }
        }
    }
}

struct Iso(i64);

impl Serialize for Iso {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        clock::with_iso(self.0, |text| s.serialize_str(text))
    }
}

/// A record id as a JSON string, written without an intermediate `String`.
struct IdString(u64);

impl Serialize for IdString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl Serialize for RecordJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &IdString(r.id))?;
        map.serialize_entry("properties", &PropsJson(r, self.selection))?;
        map.serialize_entry("createdAt", &Iso(r.created_at))?;
        map.serialize_entry("updatedAt", &Iso(r.updated_at))?;
        map.serialize_entry("archived", &r.archived)?;
        if r.archived {
            map.serialize_entry("archivedAt", &Iso(r.updated_at))?;
        }
        if let Some(t) = self.trace_id {
            map.serialize_entry("objectWriteTraceId", t)?;
        }
        map.serialize_entry("url", &RecordUrl(self.url_prefix, r.id))?;
        if let Some(new) = self.new {
            map.serialize_entry("new", &new)?;
        }
        map.end()
    }
}
