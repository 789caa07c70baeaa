-- The shared part of the Redis store's function library (docs/redis-schema.md describes the keys
-- and the cost of each function). src/io/redis/embed_lua.cmake puts this file at the top of the
-- library and each other .lua file below it as the body of one function, so that these helpers
-- are defined once, when the library is loaded (FUNCTION LOAD), rather than at every call.
--
-- Every function gets no KEYS and the same first nine arguments:
--   1 key prefix, 2 calling instance id, 3 offline grace (ms), 4 last_seen retention (s),
--   5 stream MAXLEN, 6 TTL of per-instance bookkeeping (s), 7 instance lease (ms), 8 the calling
--   instance's epoch (see stale() below), 9 '1' if the calling instance delivers webhooks
-- and its own arguments from args[10] on. begin() reads them into the locals below: Redis runs
-- one function at a time, and every function starts with begin(), so what a previous call left
-- there is never read.

local P, INST, GRACE_MS, RETENTION_S, MAXLEN, INST_TTL_S, LEASE_MS, EPOCH, WEBHOOKS
local K_INSTANCES, K_GRACE, K_EVENTS, K_N_MULTI, K_N_ROOMS, K_GEN, K_CARRIED
-- The calling instance's own keys (k_inst and the others below, for INST), and the TTLs of an
-- offline record as SET arguments.
local K_SELF_INST, K_SELF_EXTRA, K_SELF_EPOCH, PX_GRACE
-- Redis's clock, read by now() / now_ms() when needed: ms as a number and as decimal text, and
-- the first TIME reply of the call (seconds, µs), from which over_budget() counts.
local NOW, NOW_S, T_SEC, T_US
local GROUP = 'webhooks' -- the event stream's consumer group for webhook delivery
local gen_checked, epoch_state
local k_inst, k_extra, k_epoch -- defined below

-- Integers as decimal text. Small ones (lengths, counts) come from a table filled as they are
-- met: Lua would format each one with sprintf, at every call.
local INT = {}
local function itoa(n)
    local t = INT[n]
    if t then return t end
    t = string.format('%.0f', n)
    if n >= 0 and n <= 4096 then INT[n] = t end
    return t
end

-- What begin() derives from the arguments is kept from the previous call while they are the same
-- (one instance calls with the same ones every time): strings compare by identity in Lua.
local last_args = {}
local function args_same(args)
    for n = 1, 9 do
        if last_args[n] ~= args[n] then return false end
    end
    return true
end

local function begin(args)
    NOW, NOW_S, T_SEC, T_US, gen_checked, epoch_state = nil, nil, nil, nil, false, nil
    if args_same(args) then return end
    for n = 1, 9 do last_args[n] = args[n] end
    P, INST = args[1], args[2]
    GRACE_MS, RETENTION_S = tonumber(args[3]), args[4]
    MAXLEN, INST_TTL_S, LEASE_MS = args[5], tonumber(args[6]), tonumber(args[7])
    EPOCH, WEBHOOKS = tonumber(args[8]), args[9] == '1'
    PX_GRACE = itoa(tonumber(RETENTION_S) * 1000 + GRACE_MS)
    K_INSTANCES, K_GRACE, K_EVENTS = P .. 'instances', P .. 'grace', P .. 'events'
    -- Counters read by GET /v1/stats, kept by the functions that change what they count:
    -- users counted in more than one instance's index (inst_count) and rooms with members.
    K_N_MULTI, K_N_ROOMS = P .. 'count_multi', P .. 'count_rooms'
    K_GEN = P .. 'gen'
    -- Per instance: every state change it sent before this time (ms) has been carried out
    -- (tick.lua).
    K_CARRIED = P .. 'carried'
    K_SELF_INST, K_SELF_EXTRA, K_SELF_EPOCH = nil, nil, nil
    K_SELF_INST, K_SELF_EXTRA, K_SELF_EPOCH = k_inst(INST), k_extra(INST), k_epoch(INST)
end

-- Redis's clock, so that every instance agrees on deadlines and times. Read once per call, and
-- only by the functions that store a time. now_ms() is the same moment as decimal text, made
-- from TIME's reply without formatting a number: the records and events store text. A call
-- that appends an event before it needs the time takes it from the entry's id instead
-- (xadd()): the milliseconds of Redis's clock at the append, so no TIME is needed, and the
-- times the call stores equal the event's.
local PAD = {'00000', '0000', '000', '00', '0', ''}
local function now_ms()
    if not NOW_S then
        local t = redis.call('TIME')
        if not T_SEC then T_SEC, T_US = t[1], t[2] end
        NOW_S = t[1] .. string.sub(PAD[#t[2]] .. t[2], 1, 3)
        NOW = nil
    end
    return NOW_S
end
local function now()
    if not NOW then NOW = tonumber(now_ms()) end
    return NOW
end

-- Integers as plain decimal text (tostring would switch to exponent form for large values).
local num = itoa

-- Ids are length-prefixed after a one-letter tag, so that no id, whatever it contains, can make
-- one key look like another.
local function idkey(tag, id)
    return P .. tag .. ':' .. itoa(#id) .. ':' .. id
end
local function k_user(u) return idkey('u', u) end
local function k_room(r) return idkey('r', r) end
-- An instance's users (the reap's index), its sockets beyond each user's first (inst_count), its
-- epoch and, while it reconciles, the sockets the reconciliation confirmed.
function k_inst(i) return i == INST and K_SELF_INST or idkey('i', i) end
function k_extra(i) return i == INST and K_SELF_EXTRA or idkey('x', i) end
function k_epoch(i) return i == INST and K_SELF_EPOCH or idkey('e', i) end
local function k_confirmed(i) return idkey('c', i) end

-- The calling instance's epoch key holds "<epoch>" or, while a reconciliation runs,
-- "<epoch>r". State changes read it with the user's record (user_load), in one MGET.
local epoch_raw, epoch_parsed = nil, nil -- the last text parsed, and what it said
local function epoch_parse(v)
    if v ~= epoch_raw or not epoch_parsed then
        epoch_raw = v
        epoch_parsed = {present = v ~= nil, n = v and tonumber(string.match(v, '^%d+')) or 0,
                        reconciling = v and string.sub(v, -1) == 'r' or false}
    end
    epoch_state = epoch_parsed
end
local function read_epoch()
    if epoch_state == nil then epoch_parse(redis.call('GET', k_epoch(INST)) or nil) end
    return epoch_state
end

-- A call is superseded when the calling instance has begun a reconciliation since it was sent:
-- it was sent on a connection that has since been given up (its reply never reached the
-- instance, which treated it as lost), and Redis only now receives it. The reconciliation already
-- made Redis agree with the instance's sockets; applying the old change would undo that.
local function superseded()
    local e = read_epoch()
    return e.present and e.n > EPOCH
end

-- A state change is stale (it returns ERR_STALE) when it is superseded, or when Redis no longer
-- holds the instance's epoch at all: Redis lost its data (restarted empty, flushed, failed over
-- to an empty replica) or the instance's keys expired while it was cut off. Whatever Redis holds
-- of the instance is then not what the instance registered; the refusal makes it reconcile,
-- which registers its sockets in the new generation (reconcile.lua), with their events.
local function stale()
    local e = read_epoch()
    return not e.present or e.n > EPOCH
end

-- A socket registered while its instance reconciles is live: the sweep must not close it.
local function confirm_if_reconciling(sid)
    if read_epoch().reconciling then redis.call('SADD', k_confirmed(INST), sid) end
end

-- Functions that work through a large set in one call stop after this much time, and the caller
-- calls again: no function holds Redis for long, whatever the size of an instance.
local BUDGET_US = 10000
local function over_budget()
    local t = redis.call('TIME')
    if not T_SEC then
        T_SEC, T_US = t[1], t[2]
        return false
    end
    return (tonumber(t[1]) - tonumber(T_SEC)) * 1000000 + tonumber(t[2]) - tonumber(T_US) >=
        BUDGET_US
end

-- The store's generation (docs/redis-schema.md, "Generations"): `P gen` holds the id of the
-- reset entry that began the event stream. A function about to append to the stream and finding
-- neither the key nor a stream is the first writer after Redis lost its data (or on a fresh
-- cluster): it begins a new generation. Its first entry is a reset, which tells every reader that
-- what observers were told before is void: every instance then registers its live sockets again,
-- with their events, and observers rebuild what they show from the events after the reset. For
-- webhooks the consumer group starts before it (when the caller delivers webhooks; another
-- delivering instance makes it at its next reconciliation). A stream without the key was
-- written by a version without generations: it goes on as the current one.
local function ensure_gen()
    if gen_checked then return end
    gen_checked = true
    if redis.call('EXISTS', K_GEN) == 1 then return end
    local top = redis.call('XREVRANGE', K_EVENTS, '+', '-', 'COUNT', 1)
    if top[1] then
        redis.call('SET', K_GEN, top[1][1])
        return
    end
    if WEBHOOKS then redis.pcall('XGROUP', 'CREATE', K_EVENTS, GROUP, '0', 'MKSTREAM') end
    local id = redis.call('XADD', K_EVENTS, 'MAXLEN', '~', MAXLEN, '*', 'e', 'x')
    redis.call('SET', K_GEN, id)
end

-- The stream is trimmed (MAXLEN ~) by one append in TRIM_EVERY, not by each: an XADD carrying
-- the trim has three more arguments and Redis rewrites two of them for replication every time,
-- even when there is nothing to trim. The stream then holds at most TRIM_EVERY entries more than
-- an approximate trim leaves (itself up to a stream node over). The count lives in the library
-- from call to call, as the argument cache does.
local TRIM_EVERY, appends = 64, 0
local function xadd_raw(entry, trim, nomk)
    if trim and nomk then
        return redis.call('XADD', K_EVENTS, 'NOMKSTREAM', 'MAXLEN', '~', MAXLEN, '*', 'e', entry)
    elseif trim then
        return redis.call('XADD', K_EVENTS, 'MAXLEN', '~', MAXLEN, '*', 'e', entry)
    elseif nomk then
        return redis.call('XADD', K_EVENTS, 'NOMKSTREAM', '*', 'e', entry)
    end
    return redis.call('XADD', K_EVENTS, '*', 'e', entry)
end

-- Append one entry to the event stream. The first append of a call goes with NOMKSTREAM: a
-- stream that exists is in a generation already ('begin' of every instance's reconciliation
-- sets `P gen` for a stream written before generations existed), and only a missing one needs
-- ensure_gen, so that the common case costs no extra command.
local function xadd(entry)
    local id
    appends = appends + 1
    local trim = appends >= TRIM_EVERY
    if trim then appends = 0 end
    if not gen_checked then
        gen_checked = true
        id = xadd_raw(entry, trim, true)
        if not id then
            gen_checked = false
            ensure_gen()
        end
    end
    if not id then id = xadd_raw(entry, trim, false) end
    if not NOW_S then
        NOW_S, NOW = string.match(id, '^%d+'), nil
    end
end

-- ---- the user record ----------------------------------------------------------------------
-- P u:<len>:<user>, a string, read whole by one GET (or one MGET for many users):
--   "<since>:<lastSeen>:<sockets>:<metadata length>:<flags>:<status>\n<metadata><sockets>"
-- lastSeen is empty while it equals since; since is 0 while the user is offline (online: a
-- socket registered, or inside the offline grace); flags are 'g<sid>' while the offline grace
-- that the close of socket <sid> started runs (empty otherwise); status is empty for 'online'
-- (the most common one, and the record then fits a smaller allocation); metadata is JSON
-- object text (none: length 0); each socket is a line "<sid>\t<instance>[\t<room>]...\n",
-- rooms in join order. Socket and instance ids are URL-safe, and ids, rooms and statuses hold no
-- control characters, so tabs and newlines separate them. An online record has no TTL; an
-- offline one expires after last_seen_retention.
-- Queries read records as they are: the sockets of an instance whose lease expired leave them
-- when it is reaped, which every instance does the moment the lease expires (tick).

local HEADER = '^(%d+):(%d*):%d+:(%d+):([^:]*):([^\n]*)\n()'
local SOCKET = '^([^\t\n]+)\t?([^\t\n]*)([^\n]*)\n?()'

-- The socket lines of record text `v` from position `at` (read in place: no copy of the part).
local function parse_socks(v, at)
    local out = {}
    while at <= #v do
        local sid, i, rest, nxt = string.match(v, SOCKET, at)
        if not sid then break end
        local rooms = {}
        if rest ~= '' then
            for r in string.gmatch(rest, '[^\t]+') do rooms[#rooms + 1] = r end
        end
        out[#out + 1] = {sid = sid, i = i, r = rooms}
        at = nxt
    end
    return out
end

local function enc_socks(socks)
    local lines = {}
    for n, s in ipairs(socks) do
        if #s.r > 0 then
            lines[n] = s.sid .. '\t' .. s.i .. '\t' .. table.concat(s.r, '\t') .. '\n'
        else
            lines[n] = s.sid .. '\t' .. s.i .. '\n'
        end
    end
    return table.concat(lines)
end

-- A record's parts from its text (nil: none); false when the text is not a record.
local function rec_parse(rec, v)
    if not v then return rec end
    local since, ls, mlen, flags, st, at = string.match(v, HEADER)
    if not since then return false end
    -- Times stay text: most calls store them again unchanged. lastSeen is left out while it
    -- equals since (user_save).
    rec.known, rec.since, rec.st = true, since, st ~= '' and st or 'online'
    rec.ls = ls ~= '' and ls or since
    if flags ~= '' then rec.g = string.match(flags, 'g(.*)$') end
    if mlen ~= '0' then
        mlen = tonumber(mlen)
        rec.m = string.sub(v, at, at + mlen - 1)
        at = at + mlen
    end
    if at <= #v then rec.socks = parse_socks(v, at) end
    return rec
end

-- The record of user `u` and, in the same MGET, the calling instance's epoch (stale()). A value
-- that is not a record is an error: the function fails rather than overwrite it.
local function user_load(u)
    local key = k_user(u)
    local r = redis.call('MGET', key, k_epoch(INST))
    epoch_parse(r[2] or nil)
    local rec = rec_parse({u = u, key = key, known = false, since = '0', ls = '0', st = 'online',
                           socks = {}}, r[1] or nil)
    if not rec then error({err = 'ERR not a user record: ' .. key}) end
    return rec
end

-- Write the record whole. A user with a socket keeps the record for good; one inside the
-- offline grace for the grace and the retention after it; an offline one for the retention.
local function user_save(rec)
    local socks, m = rec.socks, rec.m or ''
    local flags = rec.g and ('g' .. rec.g) or ''
    local st = rec.st ~= 'online' and rec.st or ''
    -- The most common record, one socket in no room, is built by a single concatenation.
    local one = #socks == 1 and #socks[1].r == 0 and socks[1]
    -- lastSeen is left out while it equals since (a user who came online and has done nothing
    -- since): 13 bytes less, which puts the most common record in a smaller allocation.
    local ls = rec.ls ~= rec.since and rec.ls or ''
    local v = rec.since .. ':' .. ls .. ':' .. itoa(#socks) .. ':' .. itoa(#m) .. ':' .. flags ..
        ':' .. st .. '\n' .. m ..
        (one and one.sid or enc_socks(socks)) .. (one and '\t' or '') .. (one and one.i or '') ..
        (one and '\n' or '')
    if #rec.socks > 0 then
        redis.call('SET', rec.key, v)
    elseif rec.since ~= '0' then
        redis.call('SET', rec.key, v, 'PX', PX_GRACE)
    else
        redis.call('SET', rec.key, v, 'EX', RETENTION_S)
    end
end

local function sock_find(rec, sid)
    for n, s in ipairs(rec.socks) do
        if s.sid == sid then return s, n end
    end
    return nil
end

local function has_room(rooms, room)
    for _, r in ipairs(rooms) do
        if r == room then return true end
    end
    return false
end

-- Whether any socket of the record other than `sid` is in `room`.
local function in_room_elsewhere(rec, sid, room)
    for _, s in ipairs(rec.socks) do
        if s.sid ~= sid and has_room(s.r, room) then return true end
    end
    return false
end

-- Whether the record has a socket on instance `i`.
local function on_instance(rec, i)
    for _, s in ipairs(rec.socks) do
        if s.i == i then return true end
    end
    return false
end

-- The rooms the user is in over all their sockets, sorted, for routing events.
local function user_rooms(rec)
    local seen, out = {}, {}
    for _, s in ipairs(rec.socks) do
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

-- Append the event `t` about the record's user, in the stream's form
-- (include/presenced/codec/pres_event.h, docs/redis-schema.md):
--   <tag>\t<user>[\t<key><value>]...[\tm<metadata>]
-- positional tag and user, then one field per value present, each a one-letter key and its
-- text: s socket, r room, t status, p previous status, l lastSeen, g a routing room (one each).
-- Ids, rooms and statuses hold no control characters (the gateway checks), so a tab ends each;
-- metadata (JSON object text, which may hold tabs) comes last and runs to the end. Fields left
-- out read as their defaults: status "online", no rooms; the event's time is its entry id's.
-- Metadata was validated by the caller and is spliced in as is, so that it reaches clients byte
-- for byte. A JSON event would take half as many bytes again: the stream holds every online
-- user's online event, so its size is part of what a connected user costs Redis.
local TAG = {online = 'o', offline = 'f', ['room:join'] = 'j', ['room:leave'] = 'l',
             update = 'u', disconnect = 'd'}
local function emit(rec, t, f)
    local sid, room, st, ps, m, ls = f.s, f.r, f.st, f.ps, f.m, f.ls
    if st == 'online' then st = nil end
    local rs = ''
    if f.rs and #f.rs > 0 then rs = '\tg' .. table.concat(f.rs, '\tg') end
    -- One concatenation: Lua builds the text once, with no intermediate strings.
    xadd(TAG[t] .. '\t' .. rec.u ..
        (sid and '\ts' or '') .. (sid or '') .. (room and '\tr' or '') .. (room or '') ..
        (st and '\tt' or '') .. (st or '') .. (ps and '\tp' or '') .. (ps or '') ..
        (ls and '\tl' or '') .. (ls or '') .. rs .. (m and '\tm' or '') .. (m or ''))
end

-- lastSeen follows the user's activity, except while they are invisible: from the moment they
-- turned invisible it stays where it was, so that it does not give them away. The caller saves
-- the record.
local function mark_seen(rec)
    if rec.st ~= 'invisible' then rec.ls = now_ms() end
end

-- ---- counters, rooms and the instance index -----------------------------------------------

-- The user's online period starts (since set) or ends (since 0). It is counted without a
-- command of its own (online_users).
local function set_online(rec)
    rec.since = now_ms()
end
local function set_offline(rec)
    rec.since = '0'
end

-- The room's member set gains or loses the user (whose first socket joined, or last left).
local function room_add(room, u)
    local kr = k_room(room)
    if redis.call('ZADD', kr, 0, u) == 1 and redis.call('ZCARD', kr) == 1 then
        redis.call('INCR', K_N_ROOMS)
    end
end
local function room_del(room, u)
    local kr = k_room(room)
    if redis.call('ZREM', kr, u) == 1 and redis.call('EXISTS', kr) == 0 then
        redis.call('DECR', K_N_ROOMS)
    end
end

-- How many of the record's sockets are on instance `i`.
local function count_on(rec, i)
    local n = 0
    for _, s in ipairs(rec.socks) do
        if s.i == i then n = n + 1 end
    end
    return n
end

-- Instance `i` gained or lost `delta` sockets of the record's user (already in the record). The
-- instance's sockets are counted without a command of their own in the common case (a user with
-- one socket there): its index `i:` lists each user with a socket there once, and `x:` counts the
-- sockets beyond each user's first, so that the instance has SCARD i: + x: sockets (inst_socks).
-- A user's first and last socket there change only the index, a further one only `x:`. The users
-- online are counted the same way (online_users): `count_multi` counts each user once per
-- instance index it is in beyond the first, so it changes only for users on several instances.
local function inst_count(rec, i, delta)
    local after = count_on(rec, i)
    local before = after - delta
    local joined = before == 0 and after > 0
    local left = before > 0 and after == 0
    if joined then
        redis.call('SADD', k_inst(i), rec.u)
    elseif left then
        redis.call('SREM', k_inst(i), rec.u)
    end
    local extra = math.max(after - 1, 0) - math.max(before - 1, 0)
    if extra ~= 0 then redis.call('INCRBY', k_extra(i), num(extra)) end
    -- A user with sockets on other instances too is in another index already: entering this
    -- one adds one to count_multi, leaving it takes one away. Deleted at 0: no key is left once
    -- every user is gone.
    if (joined or left) and #rec.socks > after and
        redis.call('INCRBY', K_N_MULTI, joined and '1' or '-1') == 0 then
        redis.call('DEL', K_N_MULTI)
    end
end

-- The sockets registered on instance `i` (inst_count).
local function inst_socks(i)
    return redis.call('SCARD', k_inst(i)) + tonumber(redis.call('GET', k_extra(i)) or '0')
end

-- Users online: since set, that is with a socket in the index of some instance that has not been
-- reaped (`insts`, every member of `P instances`), or inside the offline grace (`P grace`: no
-- socket then); a user in several instances' indexes once (`count_multi`).
local function online_users(insts)
    local n = redis.call('ZCARD', K_GRACE) - tonumber(redis.call('GET', K_N_MULTI) or '0')
    for _, i in ipairs(insts) do n = n + redis.call('SCARD', k_inst(i)) end
    return n
end

-- ---- transitions -----------------------------------------------------------------------------

-- The user went offline: the offline event (with the rooms it left); the record, saved, starts
-- its retention. `ls` is the lastSeen the event carries; nil: this moment (as mark_seen: an
-- invisible user's stays where it froze). An event whose lastSeen is its own time leaves it out
-- (the reader restores it), so the moment can come from the append.
local function go_offline(rec, sid, ls, rooms)
    local at_now = false
    if not ls then
        if rec.st == 'invisible' and rec.ls ~= '0' then
            ls = rec.ls
        else
            at_now, ls = true, NOW_S
        end
    end
    -- The status lets the gateway keep an invisible user's departure quiet.
    emit(rec, 'offline', {s = sid, ls = ls, st = rec.st, rs = rooms})
    if at_now and rec.st ~= 'invisible' then rec.ls = now_ms() end
    set_offline(rec)
    rec.g = nil
    user_save(rec)
end

-- docs/presence-model.md, socket_close: the record's sockets at positions `idx` (all on instance
-- `i`) leave their rooms, are unregistered, and the user goes offline (or into the grace) if
-- they were their last. The record is saved. Returns nothing.
local function close_socks(rec, idx, i, graceful)
    local gone, left = {}, {}
    for n = #idx, 1, -1 do
        gone[#gone + 1] = table.remove(rec.socks, idx[n])
    end
    for _, s in ipairs(gone) do
        for _, room in ipairs(s.r) do
            if not left[room] and not in_room_elsewhere(rec, nil, room) then
                left[room] = true
                left[#left + 1] = room
                room_del(room, rec.u)
                -- A room leave carries the user's status, as a join does, so that an invisible
                -- user's room changes can be kept from others.
                emit(rec, 'room:leave', {r = room, st = rec.st})
            end
        end
    end
    inst_count(rec, i, -#gone)
    local last = gone[#gone].sid
    if #rec.socks > 0 then
        mark_seen(rec)
        user_save(rec)
    elseif graceful and GRACE_MS > 0 and rec.since ~= '0' then
        mark_seen(rec)
        rec.g = last
        user_save(rec)
        redis.call('ZADD', K_GRACE, num(now() + GRACE_MS), rec.u)
    else
        -- lastSeen is this moment (or frozen while invisible; an invisible user's may never
        -- have been set: then it is this moment too).
        go_offline(rec, last, nil, left)
    end
end

-- The positions of the record's sockets on instance `i`.
local function socks_on(rec, i)
    local idx = {}
    for n, s in ipairs(rec.socks) do
        if s.i == i then idx[#idx + 1] = n end
    end
    return idx
end

-- Close every socket of user `u` on instance `i` (not graceful): the reap of a dead instance,
-- the shutdown, the sweep. Returns how many.
local function close_user_on(u, i)
    local rec = user_load(u)
    local idx = socks_on(rec, i)
    if #idx == 0 then
        -- Nothing there (closed since): the index entry alone was left.
        redis.call('SREM', k_inst(i), u)
        return 0
    end
    close_socks(rec, idx, i, false)
    return #idx
end

-- Set status and/or metadata (nil: unchanged); emits update when either changed. The caller
-- saves the record.
local function apply_status(rec, st, m)
    local prev, curm = rec.st, rec.m
    local newm = m or curm
    rec.st = st or prev
    if rec.st == prev and newm == curm then return end
    rec.m = newm
    emit(rec, 'update', {st = rec.st, ps = prev, m = newm, rs = user_rooms(rec)})
end

local function opt(s)
    if s == nil or s == '' then return nil end
    return s
end

-- Walk set `key` from `cursor` (SSCAN), calling fn(member) for each, until the walk is over or
-- the time budget spent. fn may remove members. Returns the next cursor ('0': over).
local function sscan_within_budget(key, cursor, fn)
    repeat
        local page = redis.call('SSCAN', key, cursor, 'COUNT', 32)
        cursor = page[1]
        for _, m in ipairs(page[2]) do fn(m) end
    until cursor == '0' or over_budget()
    return cursor
end

-- Forget instance `i` once it has no user left: its bookkeeping and its lease. A reaped
-- instance's epoch stays until its TTL: if it was alive after all, it comes back to find it
-- (docs/presence-model.md, "Reconciliation").
local function inst_forget(i, with_epoch)
    -- `n:` is the socket count of releases that kept one per instance: an instance one of them
    -- left behind goes with it.
    redis.call('DEL', k_inst(i), k_extra(i), k_confirmed(i), idkey('n', i))
    if with_epoch then redis.call('DEL', k_epoch(i)) end
    redis.call('ZREM', K_INSTANCES, i)
    redis.call('HDEL', K_CARRIED, i)
end

-- Close every socket of instance `i` (not graceful), taking its users out of its index (SPOP)
-- a few at a time, for at most BUDGET_US: the reap of a dead instance and the shutdown. Each call
-- is atomic and takes what it closes out of the index, so every socket is closed, and its events
-- emitted, exactly once, whichever instance runs it. Once the index is empty the instance is
-- forgotten (inst_forget). Returns the sockets closed, and whether the instance is gone.
local function drain_instance(i, with_epoch)
    local ki, closed = k_inst(i), 0
    repeat
        local users = redis.call('SPOP', ki, 32)
        for _, u in ipairs(users) do closed = closed + close_user_on(u, i) end
        if #users < 32 then
            inst_forget(i, with_epoch)
            return closed, true
        end
    until over_budget()
    return closed, false
end

-- The id of the stream's newest entry ('0-0' for none): read by a snapshot in the same atomic
-- step as the state it returns, it tells a client which events the snapshot already reflects.
local function last_event_id()
    local e = redis.call('XREVRANGE', K_EVENTS, '+', '-', 'COUNT', 1)
    return e[1] and e[1][1] or '0-0'
end
