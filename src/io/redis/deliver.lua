-- deliver_read(count, lock_ms): ARGV[10], ARGV[11]. Webhook delivery through the consumer group
-- `webhooks` of the event stream. One instance at a time delivers, the holder of `P whlock`
-- (taken or refreshed here): one reader keeps the events in stream order, hence in order per
-- user. Whoever takes the lock first claims what other consumers left pending (an instance that
-- died mid-delivery), so nothing is lost: delivery is at least once.
-- Returns {} when another instance holds the lock or nothing is waiting, else
-- {id, event, id, event...}: this consumer's pending entries first, then new ones ('' for an
-- entry trimmed away while pending). count 0 only refreshes the lock.
local count, lock_ms = tonumber(ARGV[10]), ARGV[11]
local K_LOCK = P .. 'whlock'
local owner = redis.call('GET', K_LOCK)
if owner and owner ~= INST then return {} end
redis.call('SET', K_LOCK, INST, 'PX', lock_ms)
if count == 0 then return {} end
-- The group is made by reconcile.lua's 'begin' (before the instance is ready) and by emit() when
-- the stream is new; this only covers a group deleted by hand (from now on).
redis.pcall('XGROUP', 'CREATE', K_EVENTS, GROUP, '$', 'MKSTREAM')
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
