-- symbot schema version 3: keys seen by any replica (Slack envelope ids,
-- trigger ids, clicks), so that a redelivered envelope or a double click
-- is recognised whichever replica gets it.
CREATE TABLE dedup (
	key     text PRIMARY KEY,
	expires int8 NOT NULL -- nanoseconds since the epoch
);
CREATE INDEX dedup_expires ON dedup (expires);
