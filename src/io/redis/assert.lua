-- socket_assert(sid, user, status?, metadata?, rooms...): args[10..13], rooms from args[14].
-- Registers a live socket again after Redis lost state; emits nothing, unless the user's record
-- says offline (this instance was reaped while cut off from Redis, so observers saw the user
-- leave): then online and the room joins, so that they see the user come back. Returns 0, or
-- ERR_STALE.
local sid, u, st, m = args[10], args[11], opt(args[12]), opt(args[13])
local rec = user_load(u)
if stale() then return ERR_STALE end
local cur = sock_find(rec, sid)
if cur and cur.i == INST then return 0 end
local rooms, seen = {}, {}
for n = 14, #args do
    local r = args[n]
    if not seen[r] then
        seen[r] = true
        rooms[#rooms + 1] = r
    end
end
local nbefore, was_online = #rec.socks, rec.since ~= '0'
for _, r in ipairs(rooms) do
    if not in_room_elsewhere(rec, sid, r) then room_add(r, u) end
end
rec.socks[nbefore + 1] = {sid = sid, i = INST, r = rooms}
confirm_if_reconciling(sid)
inst_count(rec, INST, 1)
if rec.g then
    redis.call('ZREM', K_GRACE, u)
    rec.g = nil
end
if not rec.known then
    rec.st, rec.m = st or 'online', m
    set_online(rec)
elseif not was_online and nbefore == 0 then
    set_online(rec)
    emit(rec, 'online', {s = sid, st = rec.st, m = rec.m, rs = rooms})
    for _, r in ipairs(rooms) do emit(rec, 'room:join', {r = r, st = rec.st, m = rec.m}) end
elseif not was_online then
    set_online(rec)
end
mark_seen(rec)
user_save(rec)
return 0
