-- One feed of a fan-out batch on a Redis Cluster (pipelines/feed/cluster_feeds.py).
-- KEYS[1] feed list; ARGV[1] post id, ARGV[2] "1" to check the feed first,
-- ARGV[3] feed max length, ARGV[4] the length past which the feed is trimmed back to it.
-- Returns 1 pushed, 0 already there, -1 the key holds another type (nothing written).
local key, post = KEYS[1], ARGV[1]
if ARGV[2] == '1' then
  local present = redis.pcall('LPOS', key, post)
  if type(present) == 'table' then return -1 end
  if present then return 0 end
end
local n = redis.pcall('LPUSH', key, post)
if type(n) == 'table' then return -1 end
local maxlen = tonumber(ARGV[3])
if n > tonumber(ARGV[4]) then
  -- Without slack, one over is the steady state of a full feed: RPOP is cheaper.
  if n == maxlen + 1 then redis.call('RPOP', key) else redis.call('LTRIM', key, 0, maxlen - 1) end
end
return 1
