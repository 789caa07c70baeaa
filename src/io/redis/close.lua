-- socket_close(sid, user, graceful): args[10..12] ('1' graceful). Unknown sockets are fine.
-- Returns 0, or ERR_STALE.
local sid, u, graceful = args[10], args[11], args[12] == '1'
local rec = user_load(u)
if stale() then return ERR_STALE end
local s, n = sock_find(rec, sid)
if not s or s.i ~= INST then return 0 end
close_socks(rec, {n}, INST, graceful)
return 0
