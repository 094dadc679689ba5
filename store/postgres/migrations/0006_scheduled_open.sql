-- symbot schema version 6: a request approved ahead of its start time is in
-- the new state 'scheduled', which is open (not final): the partial index of
-- open requests takes it in. The predicate must stay the same text as
-- openStatesSQL in tx.go, or the planner cannot use this index.
DROP INDEX requests_open;
CREATE INDEX requests_open ON requests (requester, id) WHERE state IN ('pending', 'approved', 'scheduled', 'active');
