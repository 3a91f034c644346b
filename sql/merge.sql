-- Folds the journal into snapshot and rejections with whole-table swaps, then empties it.
-- Runs inside one transaction (see state/store.rs).
CREATE OR REPLACE TABLE snapshot_next AS
WITH j AS (
    SELECT
        pk,
        arg_max(hubspot_id, seq) FILTER (WHERE hubspot_id IS NOT NULL) AS hubspot_id,
        arg_max(row_hash, seq) FILTER (WHERE kind = 'ack') AS row_hash,
        arg_max(props, seq) FILTER (WHERE kind = 'ack') AS props,
        max(recorded_at) FILTER (WHERE kind = 'ack') AS delivered_at,
        bool_or(kind = 'ack') AS acked
    FROM journal
    WHERE kind IN ('ack', 'id')
    GROUP BY pk
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

-- The latest outcome per key decides: an acknowledgement clears a rejection, a rejection
-- adds one or counts another attempt.
CREATE OR REPLACE TABLE rejections_next AS
WITH last AS (
    SELECT pk, arg_max(kind, seq) AS kind, arg_max(run_id, seq) AS run_id,
           arg_max(code, seq) AS code, arg_max(message, seq) AS message, max(recorded_at) AS at
    FROM journal
    WHERE kind IN ('ack', 'reject')
    GROUP BY pk
)
SELECT r.* FROM rejections r ANTI JOIN last ON r.pk = last.pk
UNION ALL
SELECT last.pk, last.run_id, last.code, last.message,
       coalesce(r.attempts, 0) + 1, coalesce(r.first_seen, last.at), last.at
FROM last LEFT JOIN rejections r ON r.pk = last.pk
WHERE last.kind = 'reject';

DROP TABLE rejections;
ALTER TABLE rejections_next RENAME TO rejections;

DELETE FROM journal;
