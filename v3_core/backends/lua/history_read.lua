-- A stream's epoch, last offset and entries after an offset, read in one atomic step.
-- KEYS[1]: the meta hash, KEYS[2]: the entries. ARGV: after (an offset), count.
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'last')
if not meta[1] then
  return {'', 0, {}}
end
local start = '0-' .. (tonumber(ARGV[1]) + 1)
return {meta[1], tonumber(meta[2]), redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', ARGV[2])}
