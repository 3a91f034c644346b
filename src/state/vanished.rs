//! State changes for records and lists that changed in HubSpot behind hubsync's back: an
//! associated record merged into another or deleted (its looked-up id), and a list deleted in
//! HubSpot (its id and members). Records of the sync itself go through the journal instead
//! (`Entry::Moved`, `Entry::Forget`).

use duckdb::params;

use super::store::StateStore;
use super::types::StateError;

/// Meta key of the last time a sync's list was read by id to check that it still exists.
pub fn list_checked_key(list_id: &str) -> String {
    format!("list-checked:{list_id}")
}

/// Meta key of the model fingerprint a list was last made equal to.
pub fn list_fingerprint_key(list_id: &str) -> String {
    format!("list-fingerprint:{list_id}")
}

impl StateStore {
    /// An associated record of `object` was merged: every value looked up to `old_id` now
    /// stands for `new_id`.
    pub fn move_target_id(&mut self, object: &str, old_id: &str, new_id: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE lookup_ids SET hubspot_id = ? WHERE object = ? AND hubspot_id = ?",
                params![new_id, object, old_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// An associated record of `object` is gone: the values looked up to `old_id` are looked
    /// up again.
    pub fn forget_target_id(&mut self, object: &str, old_id: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM lookup_ids WHERE object = ? AND hubspot_id = ?", params![object, old_id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The sync's list `list_id` was deleted in HubSpot: its id (`meta_key`), the members
    /// delivered to it and its fingerprint are forgotten in one transaction, so the list is
    /// found by name or created again and refilled with every model record.
    pub fn forget_list(&mut self, meta_key: &str, list_id: &str) -> Result<(), StateError> {
        self.batch("BEGIN TRANSACTION")?;
        let result = (|| {
            for (sql, value) in [
                ("DELETE FROM list_members WHERE list_id = ?", list_id.to_string()),
                ("DELETE FROM meta WHERE key = ?", meta_key.to_string()),
                ("DELETE FROM meta WHERE key = ?", list_fingerprint_key(list_id)),
                ("DELETE FROM meta WHERE key = ?", list_checked_key(list_id)),
            ] {
                self.conn.execute(sql, params![value]).map_err(|e| self.err(e))?;
            }
            self.batch("COMMIT")
        })();
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }
}
