-- users_query(users...): ARGV[10..]. Reads only. For each user, 7 values (then, last, the id of
-- the newest event, which the answer reflects):
-- known (0/1), live sockets, status, metadata ('' if none), lastSeen, since, in grace (0/1; only
-- looked up when no socket is live, the one case where it decides whether the user is online).
-- This is the bulk query (presence:query, GET /v1/users): per user one HMGET and one HVALS, and
-- each socket's instance read by a pattern rather than a JSON decode.
local function inst_of(raw)
    return string.match(raw, '^{"i":"([^"\\]*)"') or (dec_sock(raw))
end

local out = {}
for n = 10, #ARGV do
    local u = ARGV[n]
    local r = redis.call('HMGET', k_user(u), 'st', 'm', 'ls', 'since')
    local socks = redis.call('HVALS', k_usocks(u))
    local nlive = 0
    for k = 1, #socks do
        if live(inst_of(socks[k])) then nlive = nlive + 1 end
    end
    local known = (r[1] or r[3]) and 1 or 0
    out[#out + 1] = known
    out[#out + 1] = nlive
    out[#out + 1] = r[1] or ''
    out[#out + 1] = r[2] or ''
    out[#out + 1] = r[3] or '0'
    out[#out + 1] = r[4] or '0'
    out[#out + 1] = (nlive == 0 and redis.call('ZSCORE', K_GRACE, u)) and 1 or 0
end
out[#out + 1] = last_event_id()
return out
