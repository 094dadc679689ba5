-- symbot schema version 5: a partial index of the requests that are not in a
-- final state, by requester, so that Tx.OpenRequests (submit, revoke, the
-- duplicate check) reads only a person's open requests, never their history.
-- The predicate must stay the same text as openStatesSQL in tx.go, or the
-- planner cannot use this index.
CREATE INDEX requests_open ON requests (requester, id) WHERE state IN ('pending', 'approved', 'active');
