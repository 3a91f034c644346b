-- Folds the journal into the snapshot with a whole-table swap: for a journal about as big as
-- the snapshot (a first run). Followed by merge_rejections.sql, in one transaction (see
-- state/store.rs).
CREATE OR REPLACE TABLE snapshot_next AS
WITH last AS (
    -- Per key, the latest entry with an id and the latest acknowledgement. Only numbers are
    -- aggregated; the values are fetched by sequence number, so the aggregate stays small.
    SELECT
        pk,
        max(seq) FILTER (WHERE hubspot_id IS NOT NULL) AS id_seq,
        max(seq) FILTER (WHERE kind = 'ack') AS ack_seq
    FROM journal
    WHERE kind IN ('ack', 'id')
    GROUP BY pk
),
j AS (
    SELECT
        last.pk,
        i.hubspot_id,
        a.row_hash,
        a.props,
        a.recorded_at AS delivered_at,
        last.ack_seq IS NOT NULL AS acked
    FROM last
    LEFT JOIN journal i ON i.seq = last.id_seq
    LEFT JOIN journal a ON a.seq = last.ack_seq
)
SELECT
    coalesce(j.pk, s.pk) AS pk,
    coalesce(j.hubspot_id, s.hubspot_id) AS hubspot_id,
    CASE WHEN j.acked THEN j.row_hash ELSE s.row_hash END AS row_hash,
    CASE WHEN j.acked THEN j.props ELSE s.props END AS props,
    CASE WHEN j.acked THEN j.delivered_at ELSE s.delivered_at END AS delivered_at
FROM snapshot s
FULL OUTER JOIN j ON s.pk = j.pk;

DROP TABLE snapshot;
ALTER TABLE snapshot_next RENAME TO snapshot;
