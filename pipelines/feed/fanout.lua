-- One fan-out batch, atomically (docs/life-of-a-post-created.md).
-- KEYS[1]      fanout marker hash of the post: batch digests done, `owner`, `shared`
-- KEYS[2..n]   feed lists
-- ARGV[1] post id, ARGV[2] batch digest, ARGV[3] owner token,
-- ARGV[4] "1" to force careful mode, ARGV[5] feed max length, ARGV[6] marker ttl (s),
-- ARGV[7] the length past which a feed is trimmed back to its max length (amortised
-- trimming: pipelines/feed/redis_feeds.py `trim_slack`)
-- Returns {status, written, skipped, failed key index (1-based over feeds)...};
-- status 1 = batch already done (nothing touched), 0 = ran.
local marker = KEYS[1]
local post, digest, owner = ARGV[1], ARGV[2], ARGV[3]
local maxlen = tonumber(ARGV[5])
local trim_at = tonumber(ARGV[7])

if redis.call('HEXISTS', marker, digest) == 1 then
  return {1, 0, 0}
end

-- A second owner means another delivery touched this post: feeds may already
-- hold it, so from now on every attempt checks before pushing.
local careful = ARGV[4] == '1'
local current = redis.call('HGET', marker, 'owner')
if not current then
  redis.call('HSET', marker, 'owner', owner)
elseif current ~= owner then
  redis.call('HSET', marker, 'shared', '1')
  careful = true
elseif redis.call('HEXISTS', marker, 'shared') == 1 then
  careful = true
end

local rpcall = redis.pcall
local written, skipped = 0, 0
local failed = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local present = careful and rpcall('LPOS', key, post)
  if type(present) == 'table' then
    failed[#failed + 1] = i - 1
  elseif present then
    skipped = skipped + 1
  else
    local n = rpcall('LPUSH', key, post)
    if type(n) == 'table' then
      failed[#failed + 1] = i - 1
    else
      written = written + 1
      if n > trim_at then
        -- Without slack, one over is the steady state of a full feed: RPOP is cheaper.
        if n == maxlen + 1 then rpcall('RPOP', key) else rpcall('LTRIM', key, 0, maxlen - 1) end
      end
    end
  end
end

if #failed == 0 then
  redis.call('HSET', marker, digest, '1')
end
redis.call('EXPIRE', marker, tonumber(ARGV[6]))

local out = {0, written, skipped}
for j = 1, #failed do out[#out + 1] = failed[j] end
return out
