-- flags: no-writes
-- events_since(after, count): args[10], args[11]. Reads only. Returns {0, id, event, id, event...}
-- for the entries after `after` (exclusive), or {ERR_GONE} when `after` is older than the oldest
-- entry kept, so that the reader knows it missed some. '0' and '0-0' mean from the start.
local after, count = args[10], args[11]
local function parse(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    if not ms then
        ms, seq = string.match(id, '^(%d+)$'), '0'
    end
    return tonumber(ms) or 0, tonumber(seq) or 0
end
if after ~= '0' and after ~= '0-0' then
    local first = redis.call('XRANGE', K_EVENTS, '-', '+', 'COUNT', 1)
    local ams, aseq = parse(after)
    if #first == 0 then
        -- An empty stream after a known id: Redis restarted or the stream was trimmed away.
        return {ERR_GONE}
    end
    local fms, fseq = parse(first[1][1])
    if ams < fms or (ams == fms and aseq < fseq) then return {ERR_GONE} end
end
local start = (after == '0' or after == '0-0') and '-' or ('(' .. after)
local entries = redis.call('XRANGE', K_EVENTS, start, '+', 'COUNT', count)
local out = {0}
for _, e in ipairs(entries) do
    out[#out + 1] = e[1]
    local f = e[2]
    out[#out + 1] = (f and f[1] == 'e' and f[2]) or ''
end
return out
