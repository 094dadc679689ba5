-- symbot schema version 7: identities become bindings of a Slack account to
-- one Okta user: when and how the binding was made, and the conflict when a
-- later resolution found another Okta user (refused until an operator resets
-- it). slack_id takes the "C" collation so that Tx.Identities pages in Go's
-- (bytewise) order. Rows cached before bindings keep bound_at NULL: they
-- count as bound at cached_at.
ALTER TABLE identities
	ALTER COLUMN slack_id TYPE text COLLATE "C",
	ADD COLUMN bound_at              int8,
	ADD COLUMN via                   text NOT NULL DEFAULT '',
	ADD COLUMN conflict_okta_user_id text NOT NULL DEFAULT '',
	ADD COLUMN conflict_okta_login   text NOT NULL DEFAULT '',
	ADD COLUMN conflict_email        text NOT NULL DEFAULT '',
	ADD COLUMN conflict_at           int8;
