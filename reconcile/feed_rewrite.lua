-- Rewrite one feed to `final`, keeping whatever was pushed since the caller's snapshot.
-- KEYS[1] feed list
-- ARGV[1] max length, ARGV[2] n = snapshot size, ARGV[3..2+n] the snapshot the caller read,
-- ARGV[3+n..] the final entries, newest first.
-- Entries now in the list that were not in the snapshot (and are not in `final`) were
-- pushed by the pipeline meanwhile: they are the newest, so they stay at the head.
-- The result holds each id once, even if the list held it twice.
-- Returns 1 when the list was rewritten, 0 when it already held the result.
local key = KEYS[1]
local maxlen = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local seen = {}
for i = 3, 2 + n do seen[ARGV[i]] = true end
local final = {}
for i = 3 + n, #ARGV do
  final[#final + 1] = ARGV[i]
  seen[ARGV[i]] = true
end

-- What readers see: a fan-out's amortised trimming may leave a few more entries.
local current = redis.call('LRANGE', key, 0, maxlen - 1)
local out = {}
local added = {}
for _, id in ipairs(current) do
  if not seen[id] and not added[id] then
    out[#out + 1] = id
    added[id] = true
  end
end
for _, id in ipairs(final) do
  if #out >= maxlen then break end
  if not added[id] then
    out[#out + 1] = id
    added[id] = true
  end
end

if #out == #current then
  local same = true
  for i = 1, #out do
    if out[i] ~= current[i] then same = false; break end
  end
  if same then return 0 end
end
redis.call('DEL', key)
for i = 1, #out, 1000 do
  redis.call('RPUSH', key, unpack(out, i, math.min(i + 999, #out)))
end
return 1
