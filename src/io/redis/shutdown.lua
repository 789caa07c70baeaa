-- shutdown(): closes this instance's sockets as socket_close(sid, graceful = false) would, for
-- at most BUDGET_US (a large instance must not hold Redis for seconds); the caller calls again
-- until it reports done. The last call, once no user is left in the instance's index (users
-- registered meanwhile are taken too), releases the lease and the instance's keys.
-- Returns {sockets closed, done (0/1), ''}, or {ERR_STALE}. (An epoch Redis no longer has is no
-- reason to stop: whatever is left of the instance is closed all the same.)
if superseded() then return {ERR_STALE} end
local closed, done = drain_instance(INST, true)
if done then return {closed, 1, ''} end
-- Still going. Keep the lease, unless another instance has already taken over by reaping this
-- one.
redis.call('ZADD', K_INSTANCES, 'XX', num(now() + LEASE_MS), INST)
return {closed, 0, ''}
