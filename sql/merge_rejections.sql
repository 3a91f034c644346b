-- Folds the journal into the rejections, then empties it. Runs after merge.sql or
-- merge_in_place.sql, in the same transaction.

-- The latest outcome per key decides: an acknowledgement clears a rejection, a rejection
-- adds one or counts another attempt (with the row hash it refused, and whether it waits for
-- the row to change). Only keys that are rejected now or were rejected in this journal can
-- change: the others (a first run's million acknowledgements) are not aggregated at all.
CREATE OR REPLACE TABLE rejections_next AS
WITH touched AS (
    SELECT pk FROM journal WHERE kind = 'reject'
    UNION
    SELECT pk FROM rejections
),
last AS (
    SELECT pk, arg_max(kind, seq) AS kind, arg_max(run_id, seq) AS run_id,
           arg_max(code, seq) AS code, arg_max(message, seq) AS message, max(recorded_at) AS at,
           arg_max_null(row_hash, seq) AS row_hash, arg_max_null(on_change, seq) AS on_change
    FROM journal
    WHERE kind IN ('ack', 'reject') AND pk IN (SELECT pk FROM touched)
    GROUP BY pk
)
SELECT r.* FROM rejections r ANTI JOIN last ON r.pk = last.pk
UNION ALL
SELECT last.pk, last.run_id, last.code, last.message,
       coalesce(r.attempts, 0) + 1, coalesce(r.first_seen, last.at), last.at,
       last.row_hash, coalesce(last.on_change, false)
FROM last LEFT JOIN rejections r ON r.pk = last.pk
WHERE last.kind = 'reject';

DROP TABLE rejections;
ALTER TABLE rejections_next RENAME TO rejections;

-- Pending creates: a key whose latest intent, ack, id or settle entry is an intent is still
-- pending; any later ack, id or settle settles it. Only keys with an intent, in the journal or
-- pending already, can change.
CREATE OR REPLACE TABLE pending_creates_next AS
WITH touched AS (
    SELECT pk FROM journal WHERE kind = 'intent'
    UNION
    SELECT pk FROM pending_creates
),
last AS (
    SELECT pk, arg_max(kind, seq) AS kind, arg_max(match_value, seq) AS match_value,
           arg_max(code, seq) AS batch, arg_max(run_id, seq) AS run_id, max(recorded_at) AS sent_at
    FROM journal
    WHERE kind IN ('intent', 'ack', 'id', 'settle') AND pk IN (SELECT pk FROM touched)
    GROUP BY pk
)
SELECT p.* FROM pending_creates p ANTI JOIN last ON p.pk = last.pk
UNION ALL
SELECT pk, match_value, batch, run_id, sent_at FROM last WHERE kind = 'intent';

DROP TABLE pending_creates;
ALTER TABLE pending_creates_next RENAME TO pending_creates;

DELETE FROM journal;
