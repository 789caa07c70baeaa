-- tick(reap): ARGV[10]. The periodic tick of every instance (every lease/3): refresh this
-- instance's lease, reap (when ARGV[10] is '1') sockets of at most two instances whose lease
-- expired, for at most BUDGET_US, and fire up to 100 offline-grace deadlines that passed.
-- Returns {lease was live before this call (0/1), dead instances finished, deadlines fired,
-- sockets reaped, more to reap (0/1)}.
local prev = redis.call('ZSCORE', K_INSTANCES, INST)
local held = (prev and tonumber(prev) > NOW) and 1 or 0
redis.call('ZADD', K_INSTANCES, num(NOW + LEASE_MS), INST)
redis.call('EXPIRE', K_INSTANCES, INST_TTL_S)
redis.call('EXPIRE', k_inst(INST), INST_TTL_S)
redis.call('EXPIRE', k_epoch(INST), INST_TTL_S)
redis.call('EXPIRE', k_pending(INST), INST_TTL_S)
redis.call('EXPIRE', k_confirmed(INST), INST_TTL_S)

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

local due = redis.call('ZRANGEBYSCORE', K_GRACE, '-inf', num(NOW), 'LIMIT', 0, 100)
for _, u in ipairs(due) do
    redis.call('ZREM', K_GRACE, u)
    purge_dead(u)
    if redis.call('HLEN', k_usocks(u)) == 0 then
        local r = redis.call('HMGET', k_user(u), 'gs', 'ls')
        go_offline(u, r[1] or nil, tonumber(r[2]) or NOW, nil)
    end
end
return {held, gone, #due, reaped, more}
