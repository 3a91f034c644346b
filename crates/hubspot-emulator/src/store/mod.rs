//! Everything the emulated portal holds: object types (standard and custom) with their
//! property definitions and records, associations, lists and OAuth grants. One `Store` sits
//! behind one mutex; handlers parse outside it and keep their work inside it short.
//!
//! Records are indexed by id (a `BTreeMap`, for paging in id order) and by the value of every
//! unique property (contact `email` and each `hasUniqueValue` property), so an upsert of 100
//! inputs is 100 hash lookups, never a scan.

pub(crate) mod associations;
pub(crate) mod lists;
pub(crate) mod properties;
pub(crate) mod tokens;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::clock;
use associations::AssociationStore;
use hubspot_model::objects::STANDARD_OBJECTS;
use lists::ListStore;
use properties::{PropertyDef, ValueError};
use tokens::TokenStore;

/// The first record id handed out. Real ids are above 2^32, so clients that squeeze ids into
/// 32 bits fail here too.
const FIRST_RECORD_ID: u64 = 100_000_000_001;
const FIRST_CUSTOM_TYPE: u64 = 3_000_001;

/// A fast, non-cryptographic hasher for the store's string-keyed maps: the emulator runs on
/// loopback for tests, so SipHash's protection against crafted keys is not worth its cost.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// One record of one object type.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub id: u64,
    /// Property values as strings; maintained ones (`hs_object_id`, create and modify dates)
    /// included. An empty value is never stored: writing `""` removes the property.
    pub props: BTreeMap<Arc<str>, String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived: bool,
    /// When search starts seeing `props`; before that it sees `stale`.
    pub indexed_at: i64,
    /// What search sees until `indexed_at`: `None` = not in the index yet.
    pub stale: Option<BTreeMap<Arc<str>, String>>,
}

impl Record {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }

    /// The properties search sees at `now`, or `None` while a new record is not indexed yet.
    pub(crate) fn search_view(&self, now: i64) -> Option<&BTreeMap<Arc<str>, String>> {
        if now < self.indexed_at {
            self.stale.as_ref()
        } else {
            Some(&self.props)
        }
    }
}

/// A custom object's schema as created through the schemas API.
#[derive(Clone, Debug)]
pub(crate) struct CustomSchema {
    pub id: String,
    pub name: String,
    pub fully_qualified_name: String,
    pub labels: Value,
    pub primary_display_property: Option<String>,
    pub secondary_display_properties: Vec<String>,
    pub searchable_properties: Vec<String>,
    pub required_properties: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One object type with its properties and records.
pub(crate) struct ObjectType {
    pub type_id: String,
    /// `https://app.hubspot.com/contacts/{portal}/record/{type_id}/`: a record's `url` is this
    /// plus its id (hubspot-api.md §9.1).
    url_prefix: String,
    /// The plural API name (`contacts`), or a custom object's name.
    pub name: String,
    /// The singular name (`contact`), or a custom object's name.
    pub singular: String,
    pub schema: Option<CustomSchema>,
    properties: Vec<PropertyDef>,
    prop_index: FastMap<Arc<str>, usize>,
    pub records: BTreeMap<u64, Record>,
    /// Unique property -> stored value (lowercase for email) -> record id.
    unique: FastMap<Arc<str>, FastMap<String, u64>>,
    /// Merged-away record id -> the record it was merged into.
    merged: FastMap<u64, u64>,
}

/// Property writes as a request names them: `None` is a JSON `null`.
pub(crate) type PropInput<'a> = Vec<(Cow<'a, str>, Option<Cow<'a, str>>)>;

/// Why two records cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MergeError {
    /// This id names no live record of the type.
    NotFound(u64),
    /// Both ids are the same record.
    SameRecord,
}

/// A property error on one input, as listed in "Property values were not valid: [...]".
#[derive(Debug, Clone)]
pub(crate) struct PropError {
    pub name: String,
    pub code: &'static str,
    pub message: String,
    /// `PROPERTY_DOESNT_EXIST` entries carry `localizedErrorMessage` and `portalId`.
    pub doesnt_exist: bool,
}

/// Checked property writes, ready to apply.
#[derive(Debug, Default)]
pub(crate) struct Changes(pub Vec<(Arc<str>, String)>);

/// A unique value already held by another record.
#[derive(Debug)]
pub(crate) struct UniqueConflict {
    pub property: Arc<str>,
    pub value: String,
    pub existing_id: u64,
}

impl ObjectType {
    fn new(
        portal_id: u64,
        type_id: &str,
        name: &str,
        singular: &str,
        schema: Option<CustomSchema>,
        props: Vec<PropertyDef>,
    ) -> Self {
        let mut t = ObjectType {
            type_id: type_id.to_string(),
            url_prefix: format!("https://app.hubspot.com/contacts/{portal_id}/record/{type_id}/"),
            name: name.to_string(),
            singular: singular.to_string(),
            schema,
            properties: Vec::new(),
            prop_index: FastMap::default(),
            records: BTreeMap::new(),
            unique: FastMap::default(),
            merged: FastMap::default(),
        };
        for p in props {
            t.add_property(p);
        }
        if type_id == "0-1" {
            t.unique.entry(Arc::from("email")).or_default();
        }
        t
    }

    pub(crate) fn is_custom(&self) -> bool {
        self.schema.is_some()
    }

    pub(crate) fn is_contact(&self) -> bool {
        self.type_id == "0-1"
    }

    /// `CONTACT`, `COMPANY`, ... as HubSpot names the type in messages.
    pub(crate) fn upper_name(&self) -> String {
        self.singular.to_ascii_uppercase()
    }

    pub(crate) fn properties(&self) -> impl Iterator<Item = &PropertyDef> {
        self.properties.iter()
    }

    pub(crate) fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.prop_index.get(name).map(|i| &self.properties[*i]).filter(|p| !p.archived)
    }

    pub(crate) fn property_mut(&mut self, name: &str) -> Option<&mut PropertyDef> {
        let i = *self.prop_index.get(name)?;
        Some(&mut self.properties[i])
    }

    /// Adds (or revives) a property definition; a unique one gets its value index.
    pub(crate) fn add_property(&mut self, p: PropertyDef) {
        if p.has_unique_value {
            let index = self.build_unique_index(&p.name);
            self.unique.insert(p.name.clone(), index);
        }
        match self.prop_index.get(&p.name) {
            Some(i) => self.properties[*i] = p,
            None => {
                self.prop_index.insert(p.name.clone(), self.properties.len());
                self.properties.push(p);
            }
        }
    }

    fn build_unique_index(&self, name: &str) -> FastMap<String, u64> {
        self.records
            .values()
            .filter(|r| !r.archived)
            .filter_map(|r| r.get(name).map(|v| (v.to_string(), r.id)))
            .collect()
    }

    /// Archives a property definition; its values stay on records but are no longer read.
    pub(crate) fn archive_property(&mut self, name: &str, now: i64) {
        if let Some(p) = self.property_mut(name) {
            p.archived = true;
            p.updated_at = now;
        }
        if !(self.is_contact() && name == "email") {
            self.unique.remove(name);
        }
    }

    pub(crate) fn unique_count(&self) -> usize {
        self.properties.iter().filter(|p| p.has_unique_value && !p.archived).count()
    }

    /// Whether `name` may key an upsert or an `idProperty` lookup: contact `email` or a
    /// `hasUniqueValue` property.
    pub(crate) fn is_unique_key(&self, name: &str) -> bool {
        (self.is_contact() && name == "email") || self.property(name).is_some_and(|p| p.has_unique_value)
    }

    /// The form a unique value is indexed under (emails lowercased).
    pub(crate) fn unique_key<'v>(&self, name: &str, value: &'v str) -> Cow<'v, str> {
        if self.is_contact() && name == "email" {
            let trimmed = value.trim();
            if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(trimmed.to_ascii_lowercase())
            } else {
                Cow::Borrowed(trimmed)
            }
        } else {
            Cow::Borrowed(value)
        }
    }

    /// The live record whose unique property `name` holds `value`.
    pub(crate) fn find_unique(&self, name: &str, value: &str) -> Option<u64> {
        self.unique.get(name)?.get(&*self.unique_key(name, value)).copied()
    }

    /// The live record under an already normalized unique key (see `unique_key`).
    pub(crate) fn find_key(&self, name: &str, key: &str) -> Option<u64> {
        self.unique.get(name)?.get(key).copied()
    }

    pub(crate) fn live(&self, id: u64) -> Option<&Record> {
        self.records.get(&id).filter(|r| !r.archived)
    }

    /// The live record a merged-away record id now stands for, following merges of merges.
    pub(crate) fn survivor_of(&self, id: u64) -> Option<u64> {
        let mut current = *self.merged.get(&id)?;
        // A merge chain cannot loop (a survivor is live, a merged-away id is not); the bound
        // only keeps a bug from hanging the server.
        for _ in 0..1_000 {
            match self.merged.get(&current) {
                Some(next) => current = *next,
                None => break,
            }
        }
        self.live(current).map(|r| r.id)
    }

    /// Whether `id` is a record id that was merged into another record.
    pub(crate) fn is_merged_away(&self, id: &str) -> bool {
        id.trim().parse::<u64>().is_ok_and(|id| self.merged.contains_key(&id))
    }

    /// A record's JSON with no trace id and no `new` flag; set those with struct update.
    pub(crate) fn json<'a>(&'a self, record: &'a Record, selection: &'a Selection<'a>) -> RecordJson<'a> {
        RecordJson { record, selection, trace_id: None, new: None, url_prefix: &self.url_prefix }
    }

    /// Resolves an input id: a record id, or with `id_property` a unique property's value.
    pub(crate) fn resolve_id(&self, id: &str, id_property: Option<&str>) -> Option<u64> {
        match id_property {
            Some(p) if p != "hs_object_id" => self.find_unique(p, id),
            _ => id.trim().parse().ok().filter(|id| self.live(*id).is_some()),
        }
    }

    /// Checks property writes against the definitions: unknown and read-only properties and
    /// bad values are refused, the rest normalized (emails lowercased, dates as HubSpot
    /// stores them). `current` is the record being updated.
    ///
    /// A `null` for a property the portal does not have is ignored, as HubSpot does
    /// (hubspot-api.md §9.1); a `null` for a known one clears it, like `""`.
    pub(crate) fn check(&self, input: PropInput<'_>, current: Option<&Record>) -> Result<Changes, Vec<PropError>> {
        let mut changes = Vec::with_capacity(input.len());
        let mut errors = Vec::new();
        for (name, raw) in input {
            let Some(def) = self.property(&name) else {
                if raw.is_none() {
                    continue;
                }
                errors.push(PropError {
                    code: "PROPERTY_DOESNT_EXIST",
                    message: format!("Property \"{name}\" does not exist"),
                    name: name.into_owned(),
                    doesnt_exist: true,
                });
                continue;
            };
            if def.read_only {
                errors.push(PropError {
                    code: "READ_ONLY_VALUE",
                    message: format!("\"{name}\" is a read only property; its value cannot be set."),
                    name: name.into_owned(),
                    doesnt_exist: false,
                });
                continue;
            }
            let raw = raw.unwrap_or(Cow::Borrowed(""));
            let existing = current.and_then(|r| r.get(&name));
            // Keep the string already owned when the value is stored as written.
            let normalized = def.normalize(&raw, existing, self.is_contact() && name == "email").map(|v| match v {
                Cow::Borrowed(_) => None,
                Cow::Owned(v) => Some(v),
            });
            // A value equal to the stored one is no change.
            match normalized {
                Ok(None) if existing.unwrap_or_default() == raw && current.is_some() => {}
                Ok(Some(value)) if existing.unwrap_or_default() == value && current.is_some() => {}
                Ok(None) => changes.push((def.name.clone(), raw.into_owned())),
                Ok(Some(value)) => changes.push((def.name.clone(), value)),
                Err(ValueError { code, message }) => {
                    errors.push(PropError { name: name.into_owned(), code, message, doesnt_exist: false })
                }
            }
        }
        if errors.is_empty() {
            Ok(Changes(changes))
        } else {
            Err(errors)
        }
    }

    /// The first unique value in `changes` already held by a record other than `except`.
    pub(crate) fn conflict(&self, changes: &Changes, except: Option<u64>) -> Option<UniqueConflict> {
        changes.0.iter().filter(|(_, v)| !v.is_empty()).find_map(|(name, value)| {
            let existing_id = self.unique.get(name)?.get(&*self.unique_key(name, value)).copied()?;
            (Some(existing_id) != except).then(|| UniqueConflict {
                property: name.clone(),
                value: value.clone(),
                existing_id,
            })
        })
    }

    /// Sets the read-only properties HubSpot maintains on every record (hubspot-api.md §9.1):
    /// ids, dates and source on create, the modify date on every write, and the values
    /// derived from others. Only properties the type defines are set.
    fn maintain(&self, props: &mut BTreeMap<Arc<str>, String>, id: u64, now: i64, created: bool) {
        for (name, value) in properties::system_values(&self.type_id, props, id, now, created) {
            let Some(def) = self.property(name) else { continue };
            match value {
                Some(v) if !v.is_empty() => {
                    props.insert(def.name.clone(), v);
                }
                _ => {
                    props.remove(name);
                }
            }
        }
    }

    /// The values a record holds for the unique properties, to re-index after a write.
    fn unique_values(
        unique: &FastMap<Arc<str>, FastMap<String, u64>>,
        props: &BTreeMap<Arc<str>, String>,
    ) -> Vec<(Arc<str>, Option<String>)> {
        unique.keys().map(|name| (name.clone(), props.get(name).cloned())).collect()
    }

    fn reindex(&mut self, id: u64, before: &[(Arc<str>, Option<String>)], after: &[(Arc<str>, Option<String>)]) {
        let contact = self.is_contact();
        for ((name, old), (_, new)) in before.iter().zip(after) {
            if old == new {
                continue;
            }
            let key =
                |v: &str| if contact && &**name == "email" { v.trim().to_ascii_lowercase() } else { v.to_string() };
            let Some(index) = self.unique.get_mut(name) else { continue };
            if let Some(v) = old {
                let k = key(v);
                if index.get(&k) == Some(&id) {
                    index.remove(&k);
                }
            }
            if let Some(v) = new {
                index.insert(key(v), id);
            }
        }
    }

    /// Stores a new record. The caller has checked conflicts.
    pub(crate) fn create(&mut self, id: u64, changes: Changes, now: i64, lag_ms: i64) -> &Record {
        let mut props = BTreeMap::new();
        for (name, value) in changes.0 {
            if !value.is_empty() {
                props.insert(name, value);
            }
        }
        self.maintain(&mut props, id, now, true);
        let contact = self.is_contact();
        for (name, index) in self.unique.iter_mut() {
            if let Some(v) = props.get(name) {
                let key = if contact && &**name == "email" { v.trim().to_ascii_lowercase() } else { v.clone() };
                index.insert(key, id);
            }
        }
        let record = Record {
            id,
            props,
            created_at: now,
            updated_at: now,
            archived: false,
            indexed_at: now.saturating_add(lag_ms),
            stale: None,
        };
        self.records.entry(id).or_insert(record)
    }

    /// Applies writes to a live record. The caller has checked conflicts.
    pub(crate) fn update(&mut self, id: u64, changes: Changes, now: i64, lag_ms: i64) -> Option<&Record> {
        let record = self.records.get_mut(&id).filter(|r| !r.archived)?;
        // Re-index only when a unique property is written.
        let reindex = changes.0.iter().any(|(name, _)| self.unique.contains_key(name));
        let before = if reindex { Self::unique_values(&self.unique, &record.props) } else { Vec::new() };
        if lag_ms > 0 && now >= record.indexed_at {
            record.stale = Some(record.props.clone());
        }
        for (name, value) in changes.0 {
            if value.is_empty() {
                record.props.remove(&name);
            } else {
                record.props.insert(name, value);
            }
        }
        record.updated_at = now;
        if lag_ms > 0 {
            record.indexed_at = now.saturating_add(lag_ms);
        }
        let mut props = std::mem::take(&mut record.props);
        self.maintain(&mut props, id, now, false);
        let record = self.records.get_mut(&id)?;
        record.props = props;
        if reindex {
            let after = Self::unique_values(&self.unique, &record.props);
            self.reindex(id, &before, &after);
        }
        self.records.get(&id)
    }

    /// Moves a record to the recycle bin; its unique values become free.
    pub(crate) fn archive(&mut self, id: u64, now: i64) -> bool {
        let Some(record) = self.records.get_mut(&id).filter(|r| !r.archived) else { return false };
        record.archived = true;
        record.updated_at = now;
        let before = Self::unique_values(&self.unique, &record.props);
        let after: Vec<_> = before.iter().map(|(n, _)| (n.clone(), None)).collect();
        self.reindex(id, &before, &after);
        true
    }

    /// Merges record `merged` into `primary` (hubspot-api.md §1.2 merge): the survivor keeps
    /// its values, takes the merged-away record's values for properties it has no value
    /// for, and lists the merged-away id in `hs_merged_object_ids` (contacts: also in
    /// `hs_all_contact_vids`). The merged-away record is gone; its id stands for the survivor
    /// from now on (see `survivor_of`). The caller moves associations.
    pub(crate) fn merge(&mut self, primary: u64, merged: u64, now: i64, lag_ms: i64) -> Result<(), MergeError> {
        if primary == merged {
            return Err(MergeError::SameRecord);
        }
        let kept = self.live(primary).ok_or(MergeError::NotFound(primary))?;
        self.live(merged).ok_or(MergeError::NotFound(merged))?;
        let kept_props = kept.props.clone();
        // Free the merged-away record's unique values before the survivor takes any of them.
        let gone = self.records.remove(&merged).ok_or(MergeError::NotFound(merged))?;
        let before = Self::unique_values(&self.unique, &gone.props);
        let after: Vec<_> = before.iter().map(|(n, _)| (n.clone(), None)).collect();
        self.reindex(merged, &before, &after);
        let mut changes: Vec<(Arc<str>, String)> = gone
            .props
            .iter()
            .filter(|(name, _)| !kept_props.contains_key(*name))
            .filter(|(name, _)| self.property(name).is_some_and(|p| !p.read_only))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let joined = |name: &str, first: String| {
            let mut ids: Vec<String> = vec![first];
            for props in [&kept_props, &gone.props] {
                ids.extend(props.get(name).into_iter().flat_map(|v| v.split(';')).map(String::from));
            }
            ids.retain(|v| !v.is_empty());
            ids.dedup();
            ids
        };
        if let Some(p) = self.property("hs_merged_object_ids") {
            let mut ids = joined("hs_merged_object_ids", merged.to_string());
            ids.sort();
            ids.dedup();
            changes.push((p.name.clone(), ids.join(";")));
        }
        if let Some(p) = self.property("hs_all_contact_vids") {
            let mut ids = joined("hs_all_contact_vids", primary.to_string());
            ids.push(merged.to_string());
            ids.sort();
            ids.dedup();
            changes.push((p.name.clone(), ids.join(";")));
        }
        for target in self.merged.values_mut().filter(|t| **t == merged) {
            *target = primary;
        }
        self.merged.insert(merged, primary);
        self.update(primary, Changes(changes), now, lag_ms);
        Ok(())
    }

    /// The property names a read returns: the requested ones HubSpot knows plus the ones it
    /// always adds, or the type's defaults when none were requested.
    pub(crate) fn read_selection(&self, requested: &[String]) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = if requested.is_empty() {
            properties::default_read_properties(&self.type_id)
                .iter()
                .filter_map(|n| self.property(n).map(|p| p.name.clone()))
                .collect()
        } else {
            let always = properties::always_read_properties(&self.type_id);
            requested
                .iter()
                .map(String::as_str)
                .chain(always.iter().copied())
                .filter_map(|n| self.property(n).map(|p| p.name.clone()))
                .collect()
        };
        names.sort();
        names.dedup();
        names
    }

    pub(crate) fn to_em_record(&self, r: &Record) -> EmRecord {
        EmRecord {
            id: r.id.to_string(),
            properties: r.props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            created_at: clock::iso_millis(r.created_at),
            updated_at: clock::iso_millis(r.updated_at),
            archived: r.archived,
        }
    }

    pub(crate) fn schema_json(&self, portal_id: u64, associations: Vec<Value>) -> Value {
        let Some(s) = &self.schema else { return Value::Null };
        serde_json::json!({
            "id": s.id,
            "objectTypeId": self.type_id,
            "fullyQualifiedName": s.fully_qualified_name,
            "name": s.name,
            "labels": s.labels,
            "portalId": portal_id,
            "properties": self.properties.iter().filter(|p| !p.archived).map(PropertyDef::to_json).collect::<Vec<_>>(),
            "associations": associations,
            "requiredProperties": s.required_properties,
            "searchableProperties": s.searchable_properties,
            "primaryDisplayProperty": s.primary_display_property,
            "secondaryDisplayProperties": s.secondary_display_properties,
            "createdAt": clock::iso_millis(s.created_at),
            "updatedAt": clock::iso_millis(s.updated_at),
            "archived": false,
        })
    }
}

/// Which properties a record's JSON carries.
pub(crate) enum Selection<'a> {
    /// Every property the record has (write answers).
    AllSet,
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

/// A record as a test sees it through [`crate::Emulator::records`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmRecord {
    pub id: String,
    pub properties: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    pub archived: bool,
}

/// The whole portal.
pub(crate) struct Store {
    pub portal_id: u64,
    next_record_id: u64,
    types: Vec<ObjectType>,
    /// Lowercase name, singular, type id or custom name -> index into `types`.
    lookup: FastMap<String, usize>,
    next_custom_type: u64,
    pub associations: AssociationStore,
    pub lists: ListStore,
    pub tokens: TokenStore,
    rng: StdRng,
    shuffle: bool,
    pub index_lag_ms: i64,
}

impl Store {
    pub(crate) fn new(portal_id: u64, seed: u64, shuffle: bool, index_lag_ms: u64) -> Store {
        let now = clock::now_ms();
        let mut store = Store {
            portal_id,
            next_record_id: FIRST_RECORD_ID,
            types: Vec::new(),
            lookup: FastMap::default(),
            next_custom_type: FIRST_CUSTOM_TYPE,
            associations: AssociationStore::new(),
            lists: ListStore::default(),
            tokens: TokenStore::default(),
            rng: StdRng::seed_from_u64(seed),
            shuffle,
            index_lag_ms: index_lag_ms.min(i64::MAX as u64) as i64,
        };
        for o in STANDARD_OBJECTS {
            let props = properties::default_properties(o.type_id, now);
            let t = ObjectType::new(portal_id, o.type_id, o.name, o.singular, None, props);
            store.add_type(t, &[o.name, o.singular, o.type_id]);
        }
        store
    }

    fn add_type(&mut self, t: ObjectType, aliases: &[&str]) -> usize {
        let index = self.types.len();
        for a in aliases {
            self.lookup.insert(a.to_ascii_lowercase(), index);
        }
        self.types.push(t);
        index
    }

    /// Finds an object type by plural or singular name, type id, or for custom objects by
    /// `2-NNN`, `p{portal}_{name}`, `p_{name}` or plain name (case-insensitive).
    pub(crate) fn resolve(&self, name: &str) -> Option<usize> {
        let key = name.trim().to_ascii_lowercase();
        if let Some(i) = self.lookup.get(&key) {
            return Some(*i);
        }
        let short = key.strip_prefix("p_")?;
        self.lookup.get(short).copied().filter(|i| self.types[*i].is_custom())
    }

    pub(crate) fn object_type(&self, index: usize) -> &ObjectType {
        &self.types[index]
    }

    pub(crate) fn object_type_mut(&mut self, index: usize) -> &mut ObjectType {
        &mut self.types[index]
    }

    pub(crate) fn types(&self) -> impl Iterator<Item = &ObjectType> {
        self.types.iter()
    }

    /// The type id for a name, or `None`.
    pub(crate) fn type_id_of(&self, name: &str) -> Option<String> {
        self.resolve(name).map(|i| self.types[i].type_id.clone())
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_record_id;
        self.next_record_id += 1;
        id
    }

    /// Shuffles batch results unless shuffling is off.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        if self.shuffle {
            items.shuffle(&mut self.rng);
        }
    }

    /// Registers a custom object type and returns its index.
    pub(crate) fn add_custom_type(&mut self, schema: CustomSchema, props: Vec<PropertyDef>) -> usize {
        let type_id = format!("2-{}", self.next_custom_type);
        self.next_custom_type += 1;
        let name = schema.name.clone();
        let fqn = schema.fully_qualified_name.clone();
        let mut all = properties::default_properties(&type_id, schema.created_at);
        all.retain(|p| !props.iter().any(|q| q.name == p.name));
        all.extend(props);
        let t = ObjectType::new(self.portal_id, &type_id, &name, &name, Some(schema), all);
        self.add_type(t, &[type_id.as_str(), name.as_str(), fqn.as_str()])
    }

    /// Forgets a custom type's names so they can be reused; its index stays valid.
    pub(crate) fn remove_custom_type(&mut self, index: usize) {
        self.lookup.retain(|_, i| *i != index);
        let t = &mut self.types[index];
        t.schema = None;
        t.records.clear();
        t.unique.clear();
    }

    pub(crate) fn next_custom_type_id(&self) -> String {
        format!("2-{}", self.next_custom_type)
    }

    /// Merges two records of one type and moves the merged-away record's associations to
    /// the survivor; its list memberships end.
    pub(crate) fn merge(&mut self, index: usize, primary: u64, merged: u64, now: i64) -> Result<(), MergeError> {
        let lag = self.index_lag_ms;
        self.types[index].merge(primary, merged, now, lag)?;
        let type_id = self.types[index].type_id.clone();
        self.associations.move_record(&type_id, merged, primary);
        self.lists.forget_record(&type_id, merged);
        Ok(())
    }

    /// Whether a live record exists for a type id.
    pub(crate) fn record_exists(&self, type_id: &str, id: u64) -> bool {
        self.resolve(type_id).is_some_and(|i| self.types[i].live(id).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(pairs: &[(&'a str, &'a str)]) -> PropInput<'a> {
        pairs.iter().map(|(k, v)| (Cow::Borrowed(*k), Some(Cow::Borrowed(*v)))).collect()
    }

    #[test]
    fn resolves_names_and_ids() {
        let store = Store::new(1, 1, false, 0);
        assert_eq!(store.resolve("Contacts"), store.resolve("0-1"));
        assert_eq!(store.resolve("contact"), store.resolve("0-1"));
        assert!(store.resolve("widgets").is_none());
    }

    #[test]
    fn unique_index_follows_writes() {
        let mut store = Store::new(1, 1, false, 0);
        let i = store.resolve("contacts").unwrap();
        let id = store.next_id();
        let t = store.object_type_mut(i);
        let changes = t.check(input(&[("email", "A@x.com"), ("firstname", "A")]), None).unwrap();
        t.create(id, changes, 1, 0);
        assert_eq!(t.find_unique("email", "a@X.com"), Some(id));
        let changes = t.check(input(&[("email", "b@x.com")]), None).unwrap();
        t.update(id, changes, 2, 0);
        assert_eq!(t.find_unique("email", "a@x.com"), None);
        assert_eq!(t.find_unique("email", "b@x.com"), Some(id));
        assert_eq!(t.live(id).unwrap().get("hs_object_id"), Some(id.to_string().as_str()));
        let changes = t.check(input(&[("firstname", "")]), None).unwrap();
        t.update(id, changes, 3, 0);
        assert_eq!(t.live(id).unwrap().get("firstname"), None);
        t.archive(id, 4);
        assert_eq!(t.find_unique("email", "b@x.com"), None);
    }

    #[test]
    fn refuses_unknown_and_read_only_properties() {
        let store = Store::new(1, 1, false, 0);
        let t = store.object_type(store.resolve("companies").unwrap());
        let errors = t.check(input(&[("nope", "1"), ("hs_object_id", "2"), ("name", "ok")]), None).unwrap_err();
        let codes: Vec<_> = errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, vec!["PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"]);
    }

    #[test]
    fn search_lags_behind_writes() {
        let mut store = Store::new(1, 1, false, 0);
        let i = store.resolve("contacts").unwrap();
        let id = store.next_id();
        let t = store.object_type_mut(i);
        let changes = t.check(input(&[("firstname", "A")]), None).unwrap();
        t.create(id, changes, 1000, 500);
        assert!(t.live(id).unwrap().search_view(1200).is_none());
        assert!(t.live(id).unwrap().search_view(1500).is_some());
        let changes = t.check(input(&[("firstname", "B")]), None).unwrap();
        t.update(id, changes, 2000, 500);
        let r = t.live(id).unwrap();
        assert_eq!(r.search_view(2100).unwrap().get("firstname").map(String::as_str), Some("A"));
        assert_eq!(r.search_view(2500).unwrap().get("firstname").map(String::as_str), Some("B"));
    }
}
