-- The journal folded per key: the latest id and the latest acknowledgement of each key, with
-- `acked` telling whether there is one. A view, so it is computed inside the merge that reads
-- it (merge.sql or merge_in_place.sql), not materialized; dropped after the merge.
CREATE OR REPLACE TEMP VIEW journal_last AS
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
)
SELECT
    last.pk,
    i.hubspot_id,
    a.row_hash,
    a.props,
    a.recorded_at AS delivered_at,
    last.ack_seq IS NOT NULL AS acked
FROM last
LEFT JOIN journal i ON i.seq = last.id_seq
LEFT JOIN journal a ON a.seq = last.ack_seq;
