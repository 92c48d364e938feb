/**
 * The Lua scripts that make enqueueing atomic. Each runs as one Redis command: nothing else
 * happens in Redis while it runs, so a stream's sequence can never get a gap or a duplicate.
 *
 * Key layout (prefix `p`, stream `s`, both configurable/free text):
 *   p:streams                 SET of stream names
 *   p:stream:s                HASH enqueuedSeq, committedSeq (mirror of PostgreSQL), pendingBytes,
 *                             lastHighWatermark, committedHighWatermark, committedAt,
 *                             blockedSeq, blockedReason, blockedAt
 *   p:stream:s:batch:<seq>    STRING the batch header (JSON: batchId, tables, highWatermark, ...)
 *   p:batchid:s:<batchId>     STRING seq, with a TTL: a retried enqueue finds its seq here
 *   p:part:<batchId>:<i>      STRING part i of the rows (JSON array of wire rows)
 */

/**
 * -- append-batch
 * KEYS: 1 stream hash, 2 batchid key, 3 streams set
 * ARGV: 1 stream, 2 batchId, 3 header JSON, 4 part count, 5 bytes, 6 high watermark JSON,
 *       7 max pending batches (0 = no bound), 8 max pending bytes (0 = no bound),
 *       9 batchId TTL seconds, 10 key prefix
 * Returns {seq, 0} when appended, {seq, 1} when this batchId was appended before (a retry),
 *   {-1, pending batches} / {-2, pending bytes} when over the backpressure bound,
 *   {-3, part index} when a part is missing (expired: the producer was too slow).
 */
export const APPEND_BATCH = `
local existing = redis.call('GET', KEYS[2])
local prefix = ARGV[10]
local parts = tonumber(ARGV[4])
local partKey = function(i) return prefix .. ':part:' .. ARGV[2] .. ':' .. i end
if existing then
  -- A retry re-uploaded the parts with a TTL: keep them if the batch is still pending (the
  -- first upload may have been overwritten), drop them if it was committed and freed already.
  local pending = tonumber(existing) > tonumber(redis.call('HGET', KEYS[1], 'committedSeq') or '0')
  for i = 0, parts - 1 do
    if pending then redis.call('PERSIST', partKey(i)) else redis.call('DEL', partKey(i)) end
  end
  return {tonumber(existing), 1}
end
local enqueued = tonumber(redis.call('HGET', KEYS[1], 'enqueuedSeq') or '0')
local committed = tonumber(redis.call('HGET', KEYS[1], 'committedSeq') or '0')
local pendingBytes = tonumber(redis.call('HGET', KEYS[1], 'pendingBytes') or '0')
local bytes = tonumber(ARGV[5])
local maxBatches = tonumber(ARGV[7])
local maxBytes = tonumber(ARGV[8])
if maxBatches > 0 and enqueued - committed >= maxBatches then return {-1, enqueued - committed} end
-- One batch larger than the byte bound still goes in when nothing else is pending.
if maxBytes > 0 and enqueued > committed and pendingBytes + bytes > maxBytes then return {-2, pendingBytes} end
for i = 0, parts - 1 do
  if redis.call('EXISTS', partKey(i)) == 0 then return {-3, i} end
end
for i = 0, parts - 1 do redis.call('PERSIST', partKey(i)) end
local seq = enqueued + 1
redis.call('HSET', KEYS[1], 'enqueuedSeq', seq, 'pendingBytes', pendingBytes + bytes, 'lastHighWatermark', ARGV[6])
redis.call('SET', prefix .. ':stream:' .. ARGV[1] .. ':batch:' .. seq, ARGV[3])
redis.call('SET', KEYS[2], seq, 'EX', tonumber(ARGV[9]))
redis.call('SADD', KEYS[3], ARGV[1])
return {seq, 0}
`;

/**
 * -- mark-committed
 * Mirrors a PostgreSQL commit into Redis and frees the batches it covers. Self-healing: if a
 * worker died between COMMIT and this script, the next call also frees the batches it missed.
 * KEYS: 1 stream hash
 * ARGV: 1 stream, 2 committed seq, 3 high watermark JSON, 4 committed at (ms), 5 key prefix
 * Returns the number of batches freed.
 */
export const MARK_COMMITTED = `
local seq = tonumber(ARGV[2])
local prefix = ARGV[5]
local previous = tonumber(redis.call('HGET', KEYS[1], 'committedSeq') or '0')
if seq <= previous then return 0 end
local freedBytes = 0
for s = previous + 1, seq do
  local headerKey = prefix .. ':stream:' .. ARGV[1] .. ':batch:' .. s
  local header = redis.call('GET', headerKey)
  if header then
    local h = cjson.decode(header)
    freedBytes = freedBytes + (h.bytes or 0)
    for i = 0, (h.parts or 0) - 1 do redis.call('DEL', prefix .. ':part:' .. h.batchId .. ':' .. i) end
    redis.call('DEL', headerKey)
  end
end
redis.call('HSET', KEYS[1], 'committedSeq', seq, 'committedHighWatermark', ARGV[3], 'committedAt', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'pendingBytes', -freedBytes)
return seq - previous
`;
