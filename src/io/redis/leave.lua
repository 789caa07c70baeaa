-- room_leave(sid, room): ARGV[10], ARGV[11]. Returns 0, or ERR_NO_SOCKET for an unknown socket.
local sid, room = ARGV[10], ARGV[11]
if stale() then return ERR_STALE end
local u = redis.call('HGET', k_inst(INST), sid)
if not u then return ERR_NO_SOCKET end
purge_dead(u)
local ks = k_usocks(u)
local raw = redis.call('HGET', ks, sid)
if not raw then return ERR_NO_SOCKET end
local _, rooms = dec_sock(raw)
if not has_room(rooms, room) then return 0 end
local kept = {}
for _, r in ipairs(rooms) do
    if r ~= room then kept[#kept + 1] = r end
end
redis.call('HSET', ks, sid, enc_sock(INST, kept))
room_del(room, sid)
if not in_room_elsewhere(socks_of(u), sid, room) then emit('room:leave', u, {r = room}) end
return 0
