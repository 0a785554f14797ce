#!lua flags=allow-cross-slot-keys
-- Every feed of one fan-out batch that lives on this node (pipelines/feed/cluster_feeds.py).
-- KEYS[1] one of those feeds (routes the call to the node); ARGV[1] post id, ARGV[2] "1"
-- to check each feed first, ARGV[3] feed max length, ARGV[4] the length past which a
-- feed is trimmed back to it, ARGV[5..] the feeds.
-- Returns one element per feed: 1 pushed, 0 already there, -1 the key holds another
-- type, or the error of a feed this node cannot take now (its slot is migrating away,
-- or moved): the caller sends those again alone, where the cluster redirects them.
local post, careful, maxlen = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local trim_at = tonumber(ARGV[4])
local out = {}

local function refused(reply)
  if string.sub(reply.err, 1, 9) == 'WRONGTYPE' then return -1 end
  return reply
end

for i = 5, #ARGV do
  local key = ARGV[i]
  local present = careful and redis.pcall('LPOS', key, post)
  if type(present) == 'table' then
    out[#out + 1] = refused(present)
  elseif present then
    out[#out + 1] = 0
  else
    local n = redis.pcall('LPUSH', key, post)
    if type(n) == 'table' then
      out[#out + 1] = refused(n)
    else
      if n > trim_at then
        -- Without slack, one over is the steady state of a full feed: RPOP is cheaper.
        if n == maxlen + 1 then redis.call('RPOP', key) else redis.call('LTRIM', key, 0, maxlen - 1) end
      end
      out[#out + 1] = 1
    end
  end
end
return out
