-- Migration 4: records whose associations a run still has to deliver. Written before the run
-- sends any record, emptied when its association phase ends, so a run stopped in between (a
-- crash, a SIGTERM) leaves them to the next one, although their records are in the snapshot by
-- then.
CREATE TABLE links_due (pk VARCHAR);
