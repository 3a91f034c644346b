//! The state of associations and list memberships: what was delivered, what is pending, the
//! ids of associated records, and what failed. Diffed in SQL like records.

use duckdb::params;

use super::read::StateReader;
use super::store::StateStore;
use super::types::{query_error, StateError};

/// One association a row asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCandidate {
    /// The association rule's key.
    pub assoc: String,
    pub from_pk: String,
    pub to_value: String,
    /// Label names joined with `\n`, sorted; empty for the rule's type.
    pub labels: String,
}

/// An association not yet delivered, with the ids known so far.
#[derive(Debug, Clone)]
pub struct PendingLink {
    pub n: i64,
    pub link: LinkCandidate,
    pub from_id: Option<String>,
    pub to_id: Option<String>,
}

/// An association that could not be made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkFailure {
    pub assoc: String,
    pub from_pk: String,
    pub to_value: String,
    pub labels: String,
    pub code: String,
    pub message: String,
}

/// A row's association cells, read for parsing.
pub type LinkInputRow = (i64, String, Vec<Option<String>>);

impl StateReader {
    pub(super) fn q(&self) -> impl Fn(duckdb::Error) -> StateError + '_ {
        move |e| self.err(e)
    }

    /// Failed associations of the last run, and their total.
    pub fn link_failures(&self, limit: usize) -> Result<(Vec<LinkFailure>, u64), StateError> {
        let total = self.scalar_i64("SELECT count(*) FROM association_rejections")? as u64;
        let mut statement = self
            .conn
            .prepare(
                "SELECT assoc, from_pk, to_value, labels, code, message FROM association_rejections
                 ORDER BY from_pk, to_value LIMIT ?",
            )
            .map_err(self.q())?;
        let rows = statement
            .query_map(params![limit as i64], |r| {
                Ok(LinkFailure {
                    assoc: r.get(0)?,
                    from_pk: r.get(1)?,
                    to_value: r.get(2)?,
                    labels: r.get(3)?,
                    code: r.get(4)?,
                    message: r.get(5)?,
                })
            })
            .map_err(self.q())?;
        Ok((rows.collect::<Result<Vec<_>, _>>().map_err(self.q())?, total))
    }
}

impl StateStore {
    /// Rows whose association cells must be read this run: changed rows, rows with an
    /// association that failed before, and rows an earlier run left in `links_due` (the second
    /// read brought them all). `first` is the index of
    /// the first cell in `staging_rows`.
    pub fn prepare_link_inputs(&mut self, first: usize, links: usize) -> Result<(), StateError> {
        let cells: Vec<String> = (0..links).map(|j| format!(", c{} AS l{j}", first + j)).collect();
        self.work_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE link_inputs AS
             SELECT rownum, c0{} FROM staging_rows
             WHERE c0 IS NOT NULL AND c0 NOT IN (SELECT pk FROM dup_keys)
               AND (c0 IN (SELECT pk FROM changes) OR c0 IN (SELECT from_pk FROM association_rejections)
                    OR c0 IN (SELECT pk FROM links_due))
             ORDER BY rownum",
            cells.concat()
        ))
    }

    /// Reads the rows `prepare_link_inputs` picked, numbered `(after, after + limit]`.
    pub fn link_input_page(&self, after: i64, limit: usize, links: usize) -> Result<Vec<LinkInputRow>, StateError> {
        let cells: Vec<String> = (0..links).map(|j| format!(", l{j}")).collect();
        let sql = format!(
            "SELECT rowid + 1, c0{} FROM link_inputs WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
            cells.concat()
        );
        let mut statement = self.conn.prepare(&sql).map_err(self.q())?;
        let rows = statement
            .query_map(params![after, after + limit as i64], |r| {
                let mut values = Vec::with_capacity(links);
                for j in 0..links {
                    values.push(r.get::<_, Option<String>>(2 + j)?);
                }
                Ok((r.get(0)?, r.get(1)?, values))
            })
            .map_err(self.q())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.q())
    }

    /// Marks this run's changed rows as having associations to deliver, before any record is
    /// sent (see `sql/migrations/004_links_due.sql`).
    pub fn keep_links_due(&mut self) -> Result<(), StateError> {
        self.batch(
            "INSERT INTO links_due SELECT DISTINCT pk FROM changed_keys WHERE pk NOT IN (SELECT pk FROM links_due)",
        )
    }

    /// Records an earlier run left with associations to deliver.
    pub fn links_due_count(&self) -> Result<u64, StateError> {
        Ok(self.scalar_i64("SELECT count(*) FROM links_due")? as u64)
    }

    /// The association phase went through every row due: none is left for the next run.
    pub fn clear_links_due(&mut self) -> Result<(), StateError> {
        self.batch("DELETE FROM links_due")
    }

    /// Starts this run's candidate and target tables.
    pub fn begin_links(&mut self, targets: &[(String, String, String)]) -> Result<(), StateError> {
        self.batch(
            "CREATE OR REPLACE TEMP TABLE link_candidates (assoc VARCHAR, from_pk VARCHAR, to_value VARCHAR, labels VARCHAR);
             CREATE OR REPLACE TEMP TABLE link_targets (assoc VARCHAR, object VARCHAR, property VARCHAR);",
        )?;
        let mut appender = self.conn.appender_to_catalog_and_db("link_targets", "temp", "main").map_err(self.q())?;
        for (assoc, object, property) in targets {
            appender.append_row(params![assoc, object, property]).map_err(|e| self.err(e))?;
        }
        appender.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn append_link_candidates(&mut self, rows: &[LinkCandidate]) -> Result<(), StateError> {
        let mut appender = self.conn.appender_to_catalog_and_db("link_candidates", "temp", "main").map_err(self.q())?;
        for c in rows {
            appender.append_row(params![c.assoc, c.from_pk, c.to_value, c.labels]).map_err(|e| self.err(e))?;
        }
        appender.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Once every candidate is in: the delivered associations of the rows they come from
    /// (`link_known`) and those rows' record ids (`link_from_ids`), so that the lookups and joins
    /// that follow read two small tables instead of scanning `associations` and `snapshot` each
    /// (neither is written until the links are sent).
    pub fn narrow_links(&mut self) -> Result<(), StateError> {
        self.work_batch(
            "CREATE OR REPLACE TEMP TABLE link_known AS
               SELECT assoc, from_pk, to_value, labels FROM associations
               WHERE from_pk IN (SELECT from_pk FROM link_candidates);
             CREATE OR REPLACE TEMP TABLE link_from_ids AS
               SELECT pk, hubspot_id FROM snapshot WHERE pk IN (SELECT from_pk FROM link_candidates);",
        )
    }

    /// Target values of a rule, not yet delivered, whose record id is not known yet. Only
    /// rows whose own record has an id ask (the others cannot be linked yet anyway).
    pub fn unresolved_targets(&self, assoc: &str) -> Result<Vec<String>, StateError> {
        let sql = "SELECT DISTINCT c.to_value FROM link_candidates c
             JOIN link_targets t ON t.assoc = c.assoc
             JOIN link_from_ids s ON s.pk = c.from_pk AND s.hubspot_id IS NOT NULL
             ANTI JOIN link_known a ON a.assoc = c.assoc AND a.from_pk = c.from_pk AND a.to_value = c.to_value
                                      AND a.labels = c.labels
             WHERE c.assoc = ?
               AND lower(trim(c.to_value)) NOT IN
                   (SELECT value FROM lookup_ids l WHERE l.object = t.object AND l.property = t.property)
             ORDER BY 1";
        let mut statement = self.conn.prepare(sql).map_err(self.q())?;
        let rows = statement.query_map(params![assoc], |r| r.get::<_, String>(0)).map_err(self.q())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.q())
    }

    /// Remembers the ids of associated records found by a property value.
    pub fn remember_targets(
        &mut self,
        object: &str,
        property: &str,
        found: &[(String, String)],
    ) -> Result<(), StateError> {
        if found.is_empty() {
            return Ok(());
        }
        let tx = self.reader.conn.transaction().map_err(|e| query_error(&self.reader.path, e))?;
        {
            let mut appender = tx.appender("lookup_ids").map_err(|e| query_error(&self.reader.path, e))?;
            for (value, id) in found {
                appender
                    .append_row(params![object, property, value.trim().to_lowercase(), id])
                    .map_err(|e| query_error(&self.reader.path, e))?;
            }
            appender.flush().map_err(|e| query_error(&self.reader.path, e))?;
        }
        tx.commit().map_err(|e| query_error(&self.reader.path, e))
    }

    /// Builds the table of associations to deliver now; returns how many.
    pub fn prepare_pending_links(&mut self) -> Result<u64, StateError> {
        // One join or sort per statement: a sort fed by three joins holds all their memory at
        // once, and ran out of the state budget at 1,000,000 links instead of spilling.
        self.work_batch(
            "CREATE OR REPLACE TEMP TABLE link_distinct AS SELECT DISTINCT * FROM link_candidates;
             CREATE OR REPLACE TEMP TABLE link_new AS
             SELECT c.* FROM link_distinct c
             ANTI JOIN link_known a ON a.assoc = c.assoc AND a.from_pk = c.from_pk AND a.to_value = c.to_value
                                      AND a.labels = c.labels;
             DROP TABLE link_distinct;
             CREATE OR REPLACE TEMP TABLE link_from AS
             SELECT c.*, s.hubspot_id AS from_id FROM link_new c LEFT JOIN link_from_ids s ON s.pk = c.from_pk;
             DROP TABLE link_new;
             CREATE OR REPLACE TEMP TABLE link_ids AS
             SELECT c.assoc, c.from_pk, c.to_value, c.labels, c.from_id, l.hubspot_id AS to_id
             FROM link_from c
             LEFT JOIN link_targets t ON t.assoc = c.assoc
             LEFT JOIN (SELECT object, property, value, min(hubspot_id) AS hubspot_id FROM lookup_ids GROUP BY ALL) l
                    ON l.object = t.object AND l.property = t.property AND l.value = lower(trim(c.to_value));
             DROP TABLE link_from;
             CREATE OR REPLACE TEMP TABLE pending_links AS
             SELECT * FROM link_ids ORDER BY assoc, from_pk, to_value, labels;
             DROP TABLE link_ids;",
        )?;
        Ok(self.scalar_i64("SELECT count(*) FROM pending_links")? as u64)
    }

    pub fn pending_links_page(&self, after: i64, limit: usize) -> Result<Vec<PendingLink>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT rowid + 1 AS n, assoc, from_pk, to_value, labels, from_id, to_id FROM pending_links
                 WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
            )
            .map_err(self.q())?;
        let rows = statement
            .query_map(params![after, after + limit as i64], |r| {
                Ok(PendingLink {
                    n: r.get(0)?,
                    link: LinkCandidate {
                        assoc: r.get(1)?,
                        from_pk: r.get(2)?,
                        to_value: r.get(3)?,
                        labels: r.get(4)?,
                    },
                    from_id: r.get(5)?,
                    to_id: r.get(6)?,
                })
            })
            .map_err(self.q())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.q())
    }

    /// Records associations HubSpot acknowledged, with `then` (a run's counts) in the same
    /// transaction: one commit per answer.
    pub(super) fn record_links(
        &mut self,
        delivered: &[(LinkCandidate, String, String)],
        then: impl FnOnce(&duckdb::Connection) -> duckdb::Result<usize>,
    ) -> Result<(), StateError> {
        let now = chrono::Utc::now().naive_utc();
        let tx = self.reader.conn.transaction().map_err(|e| query_error(&self.reader.path, e))?;
        {
            let mut appender = tx.appender("associations").map_err(|e| query_error(&self.reader.path, e))?;
            for (l, from_id, to_id) in delivered {
                appender
                    .append_row(params![l.assoc, l.from_pk, l.to_value, l.labels, from_id, to_id, now])
                    .map_err(|e| query_error(&self.reader.path, e))?;
            }
            appender.flush().map_err(|e| query_error(&self.reader.path, e))?;
        }
        then(&tx).map_err(|e| query_error(&self.reader.path, e))?;
        tx.commit().map_err(|e| query_error(&self.reader.path, e))
    }

    /// Replaces the failed associations with this run's, counting attempts per association.
    pub fn replace_link_failures(&mut self, failures: &[LinkFailure]) -> Result<(), StateError> {
        self.batch("CREATE OR REPLACE TEMP TABLE link_failures_now (assoc VARCHAR, from_pk VARCHAR, to_value VARCHAR, labels VARCHAR, code VARCHAR, message VARCHAR)")?;
        {
            let mut appender =
                self.conn.appender_to_catalog_and_db("link_failures_now", "temp", "main").map_err(self.q())?;
            for f in failures {
                appender
                    .append_row(params![f.assoc, f.from_pk, f.to_value, f.labels, f.code, f.message])
                    .map_err(|e| self.err(e))?;
            }
            appender.flush().map_err(|e| self.err(e))?;
        }
        self.batch(
            "BEGIN;
             CREATE OR REPLACE TABLE association_rejections_next AS
               SELECT f.assoc, f.from_pk, f.to_value, f.labels, f.code, f.message,
                      coalesce(r.attempts, 0) + 1 AS attempts,
                      coalesce(r.first_seen, now()::TIMESTAMP) AS first_seen, now()::TIMESTAMP AS last_seen
               FROM link_failures_now f
               LEFT JOIN association_rejections r
                 ON r.assoc = f.assoc AND r.from_pk = f.from_pk AND r.to_value = f.to_value AND r.labels = f.labels;
             DROP TABLE association_rejections;
             ALTER TABLE association_rejections_next RENAME TO association_rejections;
             COMMIT;
             DROP TABLE IF EXISTS link_failures_now;",
        )
    }

    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StateError> {
        let mut statement = self.conn.prepare("SELECT value FROM meta WHERE key = ?").map_err(self.q())?;
        let mut rows = statement.query(params![key]).map_err(self.q())?;
        match rows.next().map_err(self.q())? {
            Some(row) => row.get(0).map_err(self.q()),
            None => Ok(None),
        }
    }

    pub fn meta_set(&mut self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn.execute("DELETE FROM meta WHERE key = ?", params![key]).map_err(self.q())?;
        self.conn.execute("INSERT INTO meta VALUES (?, ?)", params![key, value]).map_err(self.q())?;
        Ok(())
    }

    pub fn meta_delete(&mut self, key: &str) -> Result<(), StateError> {
        self.conn.execute("DELETE FROM meta WHERE key = ?", params![key]).map_err(self.q())?;
        Ok(())
    }

    /// A fingerprint of the model's valid keys (their count, and the xor and sum of their
    /// hashes), and their count: equal fingerprints mean, but for a 2^-64 chance, the same keys.
    pub fn model_fingerprint(&mut self) -> Result<(String, u64), StateError> {
        if let Some(fingerprint) = self.staging.as_ref().and_then(|file| file.fingerprint.clone()) {
            return Ok(fingerprint);
        }
        self.load_staging()?;
        self.conn
            .query_row(
                "SELECT count(*), coalesce(bit_xor(k), 0)::VARCHAR, coalesce(sum(k), 0)::VARCHAR FROM staging
                 WHERE c0 IS NOT NULL AND c0 NOT IN (SELECT pk FROM dup_keys)",
                [],
                |r| {
                    let count: i64 = r.get(0)?;
                    let (xor, sum): (String, String) = (r.get(1)?, r.get(2)?);
                    Ok((format!("{count}:{xor}:{sum}"), count as u64))
                },
            )
            .map_err(self.q())
    }

    /// Finds the membership changes of a list: model rows with a HubSpot id that are not
    /// members yet (`list_adds`), and members whose rows left the model or lost their id
    /// (`list_removes`). Returns how many of each; read them with [`StateStore::list_changes_page`].
    ///
    /// The model's rows in the snapshot are the snapshot's rows but those the diff found left
    /// (`left_keys`) and those with a repeated key; only a diff that did not find them (the SQL
    /// diff) needs every staged row loaded.
    pub fn prepare_list_changes(&mut self, list_id: &str) -> Result<(u64, u64), StateError> {
        let list = list_id.replace('\'', "''");
        let current = if self.left_keys_known() {
            "SELECT s.pk, s.hubspot_id FROM snapshot s
             WHERE s.hubspot_id IS NOT NULL AND s.pk NOT IN (SELECT pk FROM left_keys)
               AND s.pk NOT IN (SELECT pk FROM dup_keys)"
        } else {
            self.load_staging()?;
            "SELECT st.c0 AS pk, s.hubspot_id FROM staging st JOIN snapshot s ON s.pk = st.c0
             WHERE st.c0 IS NOT NULL AND st.c0 NOT IN (SELECT pk FROM dup_keys) AND s.hubspot_id IS NOT NULL"
        };
        self.work_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE list_current AS {current};
             CREATE OR REPLACE TEMP TABLE list_adds AS
               SELECT c.pk, c.hubspot_id FROM list_current c
               ANTI JOIN (SELECT * FROM list_members WHERE list_id = '{list}') m ON m.pk = c.pk;
             CREATE OR REPLACE TEMP TABLE list_adds AS SELECT * FROM list_adds ORDER BY pk;
             CREATE OR REPLACE TEMP TABLE list_removes AS
               SELECT m.pk, m.hubspot_id FROM (SELECT * FROM list_members WHERE list_id = '{list}') m
               ANTI JOIN list_current c ON c.pk = m.pk;
             CREATE OR REPLACE TEMP TABLE list_removes AS SELECT * FROM list_removes ORDER BY pk;
             DROP TABLE list_current;"
        ))?;
        let adds = self.scalar_i64("SELECT count(*) FROM list_adds")? as u64;
        let removes = self.scalar_i64("SELECT count(*) FROM list_removes")? as u64;
        Ok((adds, removes))
    }

    /// Reads `limit` of the changes `prepare_list_changes` found, from position `offset`:
    /// `(key, HubSpot id)` pairs to add, or with `removes`, to remove.
    pub fn list_changes_page(
        &self,
        removes: bool,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StateError> {
        let table = if removes { "list_removes" } else { "list_adds" };
        let sql = format!("SELECT pk, hubspot_id FROM {table} WHERE rowid >= ? AND rowid < ? ORDER BY rowid");
        let mut statement = self.conn.prepare(&sql).map_err(self.q())?;
        let rows = statement
            .query_map(params![offset as i64, (offset + limit as u64) as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.q())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.q())
    }

    /// Records members HubSpot added, in one transaction.
    pub fn record_list_added(&mut self, list_id: &str, members: &[(String, String)]) -> Result<(), StateError> {
        let now = chrono::Utc::now().naive_utc();
        let tx = self.reader.conn.transaction().map_err(|e| query_error(&self.reader.path, e))?;
        {
            let mut appender = tx.appender("list_members").map_err(|e| query_error(&self.reader.path, e))?;
            for (pk, id) in members {
                appender.append_row(params![list_id, pk, id, now]).map_err(|e| query_error(&self.reader.path, e))?;
            }
            appender.flush().map_err(|e| query_error(&self.reader.path, e))?;
        }
        tx.commit().map_err(|e| query_error(&self.reader.path, e))
    }

    /// Forgets members HubSpot removed.
    pub fn record_list_removed(&mut self, list_id: &str, members: &[(String, String)]) -> Result<(), StateError> {
        self.batch("CREATE OR REPLACE TEMP TABLE list_removed_now (pk VARCHAR)")?;
        {
            let mut appender =
                self.conn.appender_to_catalog_and_db("list_removed_now", "temp", "main").map_err(self.q())?;
            for (pk, _) in members {
                appender.append_row(params![pk]).map_err(|e| self.err(e))?;
            }
            appender.flush().map_err(|e| self.err(e))?;
        }
        self.conn
            .execute(
                "DELETE FROM list_members WHERE list_id = ? AND pk IN (SELECT pk FROM list_removed_now)",
                params![list_id],
            )
            .map_err(self.q())?;
        self.batch("DROP TABLE list_removed_now")
    }

    pub fn list_member_count(&self, list_id: &str) -> Result<u64, StateError> {
        self.conn
            .query_row("SELECT count(*) FROM list_members WHERE list_id = ?", params![list_id], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.q())
    }
}
