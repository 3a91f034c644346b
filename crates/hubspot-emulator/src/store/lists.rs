//! Lists v3 data (HubSpot docs: lists v3; sources in docs/emulator.md): lists with globally unique names (case-insensitive),
//! their processing type, and their members with the time each joined.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::clock;

/// One list.
#[derive(Clone, Debug)]
pub(crate) struct List {
    pub id: u64,
    pub name: String,
    pub object_type_id: String,
    /// `MANUAL`, `DYNAMIC` or `SNAPSHOT`.
    pub processing_type: String,
    pub filter_branch: Option<Value>,
    /// Record id → when it joined (ms).
    pub members: BTreeMap<u64, i64>,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_added_at: Option<i64>,
    pub last_removed_at: Option<i64>,
}

impl List {
    /// Whether memberships may be written (MANUAL and SNAPSHOT lists only).
    pub(crate) fn is_static(&self) -> bool {
        self.processing_type != "DYNAMIC"
    }

    fn additional_properties(&self) -> Value {
        let stamp = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
        json!({
            "hs_list_size": self.members.len().to_string(),
            "hs_last_record_added_at": stamp(self.last_added_at),
            "hs_last_record_removed_at": stamp(self.last_removed_at),
            "hs_folder_name": "",
            "hs_list_reference_count": "0",
        })
    }

    /// The list as `GET /lists/{id}` and the lookup by name return it (inside
    /// `{"list": ...}`), with `size`; create answers without it (recorded real HubSpot answers, docs/emulator.md).
    pub(crate) fn to_json_with_size(&self) -> Value {
        let mut v = self.to_json();
        v["size"] = json!(self.members.len());
        v
    }

    /// The list as create returns it (inside `{"list": ...}`): no `size`, no
    /// `additionalProperties` (recorded real HubSpot answers, docs/emulator.md).
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "listId": self.id.to_string(),
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": self.object_type_id,
            "processingType": self.processing_type,
            "processingStatus": "COMPLETE",
            "createdAt": clock::iso_millis(self.created_at),
            "updatedAt": clock::iso_millis(self.updated_at),
            "filtersUpdatedAt": clock::iso_millis(self.created_at),
            "createdById": "1",
            "updatedById": "1",
            "listPermissions": {"teamsWithEditAccess": [], "usersWithEditAccess": []},
            "membershipSettings": {"membershipTeamId": null, "includeUnassigned": null},
        });
        if let Some(f) = &self.filter_branch {
            v["filterBranch"] = f.clone();
        }
        v
    }

    /// The list as `POST /lists/search` returns it.
    pub(crate) fn to_search_json(&self) -> Value {
        json!({
            "listId": self.id.to_string(),
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": self.object_type_id,
            "processingType": self.processing_type,
            "processingStatus": "COMPLETE",
            "createdAt": clock::iso_millis(self.created_at),
            "updatedAt": clock::iso_millis(self.updated_at),
            "filtersUpdatedAt": clock::iso_millis(self.created_at),
            "createdById": "1",
            "updatedById": "1",
            "additionalProperties": self.additional_properties(),
        })
    }

    /// Adds records; returns the ids that were not members yet.
    pub(crate) fn add(&mut self, ids: &[u64], now: i64) -> Vec<u64> {
        let mut added = Vec::new();
        for id in ids {
            if !self.members.contains_key(id) {
                self.members.insert(*id, now);
                added.push(*id);
            }
        }
        if !added.is_empty() {
            self.last_added_at = Some(now);
            self.updated_at = now;
        }
        added
    }

    /// Removes records; returns the ids that were members.
    pub(crate) fn remove(&mut self, ids: &[u64], now: i64) -> Vec<u64> {
        let removed: Vec<u64> = ids.iter().copied().filter(|id| self.members.remove(id).is_some()).collect();
        if !removed.is_empty() {
            self.last_removed_at = Some(now);
            self.updated_at = now;
        }
        removed
    }
}

/// Every list of the portal.
#[derive(Default)]
pub(crate) struct ListStore {
    lists: BTreeMap<u64, List>,
    by_name: HashMap<String, u64>,
    next_id: u64,
}

impl ListStore {
    /// Creates a list; `Err` when the name is taken (names are unique, case-insensitive).
    pub(crate) fn create(
        &mut self,
        name: &str,
        object_type_id: &str,
        processing_type: &str,
        filter_branch: Option<Value>,
        now: i64,
    ) -> Result<&List, ()> {
        let key = name.to_lowercase();
        if self.by_name.contains_key(&key) {
            return Err(());
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_name.insert(key, id);
        let list = List {
            id,
            name: name.to_string(),
            object_type_id: object_type_id.to_string(),
            processing_type: processing_type.to_string(),
            filter_branch,
            members: BTreeMap::new(),
            version: 1,
            created_at: now,
            updated_at: now,
            last_added_at: None,
            last_removed_at: None,
        };
        Ok(self.lists.entry(id).or_insert(list))
    }

    pub(crate) fn get(&self, id: u64) -> Option<&List> {
        self.lists.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut List> {
        self.lists.get_mut(&id)
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<&List> {
        self.by_name.get(&name.to_lowercase()).and_then(|id| self.lists.get(id))
    }

    pub(crate) fn delete(&mut self, id: u64) -> bool {
        match self.lists.remove(&id) {
            Some(list) => {
                self.by_name.remove(&list.name.to_lowercase());
                true
            }
            None => false,
        }
    }

    /// Renames a list; `Err` when another list has the name.
    pub(crate) fn rename(&mut self, id: u64, name: &str, now: i64) -> Result<(), ()> {
        let key = name.to_lowercase();
        if self.by_name.get(&key).is_some_and(|other| *other != id) {
            return Err(());
        }
        let Some(list) = self.lists.get_mut(&id) else { return Ok(()) };
        self.by_name.remove(&list.name.to_lowercase());
        self.by_name.insert(key, id);
        list.name = name.to_string();
        list.version += 1;
        list.updated_at = now;
        Ok(())
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &List> {
        self.lists.values()
    }

    /// Drops an archived record from every list.
    pub(crate) fn forget_record(&mut self, object_type_id: &str, id: u64) {
        for list in self.lists.values_mut().filter(|l| l.object_type_id == object_type_id) {
            list.members.remove(&id);
        }
    }
}
