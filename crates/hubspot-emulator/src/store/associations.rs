//! Associations v4 data: the association types (labels) defined between each pair of object
//! types, and the links between records.
//!
//! As in HubSpot (HubSpot docs: associations v4; sources in docs/emulator.md): every link has an inverse (contact→company 279 comes
//! with company→contact 280); a labeled link always carries the pair's unlabeled default type
//! beside it; removing the default type removes every type between the two records.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use hubspot_model::objects::DEFINED_ASSOCIATION_TYPES;

/// User-defined labels allowed per object pair (associations-schema guide: 10).
pub(crate) const MAX_LABELS_PER_PAIR: usize = 10;
const FIRST_PORTAL_TYPE_ID: u32 = 1001;

/// One association type between two object types.
#[derive(Clone, Debug)]
pub(crate) struct AssociationType {
    pub type_id: u32,
    pub from: String,
    pub to: String,
    pub label: Option<String>,
    pub user_defined: bool,
    /// The type of the inverse link (to → from).
    pub inverse: u32,
    pub name: String,
}

impl AssociationType {
    pub(crate) fn category(&self) -> &'static str {
        if self.user_defined {
            "USER_DEFINED"
        } else {
            "HUBSPOT_DEFINED"
        }
    }

    /// `{category, typeId, label}` as labels lists and batch reads print it.
    pub(crate) fn to_json(&self) -> Value {
        json!({"category": self.category(), "typeId": self.type_id, "label": self.label})
    }
}

/// Links of one ordered pair of object types: from id → to id → type ids (sorted).
type Links = HashMap<u64, BTreeMap<u64, Vec<u32>>>;

/// Why a link or label change was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AssociationError {
    /// The type id is not defined from `from` to `to`.
    UnknownType(u32),
    /// The pair has no association definition (a custom object not declared with it).
    PairNotDeclared,
    TooManyLabels,
    LabelExists(String),
    LabelInUse,
    DefaultNotDeletable,
}

pub(crate) struct AssociationStore {
    types: HashMap<u32, AssociationType>,
    /// (from, to) → pair index.
    pair_index: HashMap<(String, String), usize>,
    /// Per pair: its type ids, the unlabeled default first.
    pair_types: Vec<Vec<u32>>,
    pair_links: Vec<Links>,
    next_type_id: u32,
}

impl AssociationStore {
    pub(crate) fn new() -> Self {
        let mut store = AssociationStore {
            types: HashMap::new(),
            pair_index: HashMap::new(),
            pair_types: Vec::new(),
            pair_links: Vec::new(),
            next_type_id: FIRST_PORTAL_TYPE_ID,
        };
        for d in DEFINED_ASSOCIATION_TYPES {
            let pair = store.pair_mut(d.from_type_id, d.to_type_id);
            if d.label.is_none() {
                store.pair_types[pair].insert(0, d.type_id);
            } else {
                store.pair_types[pair].push(d.type_id);
            }
            store.types.insert(
                d.type_id,
                AssociationType {
                    type_id: d.type_id,
                    from: d.from_type_id.to_string(),
                    to: d.to_type_id.to_string(),
                    label: d.label.map(String::from),
                    user_defined: false,
                    inverse: 0,
                    name: d.name.to_string(),
                },
            );
        }
        // Pair each HubSpot-defined type with its inverse: the same label the other way,
        // parent/child companies crosswise; a missing inverse default is made up.
        let ids: Vec<u32> = DEFINED_ASSOCIATION_TYPES.iter().map(|d| d.type_id).collect();
        for id in ids {
            let t = store.types[&id].clone();
            let inverse = match id {
                13 => Some(14),
                14 => Some(13),
                _ => store
                    .pair_types
                    .get(store.pair_of(&t.to, &t.from).unwrap_or(usize::MAX))
                    .and_then(|ids| ids.iter().copied().find(|i| store.types[i].label == t.label)),
            };
            let inverse = match (inverse, &t.label) {
                (Some(i), _) => i,
                (None, None) => store.add_default(&t.to, &t.from, id),
                (None, Some(_)) => match store.default_type(&t.to, &t.from) {
                    Some(i) => i,
                    None => store.add_default(&t.to, &t.from, id),
                },
            };
            if let Some(t) = store.types.get_mut(&id) {
                t.inverse = inverse;
            }
        }
        store
    }

    fn pair_of(&self, from: &str, to: &str) -> Option<usize> {
        self.pair_index.get(&(from.to_string(), to.to_string())).copied()
    }

    fn pair_mut(&mut self, from: &str, to: &str) -> usize {
        let key = (from.to_string(), to.to_string());
        if let Some(i) = self.pair_index.get(&key) {
            return *i;
        }
        let i = self.pair_types.len();
        self.pair_index.insert(key, i);
        self.pair_types.push(Vec::new());
        self.pair_links.push(Links::new());
        i
    }

    fn allocate(&mut self) -> u32 {
        let id = self.next_type_id;
        self.next_type_id += 1;
        id
    }

    /// Adds an unlabeled default type for `from → to` whose inverse is `inverse`.
    fn add_default(&mut self, from: &str, to: &str, inverse: u32) -> u32 {
        let id = self.allocate();
        let pair = self.pair_mut(from, to);
        self.pair_types[pair].insert(0, id);
        let name = format!("{}_to_{}", from.replace('-', "_"), to.replace('-', "_"));
        self.types.insert(
            id,
            AssociationType {
                type_id: id,
                from: from.to_string(),
                to: to.to_string(),
                label: None,
                user_defined: false,
                inverse,
                name,
            },
        );
        id
    }

    /// Makes sure `a → b` and `b → a` have default types; returns the `a → b` default.
    pub(crate) fn declare(&mut self, a: &str, b: &str) -> u32 {
        if let Some(id) = self.default_type(a, b) {
            return id;
        }
        let ab = self.allocate();
        if a == b {
            self.insert_default(a, b, ab, ab);
            return ab;
        }
        let ba = self.allocate();
        self.insert_default(a, b, ab, ba);
        self.insert_default(b, a, ba, ab);
        ab
    }

    fn insert_default(&mut self, from: &str, to: &str, id: u32, inverse: u32) {
        let pair = self.pair_mut(from, to);
        self.pair_types[pair].insert(0, id);
        self.types.insert(
            id,
            AssociationType {
                type_id: id,
                from: from.to_string(),
                to: to.to_string(),
                label: None,
                user_defined: false,
                inverse,
                name: format!("{}_to_{}", from.replace('-', "_"), to.replace('-', "_")),
            },
        );
    }

    /// The unlabeled default type of a pair, if the pair is declared.
    pub(crate) fn default_type(&self, from: &str, to: &str) -> Option<u32> {
        let pair = self.pair_of(from, to)?;
        self.pair_types[pair].iter().copied().find(|id| self.types[id].label.is_none())
    }

    /// The pair's default type, declaring it first when both sides are standard objects
    /// (HubSpot defines defaults between all of them); custom pairs must be declared.
    pub(crate) fn default_or_declare(&mut self, from: &str, to: &str) -> Result<u32, AssociationError> {
        if let Some(id) = self.default_type(from, to) {
            return Ok(id);
        }
        if from.starts_with("0-") && to.starts_with("0-") {
            return Ok(self.declare(from, to));
        }
        Err(AssociationError::PairNotDeclared)
    }

    pub(crate) fn get_type(&self, id: u32) -> Option<&AssociationType> {
        self.types.get(&id)
    }

    /// The types defined from `from` to `to`, default first (empty for undeclared pairs).
    pub(crate) fn labels(&self, from: &str, to: &str) -> Vec<&AssociationType> {
        match self.pair_of(from, to) {
            Some(pair) => self.pair_types[pair].iter().filter_map(|id| self.types.get(id)).collect(),
            None => Vec::new(),
        }
    }

    /// Creates a user-defined label (and its inverse) between two types.
    pub(crate) fn create_label(
        &mut self,
        from: &str,
        to: &str,
        label: &str,
        name: &str,
        inverse_label: Option<&str>,
    ) -> Result<(u32, u32), AssociationError> {
        // Creating a label defines the pair, custom objects included.
        self.declare(from, to);
        let existing = self.labels(from, to);
        if existing.iter().filter(|t| t.user_defined).count() >= MAX_LABELS_PER_PAIR {
            return Err(AssociationError::TooManyLabels);
        }
        if existing.iter().any(|t| t.label.as_deref() == Some(label) || (t.user_defined && t.name == name)) {
            return Err(AssociationError::LabelExists(label.to_string()));
        }
        let forward = self.allocate();
        let backward = if from == to && inverse_label.is_none() { forward } else { self.allocate() };
        let add = |store: &mut Self, id: u32, f: &str, t: &str, label: &str, inverse: u32| {
            let pair = store.pair_mut(f, t);
            store.pair_types[pair].push(id);
            store.types.insert(
                id,
                AssociationType {
                    type_id: id,
                    from: f.to_string(),
                    to: t.to_string(),
                    label: Some(label.to_string()),
                    user_defined: true,
                    inverse,
                    name: name.to_string(),
                },
            );
        };
        add(self, forward, from, to, label, backward);
        if backward != forward {
            add(self, backward, to, from, inverse_label.unwrap_or(label), forward);
        }
        Ok((forward, backward))
    }

    /// Renames a user-defined label (and its inverse when given).
    pub(crate) fn update_label(
        &mut self,
        from: &str,
        to: &str,
        id: u32,
        label: &str,
        inverse_label: Option<&str>,
    ) -> Result<(), AssociationError> {
        let t =
            self.types.get(&id).filter(|t| t.from == from && t.to == to).ok_or(AssociationError::UnknownType(id))?;
        if !t.user_defined {
            return Err(AssociationError::DefaultNotDeletable);
        }
        let inverse = t.inverse;
        if let Some(t) = self.types.get_mut(&id) {
            t.label = Some(label.to_string());
        }
        if let (Some(inv), true) = (inverse_label, inverse != id) {
            if let Some(t) = self.types.get_mut(&inverse) {
                t.label = Some(inv.to_string());
            }
        }
        Ok(())
    }

    /// Deletes a user-defined label and its inverse; refused while records use it.
    pub(crate) fn delete_label(&mut self, from: &str, to: &str, id: u32) -> Result<(), AssociationError> {
        let t =
            self.types.get(&id).filter(|t| t.from == from && t.to == to).ok_or(AssociationError::UnknownType(id))?;
        if !t.user_defined {
            return Err(AssociationError::DefaultNotDeletable);
        }
        let inverse = t.inverse;
        let pair = self.pair_of(from, to).ok_or(AssociationError::UnknownType(id))?;
        if self.pair_links[pair].values().any(|targets| targets.values().any(|types| types.contains(&id))) {
            return Err(AssociationError::LabelInUse);
        }
        for (gone, f, t) in [(id, from, to), (inverse, to, from)] {
            self.types.remove(&gone);
            if let Some(pair) = self.pair_of(f, t) {
                self.pair_types[pair].retain(|i| *i != gone);
            }
        }
        Ok(())
    }

    /// Checks that every type id is defined from `from` to `to`.
    pub(crate) fn check_types(&self, from: &str, to: &str, ids: &[u32]) -> Result<(), AssociationError> {
        match ids.iter().find(|id| !self.types.get(id).is_some_and(|t| t.from == from && t.to == to)) {
            Some(bad) => Err(AssociationError::UnknownType(*bad)),
            None => Ok(()),
        }
    }

    /// Links two records with `types` (checked) plus the pair's default, and the inverse
    /// links. With `replace`, labeled types already there but not in `types` are dropped
    /// (HubSpot: "to replace the existing label, only include the new label").
    pub(crate) fn link(
        &mut self,
        from: &str,
        from_id: u64,
        to: &str,
        to_id: u64,
        types: &[u32],
        replace: bool,
    ) -> Result<Vec<u32>, AssociationError> {
        let default = self.default_or_declare(from, to)?;
        self.check_types(from, to, types)?;
        let forward = self.pair_mut(from, to);
        let backward = self.pair_mut(to, from);
        let any_labeled = types.iter().any(|t| *t != default);
        let mut wanted: Vec<u32> = types.to_vec();
        wanted.push(default);
        let current = self.pair_links[forward].get(&from_id).and_then(|m| m.get(&to_id)).cloned().unwrap_or_default();
        if !(replace && any_labeled) {
            wanted.extend(current.iter().copied());
        }
        wanted.sort_unstable();
        wanted.dedup();
        for removed in current.iter().filter(|t| !wanted.contains(t)) {
            let inverse = self.types.get(removed).map(|t| t.inverse).unwrap_or(0);
            remove_type(&mut self.pair_links[backward], to_id, from_id, inverse);
        }
        for t in &wanted {
            let inverse = self.types.get(t).map(|t| t.inverse).unwrap_or(0);
            let slot = self.pair_links[backward].entry(to_id).or_default().entry(from_id).or_default();
            if !slot.contains(&inverse) {
                slot.push(inverse);
                slot.sort_unstable();
            }
        }
        self.pair_links[forward].entry(from_id).or_default().insert(to_id, wanted.clone());
        Ok(wanted)
    }

    /// Removes every type between two records, both ways.
    pub(crate) fn unlink(&mut self, from: &str, from_id: u64, to: &str, to_id: u64) -> bool {
        let mut removed = false;
        for (f, t, a, b) in [(from, to, from_id, to_id), (to, from, to_id, from_id)] {
            if let Some(pair) = self.pair_of(f, t) {
                if let Some(targets) = self.pair_links[pair].get_mut(&a) {
                    removed |= targets.remove(&b).is_some();
                    if targets.is_empty() {
                        self.pair_links[pair].remove(&a);
                    }
                }
            }
        }
        removed
    }

    /// Removes only the listed types (and their inverses); removing the default removes all.
    pub(crate) fn unlink_types(
        &mut self,
        from: &str,
        from_id: u64,
        to: &str,
        to_id: u64,
        types: &[u32],
    ) -> Result<(), AssociationError> {
        self.check_types(from, to, types)?;
        if types.iter().any(|t| self.types.get(t).is_some_and(|t| t.label.is_none())) {
            self.unlink(from, from_id, to, to_id);
            return Ok(());
        }
        let (Some(forward), Some(backward)) = (self.pair_of(from, to), self.pair_of(to, from)) else { return Ok(()) };
        for t in types {
            let inverse = self.types.get(t).map(|t| t.inverse).unwrap_or(0);
            remove_type(&mut self.pair_links[forward], from_id, to_id, *t);
            remove_type(&mut self.pair_links[backward], to_id, from_id, inverse);
        }
        Ok(())
    }

    /// The records `from_id` is linked to in `to`, with their types, in id order.
    pub(crate) fn targets(&self, from: &str, from_id: u64, to: &str) -> Option<&BTreeMap<u64, Vec<u32>>> {
        let pair = self.pair_of(from, to)?;
        self.pair_links[pair].get(&from_id).filter(|m| !m.is_empty())
    }

    /// Every link from `from` to `to`.
    pub(crate) fn all_links(&self, from: &str, to: &str) -> Vec<(u64, u64, Vec<u32>)> {
        let Some(pair) = self.pair_of(from, to) else { return Vec::new() };
        let mut out: Vec<(u64, u64, Vec<u32>)> = self.pair_links[pair]
            .iter()
            .flat_map(|(f, targets)| targets.iter().map(move |(t, types)| (*f, *t, types.clone())))
            .collect();
        out.sort_by_key(|(f, t, _)| (*f, *t));
        out
    }

    /// Drops every link of a record (it was archived).
    pub(crate) fn forget_record(&mut self, type_id: &str, id: u64) {
        let pairs: Vec<(String, String, usize)> = self
            .pair_index
            .iter()
            .filter(|((f, _), _)| f == type_id)
            .map(|((f, t), i)| (f.clone(), t.clone(), *i))
            .collect();
        for (f, t, pair) in pairs {
            let Some(targets) = self.pair_links[pair].remove(&id) else { continue };
            if let Some(back) = self.pair_of(&t, &f) {
                for to_id in targets.keys() {
                    if let Some(m) = self.pair_links[back].get_mut(to_id) {
                        m.remove(&id);
                    }
                }
            }
        }
    }

    /// Moves every link of a record onto another record of the same type (a merge): the
    /// survivor gets the merged-away record's links with their types, and the merged-away
    /// record has none left.
    pub(crate) fn move_record(&mut self, type_id: &str, from_id: u64, into_id: u64) {
        let mut moved: Vec<(String, u64, Vec<u32>)> = Vec::new();
        for ((f, t), pair) in &self.pair_index {
            if f != type_id {
                continue;
            }
            if let Some(targets) = self.pair_links[*pair].get(&from_id) {
                moved.extend(targets.iter().map(|(to, types)| (t.clone(), *to, types.clone())));
            }
        }
        self.forget_record(type_id, from_id);
        for (to_type, to_id, types) in moved {
            if to_type == type_id && (to_id == into_id || to_id == from_id) {
                continue;
            }
            // The types were valid for this pair a moment ago; a failure would only skip them.
            let _ = self.link(type_id, into_id, &to_type, to_id, &types, false);
        }
    }

    /// The schema `associations[]` entries of a custom type.
    pub(crate) fn schema_associations(&self, type_id: &str) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .types
            .values()
            .filter(|t| t.from == type_id && t.label.is_none())
            .map(|t| json!({"id": t.type_id.to_string(), "fromObjectTypeId": t.from, "toObjectTypeId": t.to, "name": t.name}))
            .collect();
        out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        out
    }
}

fn remove_type(links: &mut Links, from_id: u64, to_id: u64, type_id: u32) {
    if let Some(targets) = links.get_mut(&from_id) {
        if let Some(types) = targets.get_mut(&to_id) {
            types.retain(|t| *t != type_id);
            if types.is_empty() {
                targets.remove(&to_id);
            }
        }
        if targets.is_empty() {
            links.remove(&from_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_defined_types_have_inverses() {
        let s = AssociationStore::new();
        assert_eq!(s.get_type(279).unwrap().inverse, 280);
        assert_eq!(s.get_type(1).unwrap().inverse, 2);
        assert_eq!(s.get_type(13).unwrap().inverse, 14);
        assert_eq!(s.get_type(449).unwrap().inverse, 449);
        assert_eq!(s.default_type("0-1", "0-2"), Some(279));
        let lead_back = s.get_type(609).unwrap().inverse;
        assert_eq!(s.default_type("0-136", "0-1"), Some(lead_back));
    }

    #[test]
    fn labeled_links_carry_the_default_and_an_inverse() {
        let mut s = AssociationStore::new();
        assert_eq!(s.link("0-1", 10, "0-2", 20, &[1], true).unwrap(), vec![1, 279]);
        assert_eq!(s.targets("0-2", 20, "0-1").unwrap()[&10], vec![2, 280]);
        // Replacing the label keeps the default.
        assert_eq!(s.link("0-1", 10, "0-2", 20, &[931], true).unwrap(), vec![279, 931]);
        assert_eq!(s.targets("0-2", 20, "0-1").unwrap()[&10], vec![280, 930]);
        // Removing the default removes everything.
        s.unlink_types("0-1", 10, "0-2", 20, &[279]).unwrap();
        assert!(s.targets("0-1", 10, "0-2").is_none());
        assert!(s.targets("0-2", 20, "0-1").is_none());
        assert_eq!(s.link("0-1", 1, "0-2", 2, &[280], true), Err(AssociationError::UnknownType(280)));
    }

    #[test]
    fn custom_pairs_need_a_declaration() {
        let mut s = AssociationStore::new();
        assert_eq!(s.link("2-1", 1, "0-1", 2, &[], true), Err(AssociationError::PairNotDeclared));
        let id = s.declare("2-1", "0-1");
        assert_eq!(s.link("2-1", 1, "0-1", 2, &[], true).unwrap(), vec![id]);
        let (fwd, back) = s.create_label("2-1", "0-1", "Owner", "owner", Some("Owned")).unwrap();
        assert_eq!(s.get_type(back).unwrap().label.as_deref(), Some("Owned"));
        assert_eq!(s.link("2-1", 1, "0-1", 2, &[fwd], true).unwrap(), vec![id, fwd]);
        assert_eq!(s.delete_label("2-1", "0-1", fwd), Err(AssociationError::LabelInUse));
    }
}
