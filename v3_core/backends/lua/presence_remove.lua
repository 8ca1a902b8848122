-- Remove one connection of a client from a group.
-- KEYS[1] group zset   KEYS[2] client zset   ARGV[1] client_id   ARGV[2] conn_id
-- Returns 1 when that was the client's last live connection and the client is now offline,
-- 0 otherwise (other tabs remain, or the entry had already expired and been announced).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local latest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #latest == 0 then
  redis.call('DEL', KEYS[2])
  local listed = redis.call('ZREM', KEYS[1], ARGV[1])
  if removed == 1 and listed == 1 then
    return 1
  end
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', latest[2], ARGV[1])
return 0
