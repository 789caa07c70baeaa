-- user_disconnect(user): ARGV[10]. Appends the disconnect control entry that every instance's
-- reader sees; each closes its own sockets of the user. Returns 0.
emit('disconnect', ARGV[10], {})
return 0
