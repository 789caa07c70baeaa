-- user_get(user): ARGV[10]. Reads only. Returns the 7 values of users_query for this user, then
-- the ids of their live sockets, sorted.
local u = ARGV[10]
local r = redis.call('HMGET', k_user(u), 'st', 'm', 'ls', 'since')
local flat = redis.call('HGETALL', k_usocks(u))
local sids = {}
for k = 1, #flat, 2 do
    if live(dec_sock(flat[k + 1])) then sids[#sids + 1] = flat[k] end
end
table.sort(sids)
local out = {(r[1] or r[3]) and 1 or 0, #sids, r[1] or '', r[2] or '', r[3] or '0', r[4] or '0',
             redis.call('ZSCORE', K_GRACE, u) and 1 or 0}
for _, sid in ipairs(sids) do out[#out + 1] = sid end
return out
