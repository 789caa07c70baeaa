-- The periodic tick of every instance (every lease/3): refresh this instance's lease, reap up to
-- REAP_SLICE sockets of at most two instances whose lease expired, and fire up to 100
-- offline-grace deadlines that passed. Returns {lease was live before this call (0/1), dead
-- instances finished, deadlines fired, sockets reaped, more to reap (0/1)}.
local prev = redis.call('ZSCORE', K_INSTANCES, INST)
local held = (prev and tonumber(prev) > NOW) and 1 or 0
redis.call('ZADD', K_INSTANCES, num(NOW + LEASE_MS), INST)
redis.call('EXPIRE', K_INSTANCES, INST_TTL_S)
redis.call('EXPIRE', k_inst(INST), INST_TTL_S)

-- Reaping goes in slices of at most REAP_SLICE sockets per call, so that a large dead instance
-- does not hold Redis for seconds (16,000 sockets took about a second in one script). Each slice
-- is atomic and removes what it closed from the dead instance's hash, so every socket is closed,
-- and its events emitted, exactly once, whichever instance runs the slice. The instance leaves
-- the set once its hash is empty; until then the caller ticks again at once.
local REAP_SLICE = 2000
local function reap_slice(i, budget)
    local ki = k_inst(i)
    local before = redis.call('HLEN', ki)
    -- A reap of many slices must not lose the rest of the hash to its TTL meanwhile.
    redis.call('EXPIRE', ki, INST_TTL_S)
    local cursor, done = '0', 0
    repeat
        local page = redis.call('HSCAN', ki, cursor, 'COUNT', 256)
        cursor = page[1]
        local flat = page[2]
        for n = 1, #flat, 2 do
            -- Closing a user's sockets may already have taken this one (the same user).
            if done < budget and redis.call('HEXISTS', ki, flat[n]) == 1 then
                purge_dead(flat[n + 1])
                redis.call('HDEL', ki, flat[n])
                done = done + 1
            end
        end
    until cursor == '0' or done >= budget
    local left = redis.call('HLEN', ki)
    if left == 0 then
        redis.call('DEL', ki)
        redis.call('ZREM', K_INSTANCES, i)
    end
    return before - left, left == 0
end

local dead = redis.call('ZRANGEBYSCORE', K_INSTANCES, '-inf', num(NOW), 'LIMIT', 0, 2)
local reaped, gone, more = 0, 0, 0
for _, i in ipairs(dead) do
    if reaped >= REAP_SLICE then
        more = 1
        break
    end
    local n, finished = reap_slice(i, REAP_SLICE - reaped)
    reaped = reaped + n
    if finished then gone = gone + 1 else more = 1 end
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
