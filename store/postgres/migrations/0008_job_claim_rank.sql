-- symbot schema version 8: jobs are claimed by rank of their kind first
-- (revocations, then grants, then Slack jobs; symbot.ClaimRank) and by id
-- within a rank. This index lets a claim walk the jobs in that order and
-- stop at its limit, as it walked the primary key in id order before. The
-- expression must stay the same text as claimRank in postgres.go (with the
-- column unqualified), or the planner cannot use this index.
CREATE INDEX jobs_claim ON jobs ((CASE kind WHEN 'revoke' THEN 0 WHEN 'grant' THEN 1 ELSE 2 END), id);
