-- flags: no-writes
-- user_get(user): args[10]. Reads only. Returns {the user's record (false: none), then the ids
-- of their sockets, sorted}; a value that is not a record is an error.
local v = redis.call('GET', k_user(args[10]))
local rec = rec_parse({socks = {}}, v or nil)
if not rec then return redis.error_reply('ERR not a user record') end
local sids = {}
for _, s in ipairs(rec.socks) do sids[#sids + 1] = s.sid end
table.sort(sids)
local out = {v}
for _, sid in ipairs(sids) do out[#out + 1] = sid end
return out
