-- Store one result, bound the model's LRU index, write the "latest result" pointer.
-- KEYS: result key, LRU index, latest hash, pointer index.
-- ARGV: value, ttl ms, max entries, pointer ('' = none). Returns the number of results evicted.
-- The indexes never expire before the results they list.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
local maxn = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
local evicted = 0
local n = redis.call('ZCARD', KEYS[2])
if n > maxn then
  local old = redis.call('ZPOPMIN', KEYS[2], n - maxn)
  for i = 1, #old, 2 do
    evicted = evicted + redis.call('DEL', old[i])
  end
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[4], KEYS[1])
  redis.call('ZADD', KEYS[4], now, ARGV[4])
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
  if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
  local m = redis.call('ZCARD', KEYS[4])
  if m > maxn then
    local stale = redis.call('ZPOPMIN', KEYS[4], m - maxn)
    for i = 1, #stale, 2 do
      redis.call('HDEL', KEYS[3], stale[i])
    end
  end
end
return evicted
