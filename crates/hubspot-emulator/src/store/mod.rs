//! Everything the emulated portal holds: object types (standard and custom) with their
//! property definitions and records, associations, lists and OAuth grants. One `Store` sits
//! behind one mutex; handlers parse outside it and keep their work inside it short.
//!
//! Records are indexed by id (a `BTreeMap`, for paging in id order) and by the value of every
//! unique property (contact `email` and each `hasUniqueValue` property), so an upsert of 100
//! inputs is 100 hash lookups, never a scan.
//!
//! Files: `object_type.rs` (a type's properties, records and writes), `record.rs` (one
//! record), `record_json.rs` (a record as JSON), `properties.rs` (property definitions and
//! value checks), `property_defaults.rs` (the standard objects' default properties: data),
//! `associations.rs`, `lists.rs`, `tokens.rs`, `hash.rs`.

pub(crate) mod associations;
pub(crate) mod hash;
pub(crate) mod lists;
pub(crate) mod object_type;
pub(crate) mod properties;
pub(crate) mod property_defaults;
pub(crate) mod record;
pub(crate) mod record_json;
pub(crate) mod tokens;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::clock;
use associations::AssociationStore;
use hubspot_model::objects::STANDARD_OBJECTS;
use lists::ListStore;
use properties::PropertyDef;
use tokens::TokenStore;

pub(crate) use hash::{FastMap, FastSet};
pub(crate) use object_type::{Changes, MergeError, ObjectType, PropError, PropInput, PropertyGroup};
pub use record::EmRecord;
pub(crate) use record::{CustomSchema, Record};
pub(crate) use record_json::{RecordJson, Selection};

/// The first record id handed out. Real ids are above 2^32, so clients that squeeze ids into
/// 32 bits fail here too.
const FIRST_RECORD_ID: u64 = 100_000_000_001;
const FIRST_CUSTOM_TYPE: u64 = 3_000_001;

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
            let props = property_defaults::default_properties(o.type_id, now);
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
        let mut all = property_defaults::default_properties(&type_id, schema.created_at);
        all.retain(|p| !props.iter().any(|q| q.name == p.name));
        all.extend(props);
        let t = ObjectType::new(self.portal_id, &type_id, &name, &name, Some(schema), all);
        self.add_type(t, &[type_id.as_str(), name.as_str(), fqn.as_str()])
    }

    /// Forgets a custom type's names so they can be reused; its index stays valid.
    pub(crate) fn remove_custom_type(&mut self, index: usize) {
        self.lookup.retain(|_, i| *i != index);
        self.types[index].forget_schema();
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
    use std::borrow::Cow;

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
