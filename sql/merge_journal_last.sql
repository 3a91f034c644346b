-- The journal folded per key: the latest id and the latest acknowledgement of each key, with
-- `acked` telling whether there is one. A view, so it is computed inside the merge that reads
-- it (merge.sql or merge_in_place.sql), not materialized; dropped after the merge.
--
-- A 'moved' entry carries the id of the record a key's record was merged into; a 'forget'
-- entry says the key's record is gone from HubSpot (`forgot`: its id is dropped; `cleared`:
-- what was delivered to it is forgotten too, unless a later acknowledgement re-created it).
CREATE OR REPLACE TEMP VIEW journal_last AS
WITH last AS (
    -- Per key, the latest entry with an id (or forgetting it) and the latest acknowledgement.
    -- Only numbers are aggregated; the values are fetched by sequence number, so the aggregate
    -- stays small.
    SELECT
        pk,
        max(seq) FILTER (WHERE hubspot_id IS NOT NULL OR kind = 'forget') AS id_seq,
        max(seq) FILTER (WHERE kind = 'ack') AS ack_seq,
        max(seq) FILTER (WHERE kind = 'forget') AS forget_seq
    FROM journal
    WHERE kind IN ('ack', 'id', 'moved', 'forget')
    GROUP BY pk
)
SELECT
    last.pk,
    i.hubspot_id,
    a.row_hash,
    a.props,
    a.recorded_at AS delivered_at,
    last.ack_seq IS NOT NULL AND last.ack_seq > coalesce(last.forget_seq, 0) AS acked,
    coalesce(i.kind = 'forget', false) AS forgot,
    last.forget_seq IS NOT NULL AND coalesce(last.ack_seq, 0) < last.forget_seq AS cleared
FROM last
LEFT JOIN journal i ON i.seq = last.id_seq
LEFT JOIN journal a ON a.seq = last.ack_seq;
