-- tick(reap, backlog, sent): args[10..12]. The periodic tick of every instance (every lease/3),
-- and the one it runs when another instance's lease expires: refresh this instance's lease, reap
-- (when args[10] is '1') users of at most two instances whose lease expired, for at most
-- BUDGET_US, and fire up to GRACE_BATCH offline-grace deadlines that passed for every live
-- instance (below). args[11]: how many ms ago the oldest state change of the calling instance
-- still without a reply was sent (0: none); args[12]: the calling instance's clock (ms) minus
-- that.
-- Returns {lease was live before this call (0/1), dead instances finished, deadlines fired,
-- sockets reaped, more to do (0/1), ms until the next lease of another instance expires (-1:
-- there is none), this instance's epoch as Redis holds it (0: missing)}.
local t = now()
local prev = redis.call('ZSCORE', K_INSTANCES, INST)
local held = (prev and tonumber(prev) > t) and 1 or 0
redis.call('ZADD', K_INSTANCES, num(t + LEASE_MS), INST)
redis.call('EXPIRE', k_epoch(INST), INST_TTL_S)
redis.call('EXPIRE', k_confirmed(INST), INST_TTL_S)

-- Every state change this instance sent before this time has been carried out. A socket the
-- instance accepted is registered by a function called at once, but under load (a reconnect
-- storm) that call may wait seconds in the instance's queue: a user back within the offline grace
-- must not be announced offline meanwhile. So a grace deadline fires only once every live
-- instance is known to have carried out what it sent up to the deadline. Of the two estimates
-- the smaller counts: Redis's clock at this tick less the backlog (too late by the time this call
-- took to arrive), and the instance's own clock less the backlog (off by the clocks' difference).
local BACKLOG = tonumber(args[11]) or 0
local carried = math.min(t - BACKLOG, tonumber(args[12]) or t)
redis.call('HSET', K_CARRIED, INST, num(carried))
redis.call('EXPIRE', K_CARRIED, INST_TTL_S)

-- Reaping goes in slices of at most BUDGET_US per call (drain_instance), so that a large dead
-- instance does not hold Redis for seconds; until it is gone the caller ticks again at once.
local reaped, gone, more = 0, 0, 0
if args[10] == '1' then
    local dead = redis.call('ZRANGEBYSCORE', K_INSTANCES, '-inf', num(t), 'LIMIT', 0, 2)
    for _, i in ipairs(dead) do
        if over_budget() then
            more = 1
            break
        end
        local n, finished = drain_instance(i, false)
        reaped = reaped + n
        if finished then gone = gone + 1 else more = 1 end
    end
end

-- The horizon: the earliest time up to which every live instance has had its state changes
-- carried out (an instance that has not said yet, from before this rule, does not hold it back).
local horizon = t
local alive = redis.call('ZRANGEBYSCORE', K_INSTANCES, '(' .. num(t), '+inf')
if #alive > 0 then
    for _, m in ipairs(redis.call('HMGET', K_CARRIED, unpack(alive))) do
        if m and tonumber(m) < horizon then horizon = tonumber(m) end
    end
end
local GRACE_BATCH = 100
local due = redis.call('ZRANGEBYSCORE', K_GRACE, '-inf', num(horizon), 'LIMIT', 0, GRACE_BATCH)
-- A full batch may leave more due: the caller ticks again at once, as for a reap.
if #due == GRACE_BATCH then more = 1 end
for _, u in ipairs(due) do
    redis.call('ZREM', K_GRACE, u)
    local rec = user_load(u)
    if #rec.socks == 0 and rec.since ~= '0' then go_offline(rec, rec.g, rec.ls, nil) end
end

-- When the next lease of another instance expires: the caller ticks then and reaps it, so that
-- its sockets leave the users' records (which queries read) the moment it expires.
local next_ms = -1
local first = redis.call('ZRANGE', K_INSTANCES, 0, 1, 'WITHSCORES')
for n = 1, #first, 2 do
    if first[n] ~= INST then
        next_ms = math.max(0, tonumber(first[n + 1]) - t)
        break
    end
end
local stored = read_epoch()
return {held, gone, #due, reaped, more, next_ms, stored.present and stored.n or 0}
