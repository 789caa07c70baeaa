-- Shared by every script of the Redis store: prepended to each one when the scripts are embedded
-- into the binary (src/io/redis/embed_lua.cmake). docs/redis-schema.md describes the keys.
--
-- Every script is called with no KEYS and the same first nine ARGV:
--   1 key prefix, 2 calling instance id, 3 offline grace (ms), 4 last_seen retention (s),
--   5 stream MAXLEN, 6 TTL of per-instance keys (s), 7 instance lease (ms), 8 the calling
--   instance's epoch (see stale() below), 9 '1' if the calling instance delivers webhooks
-- and its own arguments from ARGV[10] on. Keys depend on ids the script only learns while it runs
-- (the user of a socket, the rooms of a socket), which is why they are built here rather than
-- passed as KEYS; presenced does not support Redis Cluster.

local P = ARGV[1]
local INST = ARGV[2]
local GRACE_MS = tonumber(ARGV[3])
local RETENTION_S = tonumber(ARGV[4])
local MAXLEN = ARGV[5]
local INST_TTL_S = tonumber(ARGV[6])
local LEASE_MS = tonumber(ARGV[7])
local EPOCH = tonumber(ARGV[8])
local WEBHOOKS = ARGV[9] == '1'

local K_INSTANCES = P .. 'instances'
local K_GRACE = P .. 'grace'
local K_EVENTS = P .. 'events'
local GROUP = 'webhooks' -- the event stream's consumer group for webhook delivery
-- Counters read by GET /v1/stats, kept by the scripts that change what they count (so that
-- reading them is O(1)): users online (the `since` field is set exactly while a user is online,
-- grace included) and rooms with at least one registered socket.
local K_N_ONLINE = P .. 'count_online'
local K_N_ROOMS = P .. 'count_rooms'

-- Redis's clock, so that every instance agrees on deadlines and event times.
local NOW, T0
do
    local t = redis.call('TIME')
    T0 = tonumber(t[1]) * 1000000 + tonumber(t[2])
    NOW = math.floor(T0 / 1000)
end

-- Integers as plain decimal text (tostring would switch to exponent form for large values).
local function num(n)
    return string.format('%.0f', n)
end

-- Ids are length-prefixed after a one-letter tag, so that no id, whatever it contains, can make
-- one key look like another.
local function idkey(tag, id)
    return P .. tag .. ':' .. #id .. ':' .. id
end
local function k_user(u) return idkey('u', u) end
local function k_usocks(u) return idkey('k', u) end
local function k_room(r) return idkey('r', r) end
local function k_inst(i) return idkey('i', i) end
-- The epoch of an instance: the number of its latest reconciliation (reconcile.lua).
local function k_epoch(i) return idkey('e', i) end
-- While an instance reconciles: the marker that it does, and the set of its sockets that the
-- reconciliation confirmed or that were registered since it began (reconcile.lua).
local function k_pending(i) return idkey('p', i) end
local function k_confirmed(i) return idkey('c', i) end

-- A socket registered while its instance reconciles is live: the sweep must not close it.
local function confirm_if_reconciling(sid)
    if redis.call('EXISTS', k_pending(INST)) == 1 then
        redis.call('SADD', k_confirmed(INST), sid)
    end
end

-- A state change is stale (it returns ERR_STALE) when the calling instance has begun a
-- reconciliation since it was sent: it was sent on a connection that has since been given up
-- (its reply never reached the instance, which treated it as lost), and Redis only now receives
-- it. The reconciliation already made Redis agree with the instance's sockets; applying the old
-- change would undo that.
local function stale()
    local cur = redis.call('GET', k_epoch(INST))
    return cur and tonumber(cur) > EPOCH
end

-- Scripts that work through a large hash in one call stop after this much time, and the caller
-- calls again: no script holds Redis for long, whatever the size of an instance.
local BUDGET_US = 10000
local function over_budget()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2]) - T0 >= BUDGET_US
end

-- Walk hash `key` from `cursor` (HSCAN), calling fn(field, value) for each entry, until the walk
-- is over or the time budget spent. fn may delete entries. Returns the next cursor ('0': over).
local function scan_within_budget(key, cursor, fn)
    repeat
        local page = redis.call('HSCAN', key, cursor, 'COUNT', 32)
        cursor = page[1]
        local flat = page[2]
        for n = 1, #flat, 2 do fn(flat[n], flat[n + 1]) end
    until cursor == '0' or over_budget()
    return cursor
end

-- An instance is live while its lease has not expired. The calling instance is evidently alive,
-- even if its lease lapsed during an outage: it must never reap its own sockets.
local live_cache = {[INST] = true}
local function live(i)
    local v = live_cache[i]
    if v == nil then
        local s = redis.call('ZSCORE', K_INSTANCES, i)
        v = (s and tonumber(s) > NOW) or false
        live_cache[i] = v
    end
    return v
end

local function jstr(s)
    return cjson.encode(s)
end

-- Append one event in pres_event's stream form (include/presenced/pres_event.h). Metadata is
-- JSON object text already validated by the caller and is spliced in as is, so that it reaches
-- clients byte for byte.
local stream_checked = false
local function emit(t, u, f)
    -- Webhooks deliver through the consumer group GROUP of the stream. A stream that does not
    -- exist is new (a fresh cluster, or Redis lost its data): the group is created at its start
    -- before the first entry goes in, so that delivery misses nothing.
    if WEBHOOKS and not stream_checked then
        stream_checked = true
        if redis.call('EXISTS', K_EVENTS) == 0 then
            redis.call('XGROUP', 'CREATE', K_EVENTS, GROUP, '0', 'MKSTREAM')
        end
    end
    local p = {'{"t":', jstr(t), ',"u":', jstr(u)}
    if f.s then p[#p + 1] = ',"s":' .. jstr(f.s) end
    if f.r then p[#p + 1] = ',"r":' .. jstr(f.r) end
    if f.st then p[#p + 1] = ',"st":' .. jstr(f.st) end
    if f.ps then p[#p + 1] = ',"ps":' .. jstr(f.ps) end
    if f.m then p[#p + 1] = ',"m":' .. f.m end
    if f.ls then p[#p + 1] = ',"ls":' .. num(f.ls) end
    p[#p + 1] = ',"at":' .. num(NOW)
    if f.rs then
        local q = {}
        for n, r in ipairs(f.rs) do q[n] = jstr(r) end
        p[#p + 1] = ',"rs":[' .. table.concat(q, ',') .. ']'
    end
    p[#p + 1] = '}'
    redis.call('XADD', K_EVENTS, 'MAXLEN', '~', MAXLEN, '*', 'e', table.concat(p))
    -- The user's state is no longer only what a restore after a data loss put back.
    redis.call('HDEL', idkey('u', u), 'rs')
end

-- A socket as the user's socket hash keeps it: {"i":instance,"r":[rooms]}. Written by hand because
-- cjson turns an empty table into {} rather than [].
local function enc_sock(i, rooms)
    local q = {}
    for n, r in ipairs(rooms) do q[n] = jstr(r) end
    return '{"i":' .. jstr(i) .. ',"r":[' .. table.concat(q, ',') .. ']}'
end

local function dec_sock(raw)
    local d = cjson.decode(raw)
    local r = d.r
    if type(r) ~= 'table' then r = {} end
    return d.i, r
end

-- The user's registered sockets: list of {sid, i, r}.
local function socks_of(u)
    local flat = redis.call('HGETALL', k_usocks(u))
    local out = {}
    for n = 1, #flat, 2 do
        local i, r = dec_sock(flat[n + 1])
        out[#out + 1] = {sid = flat[n], i = i, r = r}
    end
    return out
end

local function has_room(rooms, room)
    for _, r in ipairs(rooms) do
        if r == room then return true end
    end
    return false
end

-- Whether any of `socks` other than `sid` is in `room`.
local function in_room_elsewhere(socks, sid, room)
    for _, s in ipairs(socks) do
        if s.sid ~= sid and has_room(s.r, room) then return true end
    end
    return false
end

-- The rooms the user is in over all their sockets, sorted, for routing events.
local function user_rooms(socks)
    local seen, out = {}, {}
    for _, s in ipairs(socks) do
        for _, r in ipairs(s.r) do
            if not seen[r] then
                seen[r] = true
                out[#out + 1] = r
            end
        end
    end
    table.sort(out)
    return out
end

-- The user's online period starts (`since` set) or ends (`since` removed), counted once each.
local function set_since(ku)
    if redis.call('HEXISTS', ku, 'since') == 0 then redis.call('INCR', K_N_ONLINE) end
    redis.call('HSET', ku, 'since', num(NOW))
end
local function clear_since(ku)
    if redis.call('HDEL', ku, 'since') == 1 then redis.call('DECR', K_N_ONLINE) end
end

-- Room membership of one socket, counting rooms as they appear and disappear.
local function room_add(room, sid, member)
    local kr = k_room(room)
    if redis.call('EXISTS', kr) == 0 then redis.call('INCR', K_N_ROOMS) end
    redis.call('HSET', kr, sid, member)
end
local function room_del(room, sid)
    local kr = k_room(room)
    if redis.call('HDEL', kr, sid) == 1 and redis.call('EXISTS', kr) == 0 then
        redis.call('DECR', K_N_ROOMS)
    end
end

local function room_member(i, u)
    -- Instance ids are URL-safe, so the first ':' ends it.
    return i .. ':' .. u
end

-- The user goes offline: the offline event, and the record starts its retention.
local function go_offline(u, sid, ls, rooms)
    local ku = k_user(u)
    -- The status lets the gateway keep an invisible user's departure quiet.
    emit('offline', u, {s = sid, ls = ls, st = redis.call('HGET', ku, 'st'), rs = rooms})
    clear_since(ku)
    redis.call('HDEL', ku, 'gs')
    redis.call('EXPIRE', ku, RETENTION_S)
end

-- docs/presence-model.md, socket_close: socket `sid` of user `u`, registered on instance `i`,
-- leaves its rooms, is unregistered, and the user goes offline (or into the grace) if it was
-- their last socket.
local function close_socket(u, sid, i, graceful)
    local ks = k_usocks(u)
    local raw = redis.call('HGET', ks, sid)
    redis.call('HDEL', k_inst(i), sid)
    if not raw then return end
    local _, rooms = dec_sock(raw)
    redis.call('HDEL', ks, sid)
    local socks = socks_of(u)
    local left = {}
    for _, room in ipairs(rooms) do
        room_del(room, sid)
        if not in_room_elsewhere(socks, sid, room) then
            emit('room:leave', u, {r = room})
            left[#left + 1] = room
        end
    end
    local ku = k_user(u)
    redis.call('HSET', ku, 'ls', num(NOW))
    if #socks > 0 then return end
    if graceful and GRACE_MS > 0 then
        redis.call('HSET', ku, 'gs', sid)
        redis.call('ZADD', K_GRACE, num(NOW + GRACE_MS), u)
        redis.call('PEXPIRE', ku, RETENTION_S * 1000 + GRACE_MS)
    else
        go_offline(u, sid, NOW, left)
    end
end

-- Close the user's sockets that sit on instances whose lease expired, before deciding any
-- transition of that user, so that transitions follow the liveness queries see.
local function purge_dead(u)
    local flat = redis.call('HGETALL', k_usocks(u))
    for n = 1, #flat, 2 do
        local i = dec_sock(flat[n + 1])
        if not live(i) then close_socket(u, flat[n], i, false) end
    end
end

-- Set status and/or metadata (nil: unchanged); emit update when either changed.
local function apply_status(u, st, m)
    local ku = k_user(u)
    local cur = redis.call('HMGET', ku, 'st', 'm')
    local prev = cur[1] or 'online'
    local curm = cur[2] or nil
    local newst = st or prev
    local newm = m or curm
    if newst == prev and newm == curm then return end
    redis.call('HSET', ku, 'st', newst)
    if m then redis.call('HSET', ku, 'm', m) end
    emit('update', u, {st = newst, ps = prev, m = newm, rs = user_rooms(socks_of(u))})
end

local function opt(s)
    if s == nil or s == '' then return nil end
    return s
end

-- The users with a live socket in `room`, sorted. A room hash holds one field per socket, so
-- members are deduplicated here.
local function live_members(room)
    local flat = redis.call('HGETALL', k_room(room))
    local seen, users = {}, {}
    for n = 1, #flat, 2 do
        local v = flat[n + 1]
        local c = string.find(v, ':', 1, true)
        if c then
            local i, u = string.sub(v, 1, c - 1), string.sub(v, c + 1)
            if not seen[u] and live(i) then
                seen[u] = true
                users[#users + 1] = u
            end
        end
    end
    table.sort(users)
    return users
end

-- The id of the stream's newest entry ('0-0' for none): read by a snapshot in the same atomic
-- step as the state it returns, it tells a client which events the snapshot already reflects.
local function last_event_id()
    local e = redis.call('XREVRANGE', K_EVENTS, '+', '-', 'COUNT', 1)
    return e[1] and e[1][1] or '0-0'
end
