-- Remove one result and its LRU entry. KEYS: result key, LRU index.
redis.call('ZREM', KEYS[2], KEYS[1])
return redis.call('DEL', KEYS[1])
