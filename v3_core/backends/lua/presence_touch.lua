-- Refresh connections of one group in one call: a node's periodic refresh costs one script
-- per group instead of one per connection (Redis runs scripts one at a time, and every
-- PUBLISH waits behind them).
-- KEYS[1] group zset   KEYS[2..n+1] the client zsets
-- ARGV[1] ttl in ms   ARGV[2*i], ARGV[2*i+1] client_id, conn_id of KEYS[i+1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local expires = now + ttl
local clients = {}
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZADD', KEYS[i], expires, ARGV[2 * i - 1])
  redis.call('PEXPIRE', KEYS[i], 2 * ttl)
  clients[#clients + 1] = expires
  clients[#clients + 1] = ARGV[2 * i - 2]
end
redis.call('ZADD', KEYS[1], unpack(clients))
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return #KEYS - 1
