-- Folds a journal much smaller than the snapshot into it in place: the snapshot rows of the
-- keys in the journal are replaced, the others are not touched (a whole-table swap would
-- rewrite every row for a run that changed a few). The same result as merge.sql. Reads the table
-- journal_last of merge_journal_last.sql; followed by merge_rejections.sql, in one transaction (see
-- state/store.rs).
CREATE OR REPLACE TEMP TABLE snapshot_merged AS
SELECT
    j.pk,
    CASE WHEN j.forgot THEN NULL ELSE coalesce(j.hubspot_id, s.hubspot_id) END AS hubspot_id,
    CASE WHEN j.acked THEN j.row_hash WHEN j.cleared THEN NULL ELSE s.row_hash END AS row_hash,
    CASE WHEN j.acked THEN j.props WHEN j.cleared THEN NULL ELSE s.props END AS props,
    CASE WHEN j.acked THEN j.delivered_at WHEN j.cleared THEN NULL ELSE s.delivered_at END AS delivered_at
FROM journal_last j
LEFT JOIN snapshot s ON s.pk = j.pk;

DELETE FROM snapshot WHERE pk IN (SELECT pk FROM snapshot_merged);
INSERT INTO snapshot SELECT pk, hubspot_id, row_hash, props, delivered_at FROM snapshot_merged;
DROP TABLE snapshot_merged;
