//! One record as the store holds it (its values, dates and search-index view), a custom
//! object's schema, and the record as a test sees it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

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

/// A record as a test sees it through [`crate::Emulator::records`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmRecord {
    pub id: String,
    pub properties: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    pub archived: bool,
}
