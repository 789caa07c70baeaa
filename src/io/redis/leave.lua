-- room_leave(sid, user, room): args[10..12]. Returns 0, ERR_NO_SOCKET for an unknown socket, or
-- ERR_STALE.
local sid, u, room = args[10], args[11], args[12]
local rec = user_load(u)
if stale() then return ERR_STALE end
local s = sock_find(rec, sid)
if not s or s.i ~= INST then return ERR_NO_SOCKET end
if not has_room(s.r, room) then return 0 end
local kept = {}
for _, r in ipairs(s.r) do
    if r ~= room then kept[#kept + 1] = r end
end
s.r = kept
if not in_room_elsewhere(rec, sid, room) then
    room_del(room, u)
    emit(rec, 'room:leave', {r = room, st = rec.st})
end
user_save(rec)
return 0
