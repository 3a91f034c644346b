-- Folds the journal into the rejections, then empties it. Runs after merge.sql or
-- merge_in_place.sql, in the same transaction.

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
