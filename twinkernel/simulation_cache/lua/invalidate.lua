-- Remove every result of one model and its indexes.
-- KEYS: LRU index, latest hash, pointer index. Returns the number of results that existed.
-- DEL takes the members in batches: unpack() of a very long list overflows Lua's stack.
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for i = 1, #members, 500 do
  n = n + redis.call('DEL', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return n
