-- room_join(sid, user, room): args[10..12]. Returns 0, ERR_NO_SOCKET for an unknown socket, or
-- ERR_STALE.
local sid, u, room = args[10], args[11], args[12]
local rec = user_load(u)
if stale() then return ERR_STALE end
local s = sock_find(rec, sid)
if not s or s.i ~= INST then return ERR_NO_SOCKET end
if has_room(s.r, room) then return 0 end
local first = not in_room_elsewhere(rec, sid, room)
s.r[#s.r + 1] = room
if first then
    room_add(room, u)
    -- The join carries status and metadata, so that a view of the room can show the newcomer.
    emit(rec, 'room:join', {r = room, st = rec.st, m = rec.m})
end
user_save(rec)
return 0
