-- socket_assert(sid, user, status?, metadata?, rooms...): ARGV[10..13], rooms from ARGV[14].
-- Re-registers a live socket after Redis lost state; emits nothing, unless the user's record
-- says offline (this instance was reaped while cut off from Redis, so observers saw the user
-- leave): then online and the room joins, so that they see the user come back. Returns 0.
local sid, u, st, m = ARGV[10], ARGV[11], opt(ARGV[12]), opt(ARGV[13])
if stale() then return ERR_STALE end
local ki, ks, ku = k_inst(INST), k_usocks(u), k_user(u)
redis.call('EXPIRE', ki, INST_TTL_S)
if redis.call('HGET', ki, sid) == u and redis.call('HEXISTS', ks, sid) == 1 then return 0 end
local rooms, seen = {}, {}
for n = 14, #ARGV do
    local r = ARGV[n]
    if not seen[r] then
        seen[r] = true
        rooms[#rooms + 1] = r
    end
end
redis.call('HSET', ki, sid, u)
confirm_if_reconciling(sid)
redis.call('HSET', ks, sid, enc_sock(INST, rooms))
for _, r in ipairs(rooms) do
    room_add(r, sid, room_member(INST, u))
end
redis.call('ZREM', K_GRACE, u)
if redis.call('EXISTS', ku) == 0 then
    redis.call('HSET', ku, 'st', st or 'online')
    set_since(ku)
    if m then redis.call('HSET', ku, 'm', m) end
elseif redis.call('HEXISTS', ku, 'since') == 0 and #socks_of(u) == 1 then
    set_since(ku)
    local cur = redis.call('HMGET', ku, 'st', 'm')
    emit('online', u, {s = sid, st = cur[1] or 'online', m = cur[2] or nil, rs = rooms})
    for _, r in ipairs(rooms) do
        emit('room:join', u, {r = r, st = cur[1] or 'online', m = cur[2] or nil})
    end
elseif redis.call('HEXISTS', ku, 'since') == 0 then
    set_since(ku)
end
redis.call('HDEL', ku, 'gs')
redis.call('HSET', ku, 'ls', num(NOW))
redis.call('PERSIST', ku)
return 0
