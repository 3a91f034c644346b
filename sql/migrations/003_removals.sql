-- Migration 3, removals (issue 13): the state the delete guard, `on_delete` and `remove_stale`
-- need.

-- Links hubsync made (rows of `associations`) that no row asks for any more: their value
-- changed, or their row left the model. Marked before any is removed, so a run whose removals
-- the delete guard held still knows them next time; a mark goes once the link is removed, or
-- when the row asks for the link again.
CREATE TABLE IF NOT EXISTS stale_links (
    assoc VARCHAR,
    from_pk VARCHAR,
    to_value VARCHAR,
    labels VARCHAR,
    marked_at TIMESTAMP
);

-- What a run removed, and how many records the delete guard held back.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS archived BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS cleared BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS unlinked BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS removals_held BIGINT;
