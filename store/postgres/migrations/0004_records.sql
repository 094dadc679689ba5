-- symbot schema version 4: small named records (symbot.RecordTx), such as
-- the reconciler's per-group record of standing members and alerts sent.
CREATE TABLE records (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);
