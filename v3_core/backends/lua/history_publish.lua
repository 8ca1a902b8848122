-- Number a message, append it to its channel's history and publish it with its position, in
-- one atomic step: no node can see a live message that history lacks.
-- KEYS[1]: the stream's meta hash (epoch, last), KEYS[2]: its entries (a Redis Stream).
-- Both share the channel's hash tag, so on a cluster they live on the channel's shard.
-- ARGV: channel, message, history size, TTL in ms, the publishing node's epoch seed, and
-- PUBLISH or SPUBLISH (a cluster's shard channel: it lives in the keys' slot).
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- No history (never had any, expired, or Redis lost it): a new epoch, unique in time.
  local now = redis.call('TIME')
  epoch = ARGV[5] .. string.format('%x%05x', tonumber(now[1]), tonumber(now[2]))
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-' .. offset, 'm', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
-- What PUBLISH returns: how many subscribers got it (0: no node holds the channel).
return redis.call(ARGV[6], ARGV[1], '@' .. offset .. ' ' .. epoch .. '\n' .. ARGV[2])
