-- The journal folded per key: the latest id and the latest acknowledgement of each key, with
-- `acked` telling whether there is one. Built in three temp tables, one step each, read by the
-- merge that follows (merge.sql or merge_in_place.sql) and dropped after it: an aggregate and
-- two joins in one statement would each hold their memory at the same time, and a first run's
-- million acknowledgements did not fit in the state budget that way (`budget.rs`). One step at
-- a time, each spills on its own.
--
-- A 'moved' entry carries the id of the record a key's record was merged into; a 'forget'
-- entry says the key's record is gone from HubSpot (`forgot`: its id is dropped; `cleared`:
-- what was delivered to it is forgotten too, unless a later acknowledgement re-created it).

-- Per key, the latest entry with an id (or forgetting it) and the latest acknowledgement.
-- Only numbers are aggregated; the values are fetched by sequence number, so the aggregate
-- stays small.
CREATE OR REPLACE TEMP TABLE journal_seqs AS
SELECT
    pk,
    max(seq) FILTER (WHERE hubspot_id IS NOT NULL OR kind = 'forget') AS id_seq,
    max(seq) FILTER (WHERE kind = 'ack') AS ack_seq,
    max(seq) FILTER (WHERE kind = 'forget') AS forget_seq
FROM journal
WHERE kind IN ('ack', 'id', 'moved', 'forget')
GROUP BY pk;

CREATE OR REPLACE TEMP TABLE journal_ids AS
SELECT l.*, i.hubspot_id, i.kind AS id_kind
FROM journal_seqs l
LEFT JOIN journal i ON i.seq = l.id_seq;
DROP TABLE journal_seqs;

CREATE OR REPLACE TEMP TABLE journal_last AS
SELECT
    l.pk,
    l.hubspot_id,
    a.row_hash,
    a.props,
    a.recorded_at AS delivered_at,
    l.ack_seq IS NOT NULL AND l.ack_seq > coalesce(l.forget_seq, 0) AS acked,
    coalesce(l.id_kind = 'forget', false) AS forgot,
    l.forget_seq IS NOT NULL AND coalesce(l.ack_seq, 0) < l.forget_seq AS cleared
FROM journal_ids l
LEFT JOIN journal a ON a.seq = l.ack_seq;
DROP TABLE journal_ids;
