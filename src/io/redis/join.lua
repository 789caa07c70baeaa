-- room_join(sid, room): ARGV[10], ARGV[11]. Returns 0, or ERR_NO_SOCKET for an unknown socket.
local sid, room = ARGV[10], ARGV[11]
if stale() then return ERR_STALE end
local u = redis.call('HGET', k_inst(INST), sid)
if not u then return ERR_NO_SOCKET end
purge_dead(u)
local ks = k_usocks(u)
local raw = redis.call('HGET', ks, sid)
if not raw then return ERR_NO_SOCKET end
local _, rooms = dec_sock(raw)
if has_room(rooms, room) then return 0 end
local first = not in_room_elsewhere(socks_of(u), sid, room)
rooms[#rooms + 1] = room
redis.call('HSET', ks, sid, enc_sock(INST, rooms))
room_add(room, sid, room_member(INST, u))
if first then
    -- The join carries status and metadata, so that a view of the room can show the newcomer.
    local cur = redis.call('HMGET', k_user(u), 'st', 'm')
    emit('room:join', u, {r = room, st = cur[1] or 'online', m = cur[2] or nil})
end
return 0
