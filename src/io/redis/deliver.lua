-- deliver_read(count, lock_ms): args[10], args[11]. Webhook delivery through the consumer group
-- `webhooks` of the event stream. One instance at a time delivers, the holder of `P whlock`
-- (taken or refreshed here): one reader keeps the events in stream order, hence in order per
-- user. Whoever takes the lock first claims what other consumers left pending (an instance that
-- died mid-delivery), so nothing is lost: delivery is at least once.
-- Returns {} when another instance holds the lock or nothing is waiting, else
-- {id, event, id, event...}: this consumer's pending entries first, then new ones ('' for an
-- entry trimmed away while pending); ERR_GONE (an integer) when the group does not exist. count
-- 0 only refreshes the lock.
local count, lock_ms = tonumber(args[10]), args[11]
local K_LOCK = P .. 'whlock'
local owner = redis.call('GET', K_LOCK)
if owner and owner ~= INST then return {} end
redis.call('SET', K_LOCK, INST, 'PX', lock_ms)
if count == 0 then return {} end
-- The group is made by reconcile.lua's 'begin' (before the instance is ready) and when a
-- generation begins (ensure_gen). Without it (Redis lost its data and this instance has not
-- reconciled yet, or it was deleted by hand) nothing is made here, where the start of a new
-- generation cannot be told: the caller reconciles, and 'begin' makes it from the right place.
local groups = redis.pcall('XINFO', 'GROUPS', K_EVENTS)
local has_group = false
if type(groups) == 'table' and not groups.err then
    for _, g in ipairs(groups) do
        if g[2] == GROUP then has_group = true end
    end
end
if not has_group then return ERR_GONE end
if not owner then
    local cursor = '0-0'
    for _ = 1, 100 do
        local r = redis.call('XAUTOCLAIM', K_EVENTS, GROUP, INST, 0, cursor, 'COUNT', 100, 'JUSTID')
        cursor = r[1]
        if cursor == '0-0' then break end
    end
end
local function flatten(reply)
    local out = {}
    if not reply or not reply[1] then return out end
    for _, e in ipairs(reply[1][2]) do
        out[#out + 1] = e[1]
        local f = e[2]
        out[#out + 1] = (f and f[1] == 'e' and f[2]) or ''
    end
    return out
end
local mine = flatten(redis.call('XREADGROUP', 'GROUP', GROUP, INST, 'COUNT', count, 'STREAMS',
    K_EVENTS, '0'))
if #mine > 0 then return mine end
return flatten(redis.call('XREADGROUP', 'GROUP', GROUP, INST, 'COUNT', count, 'STREAMS', K_EVENTS,
    '>'))
