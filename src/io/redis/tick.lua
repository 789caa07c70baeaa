-- tick(reap, backlog, sent): ARGV[10..12]. The periodic tick of every instance (every lease/3):
-- refresh this instance's lease, reap (when ARGV[10] is '1') sockets of at most two instances
-- whose lease expired, for at most BUDGET_US, and fire up to GRACE_BATCH offline-grace deadlines
-- that passed for every live instance (below). ARGV[11]: how many ms ago the oldest state change
-- of the calling instance still without a reply was sent (0: none); ARGV[12]: the calling
-- instance's clock (ms) minus that.
-- Returns {lease was live before this call (0/1), dead instances finished, deadlines fired,
-- sockets reaped, more to do (0/1)}.
local prev = redis.call('ZSCORE', K_INSTANCES, INST)
local held = (prev and tonumber(prev) > NOW) and 1 or 0
redis.call('ZADD', K_INSTANCES, num(NOW + LEASE_MS), INST)
redis.call('EXPIRE', K_INSTANCES, INST_TTL_S)
redis.call('EXPIRE', k_inst(INST), INST_TTL_S)
redis.call('EXPIRE', k_epoch(INST), INST_TTL_S)
redis.call('EXPIRE', k_pending(INST), INST_TTL_S)
redis.call('EXPIRE', k_confirmed(INST), INST_TTL_S)

-- Every state change this instance sent before this time has been carried out. A socket the
-- instance accepted is registered by a script sent at once, but under load (a reconnect storm)
-- that script may wait seconds in the instance's queue: a user back within the offline grace
-- must not be announced offline meanwhile. So a grace deadline fires only once every live
-- instance is known to have carried out what it sent up to the deadline. Of the two estimates
-- the smaller counts: Redis's clock at this tick less the backlog (too late by the time this
-- script took to arrive), and the instance's own clock less the backlog (off by the clocks'
-- difference).
local BACKLOG = tonumber(ARGV[11]) or 0
local carried = math.min(NOW - BACKLOG, tonumber(ARGV[12]) or NOW)
redis.call('HSET', K_CARRIED, INST, num(carried))
redis.call('EXPIRE', K_CARRIED, INST_TTL_S)

-- Reaping goes in slices of at most BUDGET_US per call, so that a large dead instance does not
-- hold Redis for seconds (16,000 sockets took about a second in one script). Each slice is
-- atomic and removes what it closed from the dead instance's hash, so every socket is closed,
-- and its events emitted, exactly once, whichever instance runs the slice. The instance leaves
-- the set once its hash is empty; until then the caller ticks again at once.
local function reap_slice(i)
    local ki = k_inst(i)
    local before = redis.call('HLEN', ki)
    -- A reap of many slices must not lose the rest of the hash to its TTL meanwhile.
    redis.call('EXPIRE', ki, INST_TTL_S)
    scan_within_budget(ki, '0', function(sid, u)
        -- Closing a user's sockets may already have taken this one (the same user).
        if redis.call('HEXISTS', ki, sid) == 1 then
            purge_dead(u)
            redis.call('HDEL', ki, sid)
        end
    end)
    local left = redis.call('HLEN', ki)
    if left == 0 then
        redis.call('DEL', ki, k_pending(i), k_confirmed(i))
        redis.call('ZREM', K_INSTANCES, i)
        redis.call('HDEL', K_CARRIED, i)
    end
    return before - left, left == 0
end

local reaped, gone, more = 0, 0, 0
if ARGV[10] == '1' then
    local dead = redis.call('ZRANGEBYSCORE', K_INSTANCES, '-inf', num(NOW), 'LIMIT', 0, 2)
    for _, i in ipairs(dead) do
        if over_budget() then
            more = 1
            break
        end
        local n, finished = reap_slice(i)
        reaped = reaped + n
        if finished then gone = gone + 1 else more = 1 end
    end
end

-- The horizon: the earliest time up to which every live instance has had its state changes
-- carried out (an instance that has not said yet, from before this rule, does not hold it back).
local horizon = NOW
local alive = redis.call('ZRANGEBYSCORE', K_INSTANCES, '(' .. num(NOW), '+inf')
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
    purge_dead(u)
    if redis.call('HLEN', k_usocks(u)) == 0 then
        local r = redis.call('HMGET', k_user(u), 'gs', 'ls')
        go_offline(u, r[1] or nil, tonumber(r[2]) or NOW, nil)
    end
end
return {held, gone, #due, reaped, more}
