-- Add or refresh one connection of a client in a group.
-- KEYS[1] group zset (client -> latest expiry, ms)   KEYS[2] client zset (conn -> expiry, ms)
-- ARGV[1] client_id   ARGV[2] conn_id   ARGV[3] ttl in ms
-- Returns 1 when the client came online (it had no live connection before), else 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local live = redis.call('ZCARD', KEYS[2])
redis.call('ZADD', KEYS[2], expires, ARGV[2])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
-- Keys outlive their members by one TTL, so a sweep still finds expired members to announce;
-- a group nobody refreshes any more is then garbage collected by Redis itself.
redis.call('PEXPIRE', KEYS[2], 2 * tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
if live == 0 then
  return 1
end
return 0
