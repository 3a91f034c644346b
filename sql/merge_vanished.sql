-- Links of records that were merged into another or deleted in HubSpot (journal kinds 'moved'
-- and 'forget'): HubSpot ended the list memberships and links of the id they had, so those
-- rows are forgotten and the run's list and association diffs send them again for the id the
-- key has now. Rows already made for that id are kept. Runs after merge.sql or
-- merge_in_place.sql (the snapshot holds the new ids), before merge_rejections.sql empties the
-- journal, in the same transaction.
DELETE FROM list_members
WHERE pk IN (SELECT pk FROM journal WHERE kind IN ('moved', 'forget'))
  AND NOT EXISTS (SELECT 1 FROM snapshot s WHERE s.pk = list_members.pk AND s.hubspot_id = list_members.hubspot_id);

DELETE FROM associations
WHERE from_pk IN (SELECT pk FROM journal WHERE kind IN ('moved', 'forget'))
  AND NOT EXISTS (SELECT 1 FROM snapshot s WHERE s.pk = associations.from_pk AND s.hubspot_id = associations.from_id);
