-- Remove the clients of a group whose every connection has expired; return them.
-- Atomic, so each expired client is returned to exactly one caller across all nodes.
-- KEYS[1] group zset   ARGV[1] client zset key prefix (the client id is appended)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE')
local gone = {}
for _, client in ipairs(stale) do
  local key = ARGV[1] .. client
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #latest == 0 then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], client)
    table.insert(gone, client)
  else
    redis.call('ZADD', KEYS[1], 'XX', latest[2], client)
  end
end
return gone
