-- Follow a "latest result" pointer of one (config, filter) and read that result.
-- KEYS: latest hash, LRU index, pointer index. ARGV: pointer. Returns {key, value} or false.
-- A pointer to an expired result is removed.
local k = redis.call('HGET', KEYS[1], ARGV[1])
if not k then return false end
local v = redis.call('GET', k)
if v then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'XX', tonumber(t[1]) * 1000000 + tonumber(t[2]), k)
  return {k, v}
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], k)
return false
