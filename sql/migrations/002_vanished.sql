-- Schema version 2: records that were merged into another or deleted in HubSpot, counted per
-- run (see sync/deliver/vanished.rs). Journal entries of kind 'moved' (the id map moved to the
-- surviving record) and 'forget' (the record is gone, its id forgotten) need no new column.
ALTER TABLE runs ADD COLUMN merged BIGINT;
ALTER TABLE runs ADD COLUMN vanished BIGINT;
