-- reconcile(mode, ...): args[10] is the mode. Makes Redis agree with the calling instance's live
-- sockets after any gap (a reconnect, a stall, a command that got no reply, Redis restarted, this
-- instance reaped while it was alive). docs/presence-model.md, "Reconciliation", states the rules.
-- One reconciliation is: 'begin', then one 'slice' per group of users (the instance's truth), then
-- 'sweep' until it reports nothing left. The instance sends them in that order on its command
-- connection, so every state change it sends later runs after the slices.
--
-- 'begin' (args[11]: '1' if this instance has begun one before; args[12]: the generation its
--   last 'begin' found, '' for none): fences off state changes sent before it (the instance's
--   epoch, args[8], becomes the stored one, marked as reconciling), begins a generation if Redis
--   has none (lib.lua, ensure_gen), makes sure the webhook consumer group exists, and starts an
--   empty confirmed set: from now on every socket a slice confirms, or that open/assert
--   registers, goes in it.
--   Returns {0, data lost (0/1), sockets registered, generation}, or {ERR_STALE, the stored
--   epoch} when Redis holds a higher epoch (a 'begin' delivered late, or the instance's epoch
--   went backwards: it takes the stored one up and begins again). Data is lost when this
--   instance began a reconciliation before and Redis no longer has its epoch: Redis restarted
--   empty or was flushed, or the instance's keys expired.
-- 'slice' (args[11]: JSON [{"u": user, "s": [[sid, status, metadata, [rooms]], ...]}, ...]): per
--   user, the instance's sockets become exactly the given ones, and the events are the difference
--   between what observers were told before (the user's state in Redis) and after. After a data
--   loss the user's state is empty, as what observers hold is (they were told to start again):
--   the user comes online with the rooms of their sockets. Returns {0 or ERR_STALE}.
-- 'sweep' (args[11]: SSCAN cursor of the instance's user index): closes, as socket_close (not
--   graceful) would, the instance's registered sockets that are not confirmed. Works for at most
--   BUDGET_US. Returns {0 or ERR_STALE, next cursor ('0': done), sockets closed}.
local mode = args[10]
local ki, kc, ke = k_inst(INST), k_confirmed(INST), k_epoch(INST)

if mode == 'begin' then
    if superseded() then return {ERR_STALE, read_epoch().n} end
    local lost = (args[11] == '1' and not read_epoch().present) and 1 or 0
    ensure_gen()
    local gen = redis.call('GET', K_GEN)
    redis.call('SET', ke, num(EPOCH) .. 'r', 'EX', INST_TTL_S)
    if WEBHOOKS then
        -- Before this instance is ready. A new generation's group was made at its start by
        -- ensure_gen when the caller delivers webhooks; if another instance began it, the group
        -- of an instance that knew the generation before went with the data: from this
        -- generation's start too, so that delivery resumes without a gap. An instance that knew
        -- none (webhooks enabled on a running cluster) starts it now. (An existing group stays.)
        local known = args[12]
        redis.pcall('XGROUP', 'CREATE', K_EVENTS, GROUP,
            (known ~= '' and known ~= gen) and '0' or '$')
    end
    redis.call('DEL', kc)
    return {0, lost, inst_socks(INST), gen}
end

if stale() then return {ERR_STALE} end

if mode == 'sweep' then
    local closed = 0
    local cursor = sscan_within_budget(ki, args[11], function(u)
        local rec = user_load(u)
        local idx = {}
        for n, s in ipairs(rec.socks) do
            if s.i == INST and redis.call('SISMEMBER', kc, s.sid) == 0 then idx[#idx + 1] = n end
        end
        if #idx > 0 then
            close_socks(rec, idx, INST, false)
            closed = closed + #idx
        elseif not on_instance(rec, INST) then
            redis.call('SREM', ki, u)
        end
    end)
    if cursor == '0' then
        redis.call('DEL', kc)
        redis.call('SET', ke, num(EPOCH), 'KEEPTTL')
    end
    return {0, cursor, closed}
end

-- 'slice'

local function room_set(socks)
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

-- The user comes online from this reconciliation: status and metadata from the instance's truth.
local function come_online(rec, first, rooms)
    rec.st, rec.m = first[2] ~= '' and first[2] or 'online', opt(first[3])
    set_online(rec)
    emit(rec, 'online', {s = first[1], st = rec.st, m = rec.m, rs = rooms})
    for _, r in ipairs(rooms) do emit(rec, 'room:join', {r = r, st = rec.st, m = rec.m}) end
    user_save(rec)
end

local function reconcile_user(u, truth)
    local rec = user_load(u)
    local before_online = #rec.socks > 0 or rec.since ~= '0'
    local before_rooms = room_set(rec.socks)
    local nbefore = count_on(rec, INST)
    local want, gone = {}, nil
    for _, t in ipairs(truth) do want[t[1]] = t end
    -- This instance's sockets of the user that are no longer live.
    local kept = {}
    for _, s in ipairs(rec.socks) do
        if s.i == INST and not want[s.sid] then gone = s.sid else kept[#kept + 1] = s end
    end
    rec.socks = kept
    -- The live ones, each with exactly its rooms.
    for _, t in ipairs(truth) do
        local rooms, uniq = {}, {}
        for _, r in ipairs(t[4]) do
            if not uniq[r] then
                uniq[r] = true
                rooms[#rooms + 1] = r
            end
        end
        local s = sock_find(rec, t[1])
        if s then
            s.i, s.r = INST, rooms
        else
            rec.socks[#rec.socks + 1] = {sid = t[1], i = INST, r = rooms}
        end
        redis.call('SADD', kc, t[1])
    end
    local after_rooms = room_set(rec.socks)
    for r in pairs(before_rooms) do
        if not after_rooms[r] then room_del(r, u) end
    end
    -- Every room the user is in, also one Redis lost: adding a member is idempotent.
    for r in pairs(after_rooms) do room_add(r, u) end
    local nafter = count_on(rec, INST)
    if nafter ~= nbefore then inst_count(rec, INST, nafter - nbefore) end
    if #truth > 0 then mark_seen(rec) end
    local in_grace = rec.g ~= nil
    if not before_online and #rec.socks > 0 then
        come_online(rec, truth[1], sorted_keys(after_rooms))
        return
    end
    for _, r in ipairs(sorted_keys(before_rooms)) do
        if not after_rooms[r] then emit(rec, 'room:leave', {r = r, st = rec.st}) end
    end
    if before_online and #rec.socks == 0 then
        if not in_grace then
            go_offline(rec, gone, now_ms(), sorted_keys(before_rooms))
        else
            user_save(rec)
        end
        return
    end
    if #rec.socks > 0 and in_grace then
        -- Back within the grace window: no transition.
        redis.call('ZREM', K_GRACE, u)
        rec.g = nil
    end
    -- Room joins carry the user's status and metadata (as join.lua's do), so that a view of the
    -- room can show the newcomer.
    for _, r in ipairs(sorted_keys(after_rooms)) do
        if not before_rooms[r] then emit(rec, 'room:join', {r = r, st = rec.st, m = rec.m}) end
    end
    user_save(rec)
end

redis.call('EXPIRE', kc, INST_TTL_S)
for _, e in ipairs(cjson.decode(args[11])) do reconcile_user(e.u, e.s) end
return {0}
