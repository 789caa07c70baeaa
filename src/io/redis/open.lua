-- socket_open(sid, user, status?, metadata?): ARGV[10..13]; '' means not given.
-- Returns 0, ERR_EXISTS when the socket is already registered, or ERR_STALE.
local sid, u, st, m = ARGV[10], ARGV[11], opt(ARGV[12]), opt(ARGV[13])
if stale() then return ERR_STALE end
local ki = k_inst(INST)
if redis.call('HEXISTS', ki, sid) == 1 then return ERR_EXISTS end
purge_dead(u)
local ks, ku = k_usocks(u), k_user(u)
local before = redis.call('HLEN', ks)
local in_grace = redis.call('ZSCORE', K_GRACE, u)
redis.call('HSET', ki, sid, u)
confirm_if_reconciling(sid)
redis.call('EXPIRE', ki, INST_TTL_S)
redis.call('HSET', ks, sid, enc_sock(INST, {}))
redis.call('HSET', ku, 'ls', num(NOW))
redis.call('PERSIST', ku)
if before == 0 and not in_grace then
    st = st or 'online'
    redis.call('HSET', ku, 'st', st)
    set_since(ku)
    if m then
        redis.call('HSET', ku, 'm', m)
    else
        redis.call('HDEL', ku, 'm', 'gs')
    end
    emit('online', u, {s = sid, st = st, m = m, rs = {}})
    return 0
end
if in_grace then
    -- Back within the grace window: no transition, the user never went offline.
    redis.call('ZREM', K_GRACE, u)
    redis.call('HDEL', ku, 'gs')
end
apply_status(u, st, m)
return 0
