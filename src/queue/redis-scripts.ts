/**
 * The Lua scripts that make enqueueing atomic. Each runs as one Redis command: nothing else
 * happens in Redis while it runs, so a stream's sequence can never get a gap or a duplicate.
 * Keys are built in queue-keys.ts and passed as KEYS; a script derives the keys of one batch
 * from the stream's key base (KEYS[3] / KEYS[2]), which shares the stream's hash tag.
 *
 * Both scripts start with `#!lua`: Redis then refuses them up front when it is out of memory
 * (noeviction), instead of failing at their first write, half-way through.
 *
 * Epochs: a stream's numbering is only meaningful to the Redis that assigned it. Each time a
 * stream is appended to on a Redis it has not seen before (a new stream, a Redis restarted, or
 * one that lost the stream's hash), a new epoch starts: a random id, with the seq it continues
 * from (`base`). PostgreSQL records the epoch of each commit beside the seq, so a worker can tell
 * a Redis that went back in time (lost writes) from one that did not (stream-position.ts).
 */

/**
 * -- append-batch
 * KEYS: 1 state hash, 2 batchid key, 3 stream key base (ends with ':')
 * ARGV: 1 header JSON, 2 upload id, 3 part count, 4 bytes, 5 high watermark JSON,
 *       6 max pending batches (0 = no bound), 7 max pending bytes (0 = no bound),
 *       8 batchId TTL seconds, 9 content hash, 10 a new epoch id (used if an epoch starts),
 *       11 part 0 itself for a batch of one part ('' when its parts were uploaded)
 * Returns {seq, 0, kick} when appended, {seq, 1, 1} when this batchId was appended before with
 *   the same content (a retry: this upload's parts are deleted), {-4, seq} when it was appended before
 *   with other content, {-1, pending batches} / {-2, pending bytes} over the backpressure bound,
 *   {-3, part index} when a part is missing (expired: the producer was too slow).
 */
export const APPEND_BATCH = `#!lua
local base = KEYS[3]
local upload = ARGV[2]
local parts = tonumber(ARGV[3])
local partKey = function(i) return base .. 'part:' .. upload .. ':' .. i end
local existing = redis.call('GET', KEYS[2])
if existing then
  for i = 0, parts - 1 do redis.call('DEL', partKey(i)) end
  local space = string.find(existing, ' ', 1, true)
  local seq = tonumber(string.sub(existing, 1, space - 1))
  if string.sub(existing, space + 1) ~= ARGV[9] then return {-4, seq} end
  return {seq, 1, 1}
end
local s = redis.call('HMGET', KEYS[1], 'enqueuedSeq', 'committedSeq', 'pendingBatches', 'pendingBytes',
  'epoch', 'runId', 'epochs')
local enqueued = tonumber(s[1] or '0')
local committed = tonumber(s[2] or '0')
local pendingBatches = tonumber(s[3] or '0')
local pendingBytes = tonumber(s[4] or '0')
local bytes = tonumber(ARGV[4])
local maxBatches = tonumber(ARGV[6])
local maxBytes = tonumber(ARGV[7])
if maxBatches > 0 and pendingBatches >= maxBatches then return {-1, pendingBatches} end
-- One batch larger than the byte bound still goes in when nothing else is pending.
if maxBytes > 0 and pendingBatches > 0 and pendingBytes + bytes > maxBytes then return {-2, pendingBytes} end
if ARGV[11] ~= '' then redis.call('SET', partKey(0), ARGV[11]) end
for i = 0, parts - 1 do
  if redis.call('EXISTS', partKey(i)) == 0 then return {-3, i} end
end
local runId = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local epoch = s[5]
if not s[5] or s[6] ~= runId then
  -- New to this Redis process: start an epoch. Numbering continues above anything this Redis
  -- remembers, committed or enqueued (a worker may have raised committedSeq from PostgreSQL).
  local epochs = s[7] and cjson.decode(s[7]) or {}
  local from = math.max(enqueued, committed)
  table.insert(epochs, {ARGV[10], from})
  enqueued = from
  epoch = ARGV[10]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'runId', runId, 'epochs', cjson.encode(epochs))
end
for i = 0, parts - 1 do redis.call('PERSIST', partKey(i)) end
local seq = enqueued + 1
redis.call('HSET', KEYS[1], 'enqueuedSeq', seq, 'pendingBatches', pendingBatches + 1,
  'pendingBytes', pendingBytes + bytes, 'lastHighWatermark', ARGV[5])
-- The header carries its epoch: a worker holding an older view of the stream can tell a batch of
-- a later epoch that reuses a seq from the one it meant. Spliced in as text (ARGV[1] is a JSON
-- object): a cjson round trip would round its numbers.
redis.call('SET', base .. 'batch:' .. seq, '{"epoch":' .. cjson.encode(epoch) .. ',' .. string.sub(ARGV[1], 2))
redis.call('SET', KEYS[2], seq .. ' ' .. ARGV[9], 'EX', tonumber(ARGV[8]))
-- kick: 1 when the caller must wake a worker. kickPending says a kick was sent and no drain
-- has started since (a drain clears it before it reads the stream): that drain, or the kick's,
-- will see this batch, so a burst of appends sends one kick, not one each.
return {seq, 0, redis.call('HSETNX', KEYS[1], 'kickPending', 1)}
`;

/**
 * -- mark-committed
 * Mirrors a PostgreSQL commit into Redis and frees the batches it covers. Self-healing: if a
 * worker died between COMMIT and this script, the next call also frees the batches it missed.
 * Epoch-aware, since a commit can be reported late (a worker's stale view, a command resent after
 * Redis restarted): a commit of an epoch this Redis does not know changes nothing (none of its
 * batches is here); a commit of an earlier epoch frees and mirrors nothing past that epoch's end.
 * If PostgreSQL committed a seq the current epoch never assigned (Redis lost writes), enqueuedSeq
 * is raised to it, so that the next batch gets a new number.
 * `allow-oom`: it mostly deletes, and must run when Redis is full, or workers could never free it.
 * KEYS: 1 state hash, 2 stream key base
 * ARGV: 1 committed seq, 2 its epoch, 3 high watermark JSON, 4 committed at (ms)
 * Returns the number of batches freed.
 */
export const MARK_COMMITTED = `#!lua flags=allow-oom
local seq = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'committedSeq', 'enqueuedSeq', 'epochs')
local epochs = s[3] and cjson.decode(s[3]) or {}
local index = nil
for i, e in ipairs(epochs) do
  if e[1] == ARGV[2] then index = i break end
end
if #epochs > 0 and index == nil then return 0 end
local current = index == nil or index == #epochs
if not current then seq = math.min(seq, tonumber(epochs[index + 1][2])) end
local previous = tonumber(s[1] or '0')
if seq <= previous then return 0 end
local freedBatches = 0
local freedBytes = 0
for n = previous + 1, seq do
  local headerKey = KEYS[2] .. 'batch:' .. n
  local header = redis.call('GET', headerKey)
  if header then
    local h = cjson.decode(header)
    freedBatches = freedBatches + 1
    freedBytes = freedBytes + (h.bytes or 0)
    for i = 0, (h.parts or 0) - 1 do redis.call('DEL', KEYS[2] .. 'part:' .. h.uploadId .. ':' .. i) end
    redis.call('DEL', headerKey)
  end
end
redis.call('HSET', KEYS[1], 'committedSeq', seq, 'committedEpoch', ARGV[2],
  'committedHighWatermark', ARGV[3], 'committedAt', ARGV[4])
redis.call('HDEL', KEYS[1], 'lastError', 'lastErrorAt')
if current and tonumber(s[2] or '0') < seq then redis.call('HSET', KEYS[1], 'enqueuedSeq', seq) end
redis.call('HINCRBY', KEYS[1], 'pendingBatches', -freedBatches)
redis.call('HINCRBY', KEYS[1], 'pendingBytes', -freedBytes)
-- Epochs before the committed one are done with: keep the list short.
if index ~= nil and index > 1 then
  local kept = {}
  for j = index, #epochs do table.insert(kept, epochs[j]) end
  redis.call('HSET', KEYS[1], 'epochs', cjson.encode(kept))
end
return freedBatches
`;

/**
 * -- set-blocked
 * Parks a stream at a batch, once: false if it was blocked already (two workers parking the same
 * batch at once). `allow-oom`: a stream must be able to say why it stopped when Redis is full.
 * KEYS: 1 state hash. ARGV: 1 seq, 2 reason, 3 at (ms). Returns 1 when it blocked the stream.
 */
export const SET_BLOCKED = `#!lua flags=allow-oom
if redis.call('HSETNX', KEYS[1], 'blockedSeq', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'blockedReason', ARGV[2], 'blockedAt', ARGV[3])
return 1
`;
