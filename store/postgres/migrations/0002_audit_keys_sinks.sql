-- The audit chain may be sealed with a key kept outside the database: each
-- entry records the ID of the key that sealed it ('' for the unkeyed SHA-256
-- of older entries). Each audit sink has a durable delivery cursor: the seq
-- of the last entry it has.

ALTER TABLE audit ADD COLUMN key_id text NOT NULL DEFAULT '';

CREATE TABLE sink_cursors (
	name text COLLATE "C" PRIMARY KEY,
	seq  int8 NOT NULL
);
