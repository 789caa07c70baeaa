-- shutdown(cursor): ARGV[10], an HSCAN cursor ('0' to start). Closes this instance's sockets as
-- socket_close(sid, graceful = false) would, for at most BUDGET_US (a large instance must not
-- hold Redis for seconds); the caller calls again with the returned cursor until it is '0'. The
-- last call, once no socket is left, releases the lease and the instance's keys.
-- Returns {sockets closed, done (0/1), next cursor}, or {ERR_STALE}.
if stale() then return {ERR_STALE} end
local ki = k_inst(INST)
local closed = 0
local cursor = scan_within_budget(ki, ARGV[10], function(sid, u)
    -- Closing a user's sockets may already have taken this one (the same user).
    if redis.call('HEXISTS', ki, sid) == 1 then
        purge_dead(u)
        close_socket(u, sid, INST, false)
        closed = closed + 1
    end
end)
if cursor == '0' and redis.call('HLEN', ki) == 0 then
    redis.call('DEL', ki, k_pending(INST), k_confirmed(INST), k_epoch(INST))
    redis.call('ZREM', K_INSTANCES, INST)
    return {closed, 1, '0'}
end
-- Still going (or sockets registered meanwhile: another round from the start). Keep the lease,
-- unless another instance has already taken over by reaping this one.
redis.call('ZADD', K_INSTANCES, 'XX', num(NOW + LEASE_MS), INST)
return {closed, 0, cursor}
