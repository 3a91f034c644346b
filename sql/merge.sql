-- Folds the journal into the snapshot with a whole-table swap: for a journal about as big as
-- the snapshot (a first run). Reads the table journal_last of merge_journal_last.sql; followed by
-- merge_rejections.sql, in one transaction (see state/store.rs).
CREATE OR REPLACE TABLE snapshot_next AS
SELECT
    coalesce(j.pk, s.pk) AS pk,
    CASE WHEN j.forgot THEN NULL ELSE coalesce(j.hubspot_id, s.hubspot_id) END AS hubspot_id,
    CASE WHEN j.acked THEN j.row_hash WHEN j.cleared THEN NULL ELSE s.row_hash END AS row_hash,
    CASE WHEN j.acked THEN j.props WHEN j.cleared THEN NULL ELSE s.props END AS props,
    CASE WHEN j.acked THEN j.delivered_at WHEN j.cleared THEN NULL ELSE s.delivered_at END AS delivered_at
FROM snapshot s
FULL OUTER JOIN journal_last j ON s.pk = j.pk;

DROP TABLE snapshot;
ALTER TABLE snapshot_next RENAME TO snapshot;
