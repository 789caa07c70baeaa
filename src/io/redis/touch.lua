-- touch(sid, user): args[10..11]. Returns 0, ERR_NO_SOCKET for an unknown socket, or ERR_STALE.
local sid, u = args[10], args[11]
local rec = user_load(u)
if stale() then return ERR_STALE end
local s = sock_find(rec, sid)
if not s or s.i ~= INST then return ERR_NO_SOCKET end
mark_seen(rec)
user_save(rec)
return 0
