-- Read one result and mark it recently used.
-- KEYS: result key, the model's LRU index. Returns the value or nil.
-- Scores are the server's TIME in microseconds, so several clients agree on "least recently used".
local v = redis.call('GET', KEYS[1])
if v then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'XX', tonumber(t[1]) * 1000000 + tonumber(t[2]), KEYS[1])
else
  redis.call('ZREM', KEYS[2], KEYS[1])
end
return v
