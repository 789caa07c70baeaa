-- The periodic tick of every instance (every lease/3): refresh this instance's lease, reap at
-- most two instances whose lease expired, and fire up to 100 offline-grace deadlines that passed.
-- Returns {lease was live before this call (0/1), instances reaped, deadlines fired, sockets
-- reaped}.
local prev = redis.call('ZSCORE', K_INSTANCES, INST)
local held = (prev and tonumber(prev) > NOW) and 1 or 0
redis.call('ZADD', K_INSTANCES, num(NOW + LEASE_MS), INST)
redis.call('EXPIRE', K_INSTANCES, INST_TTL_S)
redis.call('EXPIRE', k_inst(INST), INST_TTL_S)

-- Reaping one instance is atomic (this script), so exactly one instance emits its events.
local dead = redis.call('ZRANGEBYSCORE', K_INSTANCES, '-inf', num(NOW), 'LIMIT', 0, 2)
local reaped = 0
for _, i in ipairs(dead) do
    local flat = redis.call('HGETALL', k_inst(i))
    reaped = reaped + #flat / 2
    for n = 1, #flat, 2 do
        purge_dead(flat[n + 1])
    end
    redis.call('DEL', k_inst(i))
    redis.call('ZREM', K_INSTANCES, i)
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
return {held, #dead, #due, reaped}
