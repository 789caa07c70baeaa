-- users_query(users...): ARGV[8..]. Reads only. For each user, 7 values:
-- known (0/1), live sockets, status, metadata ('' if none), lastSeen, since, in grace (0/1).
local out = {}
for n = 8, #ARGV do
    local u = ARGV[n]
    local r = redis.call('HMGET', k_user(u), 'st', 'm', 'ls', 'since')
    local flat = redis.call('HGETALL', k_usocks(u))
    local nlive = 0
    for k = 1, #flat, 2 do
        if live(dec_sock(flat[k + 1])) then nlive = nlive + 1 end
    end
    local known = (r[1] or r[3]) and 1 or 0
    out[#out + 1] = known
    out[#out + 1] = nlive
    out[#out + 1] = r[1] or ''
    out[#out + 1] = r[2] or ''
    out[#out + 1] = r[3] or '0'
    out[#out + 1] = r[4] or '0'
    out[#out + 1] = redis.call('ZSCORE', K_GRACE, u) and 1 or 0
end
return out
