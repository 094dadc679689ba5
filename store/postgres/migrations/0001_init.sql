-- symbot schema version 1: requests with their indexes, durable jobs with
-- leases, the hash-chained audit log, the identity cache and named counters.
-- Times are int8 nanoseconds since the Unix epoch (UTC); NULL is Go's zero
-- time. Text that is ordered or compared uses the "C" collation so that the
-- database orders it as Go does, whatever the database's default.

CREATE TABLE seqs (
	name  text COLLATE "C" PRIMARY KEY,
	value int8 NOT NULL
);

CREATE TABLE requests (
	id        text COLLATE "C" PRIMARY KEY,
	requester text COLLATE "C" NOT NULL,
	state     text COLLATE "C" NOT NULL,
	deadline  int8,          -- Request.Deadline(), NULL when none
	doc       jsonb NOT NULL -- the whole request
);
CREATE INDEX requests_requester ON requests (requester, id);
CREATE INDEX requests_state ON requests (state, id);
CREATE INDEX requests_deadline ON requests (deadline, id) WHERE deadline IS NOT NULL;

CREATE TABLE jobs (
	id          int8 PRIMARY KEY,
	kind        text NOT NULL,
	request_id  text NOT NULL,
	event       text NOT NULL,
	to_user     text NOT NULL,
	text        text NOT NULL,
	lane        text COLLATE "C" NOT NULL,
	attempts    int4 NOT NULL,
	not_before  int8,
	last_error  text NOT NULL,
	alerted     bool NOT NULL,
	created_at  int8,
	lease_owner text NOT NULL,
	lease_until int8,
	-- lease_token grows by one on every claim: a fencing token. A worker
	-- whose lease was taken over finds a different token when it completes.
	lease_token int8 NOT NULL DEFAULT 0,
	-- due is when the job can be claimed: the later of not_before and the
	-- end of its lease.
	due int8 NOT NULL GENERATED ALWAYS AS (GREATEST(COALESCE(not_before, -9223372036854775808), COALESCE(lease_until, -9223372036854775808))) STORED
);
CREATE SEQUENCE jobs_id_seq OWNED BY jobs.id;
CREATE INDEX jobs_due ON jobs (due, id);
CREATE INDEX jobs_lane ON jobs (lane, id) WHERE lane <> '';

CREATE TABLE audit (
	seq        int8 PRIMARY KEY,
	at         int8,
	request_id text NOT NULL,
	actor      text NOT NULL,
	action     text NOT NULL,
	detail     text NOT NULL,
	prev_hash  text NOT NULL,
	hash       text NOT NULL
);

CREATE TABLE identities (
	slack_id     text PRIMARY KEY,
	email        text NOT NULL,
	okta_user_id text NOT NULL,
	okta_login   text NOT NULL,
	cached_at    int8
);
