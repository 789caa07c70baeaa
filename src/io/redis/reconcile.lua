-- reconcile(mode, ...): ARGV[10] is the mode. Makes Redis agree with the calling instance's live
-- sockets after any gap (a reconnect, a stall, a command that got no reply, Redis restarted, this
-- instance reaped while it was alive). docs/presence-model.md, "Reconciliation", states the rules.
-- One reconciliation is: 'begin', then one 'slice' per group of users (the instance's truth), then
-- 'sweep' until it reports nothing left. The instance sends them in that order on its command
-- connection, so every state change it sends later runs after the slices.
--
-- 'begin' (ARGV[11]: '1' if this instance has begun one before): fences off state changes sent
--   before it (the instance's epoch, ARGV[8], becomes the stored one), makes sure the webhook
--   consumer group exists, and starts an empty confirmed set: from now on every socket a slice
--   confirms, or that open/assert registers, goes in it.
--   Returns {0 or ERR_STALE, data lost (0/1), sockets registered}. Data is lost when this
--   instance began a reconciliation before and Redis no longer has its epoch: Redis restarted
--   empty or was flushed.
-- 'slice' (ARGV[11]: JSON [{"u": user, "s": [[sid, status, metadata, [rooms]], ...]}, ...],
--   ARGV[12]: '1' when 'begin' found that Redis lost its data: users whose record is missing or
--   only restored are registered without events): per user, the instance's sockets become exactly the given ones, and the events
--   are the difference between what observers were told before (the user's state in Redis) and
--   after. Returns {0 or ERR_STALE}.
-- 'sweep' (ARGV[11]: HSCAN cursor of the instance's socket hash): closes, as socket_close (not
--   graceful) would, the registered sockets that are not confirmed. Works for at most BUDGET_US.
--   Returns {0 or ERR_STALE, next cursor ('0': done), sockets closed}.
local mode = ARGV[10]
if stale() then return {ERR_STALE} end
local ki, kp, kc = k_inst(INST), k_pending(INST), k_confirmed(INST)

if mode == 'begin' then
    local ke = k_epoch(INST)
    local lost = (ARGV[11] == '1' and redis.call('EXISTS', ke) == 0) and 1 or 0
    redis.call('SET', ke, num(EPOCH), 'EX', INST_TTL_S)
    if WEBHOOKS then
        -- Before this instance is ready: a new stream's group starts at its start, so that no
        -- event appended from now on is missed; on an existing stream without the group
        -- (webhooks just enabled) it starts now.
        if redis.call('EXISTS', K_EVENTS) == 0 then
            redis.call('XGROUP', 'CREATE', K_EVENTS, GROUP, '0', 'MKSTREAM')
        else
            redis.pcall('XGROUP', 'CREATE', K_EVENTS, GROUP, '$')
        end
    end
    redis.call('DEL', kc)
    redis.call('SET', kp, '1', 'EX', INST_TTL_S)
    redis.call('EXPIRE', ki, INST_TTL_S)
    return {0, lost, redis.call('HLEN', ki)}
end

if mode == 'sweep' then
    local closed = 0
    local cursor = scan_within_budget(ki, ARGV[11], function(sid, u)
        if redis.call('SISMEMBER', kc, sid) == 0 and redis.call('HEXISTS', ki, sid) == 1 then
            purge_dead(u)
            close_socket(u, sid, INST, false)
            closed = closed + 1
        end
    end)
    if cursor == '0' then redis.call('DEL', kp, kc) end
    return {0, cursor, closed}
end

-- 'slice'
local restore = ARGV[12] == '1'

local function set_of(list)
    local s = {}
    for _, r in ipairs(list) do s[r] = true end
    return s
end

local function union_rooms(socks)
    local s = {}
    for _, k in ipairs(socks) do
        for _, r in ipairs(k.r) do s[r] = true end
    end
    return s
end

local function sorted_keys(s)
    local out = {}
    for r in pairs(s) do out[#out + 1] = r end
    table.sort(out)
    return out
end

-- The user's state as observers were told it: online (the `since` field, grace included) and the
-- rooms of their live sockets.
local function user_state(u, ku)
    local socks = socks_of(u)
    return {online = #socks > 0 or redis.call('HEXISTS', ku, 'since') == 1,
            rooms = union_rooms(socks), nsocks = #socks}
end

-- The user comes online from this reconciliation: status and metadata from the instance's truth.
local function come_online(u, ku, first, rooms)
    local st = first[2] ~= '' and first[2] or 'online'
    local m = opt(first[3])
    redis.call('HSET', ku, 'st', st)
    if m then redis.call('HSET', ku, 'm', m) else redis.call('HDEL', ku, 'm') end
    set_since(ku)
    emit('online', u, {s = first[1], st = st, m = m, rs = rooms})
    for _, r in ipairs(rooms) do emit('room:join', u, {r = r, st = st, m = m}) end
end

local function reconcile_user(u, truth)
    purge_dead(u)
    local ku, ks = k_user(u), k_usocks(u)
    local known = redis.call('EXISTS', ku) == 1
    local before = user_state(u, ku)
    local want, gone = {}, nil
    for _, t in ipairs(truth) do want[t[1]] = t end
    -- This instance's sockets of the user that are no longer live.
    for _, k in ipairs(socks_of(u)) do
        if k.i == INST and not want[k.sid] then
            for _, r in ipairs(k.r) do room_del(r, k.sid) end
            redis.call('HDEL', ks, k.sid)
            redis.call('HDEL', ki, k.sid)
            gone = k.sid
        end
    end
    -- The live ones, each with exactly its rooms.
    for _, t in ipairs(truth) do
        local sid, rooms = t[1], t[4]
        local raw = redis.call('HGET', ks, sid)
        local old = {}
        if raw then
            local _
            _, old = dec_sock(raw)
        end
        local keep, oldset = set_of(rooms), set_of(old)
        for _, r in ipairs(old) do
            if not keep[r] then room_del(r, sid) end
        end
        local uniq = {}
        for _, r in ipairs(rooms) do
            if not oldset[r] then room_add(r, sid, room_member(INST, u)) end
            if not uniq[r] then
                uniq[r] = true
                uniq[#uniq + 1] = r
            end
        end
        redis.call('HSET', ks, sid, enc_sock(INST, uniq))
        redis.call('HSET', ki, sid, u)
        redis.call('SADD', kc, sid)
    end
    local after = user_state(u, ku)
    if #truth > 0 then
        redis.call('HSET', ku, 'ls', num(NOW))
        redis.call('PERSIST', ku)
    end
    -- Redis lost its data (docs/presence-model.md, "Redis lost its data"): what observers were
    -- told is what the instances held before, so registering it again is no transition. That
    -- holds while the user's record is still only restored ones ('rs'): any event about the user
    -- (emit) ends it, and from then on the difference is announced as usual.
    if restore and #truth > 0 and (not known or redis.call('HEXISTS', ku, 'rs') == 1) then
        if not known then
            local st = truth[1][2] ~= '' and truth[1][2] or 'online'
            redis.call('HSET', ku, 'st', st)
            if opt(truth[1][3]) then redis.call('HSET', ku, 'm', truth[1][3]) end
        end
        redis.call('HSET', ku, 'rs', '1')
        set_since(ku)
        return
    end
    local in_grace = redis.call('ZSCORE', K_GRACE, u)
    if not before.online and after.nsocks > 0 then
        come_online(u, ku, truth[1], sorted_keys(after.rooms))
        return
    end
    for _, r in ipairs(sorted_keys(before.rooms)) do
        if not after.rooms[r] then emit('room:leave', u, {r = r}) end
    end
    if before.online and after.nsocks == 0 then
        if not in_grace then
            go_offline(u, gone, NOW, sorted_keys(before.rooms))
        end
        return
    end
    if after.nsocks > 0 and in_grace then
        -- Back within the grace window: no transition.
        redis.call('ZREM', K_GRACE, u)
        redis.call('HDEL', ku, 'gs')
    end
    -- A join carries status and metadata, so that a view of the room can show the newcomer.
    local cur = nil
    for _, r in ipairs(sorted_keys(after.rooms)) do
        if not before.rooms[r] then
            cur = cur or redis.call('HMGET', ku, 'st', 'm')
            emit('room:join', u, {r = r, st = cur[1] or 'online', m = cur[2] or nil})
        end
    end
end

redis.call('EXPIRE', ki, INST_TTL_S)
redis.call('EXPIRE', kc, INST_TTL_S)
for _, e in ipairs(cjson.decode(ARGV[11])) do reconcile_user(e.u, e.s) end
return {0}
