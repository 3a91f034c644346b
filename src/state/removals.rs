//! The state of removals: records whose rows left the model (for `on_delete`), links hubsync
//! made that no row asks for any more (`remove_stale`), and the records a run would remove
//! from its list, counted once each for the delete guard. Work tables hold this run's
//! removals; the acknowledged ones are folded into the snapshot, the associations and the list
//! members one transaction per HubSpot batch, so a crash loses nothing (a removal sent again
//! is harmless: HubSpot answers it the same).

use duckdb::params;

use super::read::StateReader;
use super::store::StateStore;
use super::types::StateError;

/// The removals a run would send, as `prepare_removals` found them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RemovalTotals {
    /// Records whose rows left the model, to archive or clear (`on_delete`).
    pub rows: u64,
    /// Links hubsync made that no row asks for any more (`remove_stale`).
    pub links: u64,
    /// Records to remove from the sync's list.
    pub list: u64,
    /// Distinct records losing anything: what the delete guard counts.
    pub records: u64,
}

/// One stale link with the ids it was made between, and what else hubsync keeps between the
/// same two records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleLink {
    pub assoc: String,
    pub from_pk: String,
    pub to_value: String,
    pub labels: String,
    pub from_id: String,
    pub to_id: String,
    /// `(rule key, labels)` of the links hubsync keeps between the same two records (of any
    /// rule to the same object). Empty when the pair is wanted no more.
    pub kept: Vec<(String, String)>,
}

/// What the removals are sent for: the rules with `remove_stale`, whether rows that left are
/// archived (their links then go with the record) or handled at all.
#[derive(Debug, Clone, Default)]
pub struct RemovalScope {
    /// `on_delete` is `clear` or `archive`.
    pub rows: bool,
    /// `on_delete` is `archive`.
    pub archive: bool,
    /// Keys of the association rules with `remove_stale`.
    pub stale_rules: Vec<String>,
    /// This run read association cells (`link_candidates` and `link_inputs` exist).
    pub candidates: bool,
}

fn quoted_list(items: &[String]) -> String {
    if items.is_empty() {
        return "NULL".to_string();
    }
    items.iter().map(|i| format!("'{}'", i.replace('\'', "''"))).collect::<Vec<_>>().join(", ")
}

impl StateReader {
    /// True when the file has the removal state (a file written before it only lacks marks).
    fn has_stale_links(&self) -> bool {
        self.has_column("stale_links", "assoc")
    }
}

impl StateStore {
    /// Finds this run's removals after the records and associations were delivered: rows that
    /// left the model (`removed_rows`), stale links (`stale_now`, then `removal_links` with
    /// what is kept between the same records), and an empty `removal_list` that
    /// [`StateStore::add_list_removals`] fills. Reads and writes work tables only; the stale
    /// marks are kept by [`StateStore::keep_stale_marks`].
    pub fn prepare_removals(&mut self, scope: &RemovalScope) -> Result<(), StateError> {
        let rows = scope.rows;
        let archive = scope.archive;
        let rules = quoted_list(&scope.stale_rules);
        // A model equal to the snapshot's acknowledged rows lost none of them; otherwise the diff
        // found those it lost, or, in SQL, every staged key is needed.
        let left = if self.model_equals_snapshot() {
            "false"
        } else if self.left_keys_known() {
            "s.pk IN (SELECT pk FROM left_keys)"
        } else {
            self.load_staging()?;
            "s.pk NOT IN (SELECT c0 FROM staging WHERE c0 IS NOT NULL)"
        };
        self.work_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE removed_rows AS
               SELECT s.pk, s.hubspot_id FROM snapshot s
               WHERE {rows} AND s.row_hash IS NOT NULL AND s.hubspot_id IS NOT NULL AND {left}
               ORDER BY s.pk;
             CREATE OR REPLACE TEMP TABLE removal_list (pk VARCHAR);"
        ))?;
        let marks = if self.has_stale_links() {
            "SELECT assoc, from_pk, to_value, labels FROM stale_links"
        } else {
            "SELECT NULL::VARCHAR AS assoc, NULL::VARCHAR AS from_pk, NULL::VARCHAR AS to_value, NULL::VARCHAR AS labels WHERE false"
        };
        // A row whose cells were read this run decides afresh: a link it still asks for is not
        // stale (and loses an old mark); one it no longer asks for is, unless the cell could not
        // be read (then nothing of that rule is judged for the row).
        // The links of rows no longer in the model are stale. Every link's row is in the
        // snapshot (a link is recorded for a row with a record id, and a row leaves the snapshot
        // only with its links: `record_archived`), so those rows are the snapshot's rows the
        // model does not name: `left_keys`, unless the SQL diff ran, which needs every staged
        // key. When they are known, only the links of the rows read, marked or left are looked
        // at, not every link.
        let left_rows = if scope.stale_rules.is_empty() {
            None
        } else if self.left_keys_known() {
            Some("SELECT pk FROM left_keys")
        } else {
            self.load_staging()?;
            None
        };
        let (read, asked, unreadable) = if scope.candidates {
            (
                "a.from_pk IN (SELECT c0 FROM link_inputs)",
                "EXISTS (SELECT 1 FROM link_candidates c WHERE c.assoc = a.assoc AND c.from_pk = a.from_pk
                         AND c.to_value = a.to_value AND c.labels = a.labels)",
                "EXISTS (SELECT 1 FROM association_rejections r WHERE r.assoc = a.assoc AND r.from_pk = a.from_pk
                         AND r.code IN ('INVALID_ASSOCIATION_VALUE', 'UNKNOWN_ASSOCIATION_LABEL'))",
            )
        } else {
            ("false", "false", "false")
        };
        let (links, row_left) = match left_rows {
            Some(left_rows) => {
                let mut named = vec![format!("SELECT from_pk FROM ({marks}) m"), left_rows.to_string()];
                if scope.candidates {
                    named.push("SELECT c0 FROM link_inputs".to_string());
                }
                (
                    format!("(SELECT * FROM associations WHERE from_pk IN ({}))", named.join(" UNION ALL ")),
                    format!("a.from_pk IN ({left_rows})"),
                )
            }
            None if scope.stale_rules.is_empty() => ("associations".to_string(), "false".to_string()),
            None => (
                "associations".to_string(),
                "a.from_pk NOT IN (SELECT c0 FROM staging WHERE c0 IS NOT NULL)".to_string(),
            ),
        };
        self.work_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE stale_now AS
               SELECT DISTINCT a.assoc, a.from_pk, a.to_value, a.labels FROM {links} a
               WHERE a.assoc IN ({rules}) AND (
                     {row_left}
                  OR ({read} AND NOT {asked} AND NOT {unreadable})
                  OR (NOT {read} AND EXISTS (SELECT 1 FROM ({marks}) m WHERE m.assoc = a.assoc AND m.from_pk = a.from_pk
                                             AND m.to_value = a.to_value AND m.labels = a.labels)));
             CREATE OR REPLACE TEMP TABLE removal_links AS
               WITH stale AS (
                   SELECT a.* FROM associations a
                   JOIN stale_now s ON s.assoc = a.assoc AND s.from_pk = a.from_pk AND s.to_value = a.to_value
                                   AND s.labels = a.labels
                   WHERE NOT ({archive} AND a.from_pk IN (SELECT pk FROM removed_rows))
               ), kept AS (
                   -- Only the pairs of stale links: the other links are not read.
                   SELECT split_part(a.assoc, '|', 1) AS target, a.from_id, a.to_id,
                          string_agg(a.assoc || chr(31) || a.labels, chr(30)) AS kept
                   FROM associations a
                   SEMI JOIN stale p ON p.from_id = a.from_id AND p.to_id = a.to_id
                   ANTI JOIN stale_now s ON s.assoc = a.assoc AND s.from_pk = a.from_pk AND s.to_value = a.to_value
                                        AND s.labels = a.labels
                   GROUP BY ALL
               )
               SELECT st.assoc, st.from_pk, st.to_value, st.labels, st.from_id, st.to_id, k.kept
               FROM stale st
               LEFT JOIN kept k ON k.target = split_part(st.assoc, '|', 1) AND k.from_id = st.from_id AND k.to_id = st.to_id
               ORDER BY st.assoc, st.from_id, st.to_id, st.labels;"
        ))
    }

    /// Notes records the run would remove from its list (for the guard's count).
    pub fn add_list_removals(&mut self, pks: &[String]) -> Result<(), StateError> {
        let mut appender =
            self.conn.appender_to_catalog_and_db("removal_list", "temp", "main").map_err(|e| self.err(e))?;
        for pk in pks {
            appender.append_row(params![pk]).map_err(|e| self.err(e))?;
        }
        appender.flush().map_err(|e| self.err(e))
    }

    /// The totals of the removals `prepare_removals` (and `add_list_removals`) found.
    pub fn removal_totals(&self) -> Result<RemovalTotals, StateError> {
        Ok(RemovalTotals {
            rows: self.scalar_i64("SELECT count(*) FROM removed_rows")? as u64,
            links: self.scalar_i64("SELECT count(*) FROM removal_links")? as u64,
            list: self.scalar_i64("SELECT count(DISTINCT pk) FROM removal_list")? as u64,
            records: self.scalar_i64(
                "SELECT count(DISTINCT pk) FROM (SELECT pk FROM removed_rows UNION ALL
                 SELECT from_pk FROM removal_links UNION ALL SELECT pk FROM removal_list)",
            )? as u64,
        })
    }

    /// Keeps this run's stale marks (`stale_now`) for the next runs.
    pub fn keep_stale_marks(&mut self) -> Result<(), StateError> {
        self.batch(
            "BEGIN; DELETE FROM stale_links;
             INSERT INTO stale_links SELECT assoc, from_pk, to_value, labels, now()::TIMESTAMP FROM stale_now; COMMIT;",
        )
    }

    /// Rows that left the model, `(key, HubSpot id)`, from position `offset`.
    pub fn removed_rows_page(&self, offset: u64, limit: usize) -> Result<Vec<(String, String)>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT pk, hubspot_id FROM removed_rows WHERE rowid >= ? AND rowid < ? ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![offset as i64, (offset + limit as u64) as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Stale links, from position `offset`, in rule and pair order.
    pub fn removal_links_page(&self, offset: u64, limit: usize) -> Result<Vec<StaleLink>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT assoc, from_pk, to_value, labels, from_id, to_id, kept FROM removal_links
                 WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![offset as i64, (offset + limit as u64) as i64], |r| {
                let kept: Option<String> = r.get(6)?;
                Ok(StaleLink {
                    assoc: r.get(0)?,
                    from_pk: r.get(1)?,
                    to_value: r.get(2)?,
                    labels: r.get(3)?,
                    from_id: r.get(4)?,
                    to_id: r.get(5)?,
                    kept: kept
                        .map(|k| {
                            k.split('\u{1e}')
                                .filter_map(|item| item.split_once('\u{1f}'))
                                .map(|(rule, labels)| (rule.to_string(), labels.to_string()))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Keys the run would remove from its list, from position `offset` (for `plan`'s samples).
    pub fn list_removals_sample(&self, limit: usize) -> Result<Vec<String>, StateError> {
        let mut statement =
            self.conn.prepare("SELECT DISTINCT pk FROM removal_list ORDER BY pk LIMIT ?").map_err(|e| self.err(e))?;
        let rows = statement.query_map(params![limit as i64], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Fills the work table `removal_now` with `keys` (one or four columns).
    fn load_removal_keys(&mut self, keys: &[Vec<&str>], width: usize) -> Result<(), StateError> {
        let columns =
            if width == 1 { "pk VARCHAR" } else { "assoc VARCHAR, from_pk VARCHAR, to_value VARCHAR, labels VARCHAR" };
        self.batch(&format!("CREATE OR REPLACE TEMP TABLE removal_now ({columns})"))?;
        let mut appender =
            self.conn.appender_to_catalog_and_db("removal_now", "temp", "main").map_err(|e| self.err(e))?;
        for key in keys {
            appender.append_row(duckdb::appender_params_from_iter(key.iter())).map_err(|e| self.err(e))?;
        }
        appender.flush().map_err(|e| self.err(e))
    }

    /// Records archived in HubSpot: they leave the snapshot (a row that comes back is
    /// delivered as new), and their links and list memberships, which HubSpot ended with the
    /// archive, leave the state too.
    pub fn record_archived(&mut self, pks: &[String]) -> Result<(), StateError> {
        let keys: Vec<Vec<&str>> = pks.iter().map(|pk| vec![pk.as_str()]).collect();
        self.load_removal_keys(&keys, 1)?;
        self.batch(
            "BEGIN;
             DELETE FROM snapshot WHERE pk IN (SELECT pk FROM removal_now);
             DELETE FROM associations WHERE from_pk IN (SELECT pk FROM removal_now);
             DELETE FROM association_rejections WHERE from_pk IN (SELECT pk FROM removal_now);
             DELETE FROM stale_links WHERE from_pk IN (SELECT pk FROM removal_now);
             DELETE FROM list_members WHERE pk IN (SELECT pk FROM removal_now);
             COMMIT;
             DROP TABLE removal_now;",
        )
    }

    /// Records whose mapped properties HubSpot emptied: nothing of them counts as delivered
    /// any more (their ids stay), so a row that comes back is sent in full.
    pub fn record_cleared(&mut self, pks: &[String]) -> Result<(), StateError> {
        let keys: Vec<Vec<&str>> = pks.iter().map(|pk| vec![pk.as_str()]).collect();
        self.load_removal_keys(&keys, 1)?;
        self.batch(
            "BEGIN;
             UPDATE snapshot SET row_hash = NULL, props = NULL, delivered_at = NULL
               WHERE pk IN (SELECT pk FROM removal_now);
             COMMIT;
             DROP TABLE removal_now;",
        )
    }

    /// Links HubSpot removed: they leave the associations and their marks. A row that left the
    /// model no longer counts as delivered either, so if it comes back it is sent again with
    /// its links.
    pub fn record_unlinked(&mut self, links: &[StaleLink]) -> Result<(), StateError> {
        self.load_staging()?;
        let keys: Vec<Vec<&str>> =
            links.iter().map(|l| vec![l.assoc.as_str(), &l.from_pk, &l.to_value, &l.labels]).collect();
        self.load_removal_keys(&keys, 4)?;
        let matches = "assoc || chr(31) || from_pk || chr(31) || to_value || chr(31) || labels IN \
                       (SELECT assoc || chr(31) || from_pk || chr(31) || to_value || chr(31) || labels FROM removal_now)";
        self.batch(&format!(
            "BEGIN;
             DELETE FROM associations WHERE {matches};
             DELETE FROM stale_links WHERE {matches};
             UPDATE snapshot SET row_hash = NULL, props = NULL, delivered_at = NULL
               WHERE pk IN (SELECT from_pk FROM removal_now)
                 AND pk NOT IN (SELECT c0 FROM staging WHERE c0 IS NOT NULL);
             COMMIT;
             DROP TABLE removal_now;"
        ))
    }
}
