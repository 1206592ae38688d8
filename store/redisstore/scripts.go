package redisstore

import "github.com/redis/go-redis/v9"

// Every change that touches more than one key is one of these scripts.
// Each touches the keys of one job only (all in KEYS, one hash tag), so it
// runs on Redis Cluster. Each issues a constant number of redis.call()s
// per batch, never one per task: multi-field HSET/HMGET/HDEL, LPOP with a
// count, RPUSH of many. Lua's unpack has a limit of a few thousand values,
// so the Go side never sends more than batchMax tasks to one call, and
// createJob loops in chunks.

// batchMax bounds the tasks one script call handles.
const batchMax = 1000

// Task state is kept in the lease hash: "token|worker" while leased,
// "=worker" once that worker's result was accepted, "failed" for the task
// that failed its job, no field while pending. Counters in the job hash (pend, run, ok,
// bad) change in the same script as the lease hash, so they always add up
// to total.

// createJob: KEYS job, in, pending. ARGV nfields, field pairs..., inputs...
// Returns 1, or 0 when a job with that id exists.
var createJob = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local nf = tonumber(ARGV[1])
local fields = {}
for i = 2, 1 + 2 * nf do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local first = 2 + 2 * nf
local n = #ARGV - first + 1
local i = 0
while i < n do
  local kv, idx = {}, {}
  local j = i
  while j < n and j < i + 500 do
    kv[#kv + 1] = j
    kv[#kv + 1] = ARGV[first + j]
    idx[#idx + 1] = j
    j = j + 1
  end
  redis.call('HSET', KEYS[2], unpack(kv))
  redis.call('RPUSH', KEYS[3], unpack(idx))
  i = j
end
return 1
`)

// claim: KEYS job, in, pending, lease, tok, ws, then one :w: set per pair.
// ARGV now_ns, then pairs worker, n.
// Returns {status, kind, timeout_ns, then per lease: pair, idx, token, input}.
// status: k ≥ 0 leased, -1 missing job, -2 drained (final: no task can
// become pending again), -3 every task succeeded and the job awaits
// FinishJob (it stays in ready, where UnfinishedJobs looks for it).
var claim = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'pend', 'run', 'kind', 'tmo')
local state = h[1]
if not state then return {-1} end
if state ~= 'queued' and state ~= 'running' then return {-2} end
local pend, run = tonumber(h[2]), tonumber(h[3])
local np = (#ARGV - 1) / 2
local want = 0
for i = 1, np do want = want + tonumber(ARGV[2 * i + 1]) end
if want > pend then want = pend end
if want <= 0 then
  if pend == 0 and run == 0 then return {-3} end
  return {0, h[4], h[5]}
end
local idx = redis.call('LPOP', KEYS[3], want)
if not idx then return {0, h[4], h[5]} end
local k = #idx
local toks = redis.call('HMGET', KEYS[5], unpack(idx))
local ins = redis.call('HMGET', KEYS[2], unpack(idx))
local tokargs, leaseargs, wids = {}, {}, {}
local out = {k, h[4], h[5]}
local pos = 1
for i = 1, np do
  local wid = ARGV[2 * i]
  local n = tonumber(ARGV[2 * i + 1])
  local members = {}
  while n > 0 and pos <= k do
    local t = (tonumber(toks[pos]) or 0) + 1
    tokargs[#tokargs + 1] = idx[pos]
    tokargs[#tokargs + 1] = t
    leaseargs[#leaseargs + 1] = idx[pos]
    leaseargs[#leaseargs + 1] = t .. '|' .. wid
    members[#members + 1] = idx[pos]
    out[#out + 1] = i
    out[#out + 1] = idx[pos]
    out[#out + 1] = t
    out[#out + 1] = ins[pos] or ''
    pos = pos + 1
    n = n - 1
  end
  if #members > 0 then
    redis.call('SADD', KEYS[6 + i], unpack(members))
    wids[#wids + 1] = wid
  end
end
redis.call('HSET', KEYS[5], unpack(tokargs))
redis.call('HSET', KEYS[4], unpack(leaseargs))
redis.call('SADD', KEYS[6], unpack(wids))
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'pend', pend - k, 'run', run + k, 'state', 'running', 'sat', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'pend', pend - k, 'run', run + k)
end
return out
`)

// leaseLua is shared Lua. is_done tells an accepted task's lease value
// ("=worker") from a live lease, a failure and a missing field (false).
// void_leases drops every running lease of a final job (its results become
// stale) and counts those tasks pending again.
const leaseLua = `
local function is_done(v)
  return type(v) == 'string' and string.byte(v, 1) == 61
end
local function void_leases(leasekey)
  local all = redis.call('HGETALL', leasekey)
  local drop = {}
  for i = 1, #all, 2 do
    local v = all[i + 1]
    if not is_done(v) and v ~= 'failed' then drop[#drop + 1] = all[i] end
  end
  local i = 1
  while i <= #drop do
    local chunk = {}
    for j = i, math.min(i + 999, #drop) do chunk[#chunk + 1] = drop[j] end
    redis.call('HDEL', leasekey, unpack(chunk))
    i = i + 1000
  end
  return #drop
end
`

// complete: KEYS job, pending, lease, fail, err, out. ARGV now_ns,
// nworkers, workers..., then per result: idx, worker number (1-based),
// token, is_error ("0"/"1"), output or error message.
// Returns {status, done, final, outcome per result}; status -1: missing
// job. done is 1 only on the transition to every task succeeded; final is
// 1 when the job is final after the call. Outcome numbers are
// store.Outcome values.
//
// A finished lease stays a member of its worker's :w: set: release skips
// members whose lease is no longer that worker's, so removing them here
// would cost one SREM per worker per batch (0.12 Redis commands per task
// in the throughput benchmark) to save a little memory until the job is
// deleted.
var complete = redis.NewScript(leaseLua + `
local h = redis.call('HMGET', KEYS[1], 'state', 'pend', 'run', 'ok', 'bad', 'max', 'total')
local state = h[1]
if not state then return {-1} end
local pend, run, ok, bad = tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
local max, total = tonumber(h[6]), tonumber(h[7])
local final = state ~= 'queued' and state ~= 'running'
local nw = tonumber(ARGV[2])
local base = 3 + nw
local n = (#ARGV - base + 1) / 5
local idxs, errpos = {}, {}
for i = 1, n do
  idxs[i] = ARGV[base + (i - 1) * 5]
  if ARGV[base + (i - 1) * 5 + 3] == '1' then errpos[#errpos + 1] = i end
end
local leases = redis.call('HMGET', KEYS[3], unpack(idxs))
local fails = {}
if #errpos > 0 and not final then
  local e = {}
  for j, i in ipairs(errpos) do e[j] = idxs[i] end
  local f = redis.call('HMGET', KEYS[4], unpack(e))
  for j, i in ipairs(errpos) do fails[i] = tonumber(f[j]) or 0 end
end
local cur = {}
local codes = {}
local leaseset, outset, hdel, failset, errset, requeue = {}, {}, {}, {}, {}, {}
local accepted, retried = 0, 0
local failmsg = nil
for i = 1, n do
  local o = base + (i - 1) * 5
  local idx = idxs[i]
  local wi = tonumber(ARGV[o + 1])
  local wid = ARGV[2 + wi]
  local v = cur[idx]
  if v == nil then v = leases[i] end
  if is_done(v) then
    codes[i] = 2
  elseif final or failmsg or v ~= (ARGV[o + 2] .. '|' .. wid) then
    codes[i] = 1
  elseif ARGV[o + 3] == '0' then
    codes[i] = 0
    accepted = accepted + 1
    cur[idx] = '=' .. wid
    leaseset[#leaseset + 1] = idx
    leaseset[#leaseset + 1] = cur[idx]
    outset[#outset + 1] = idx
    outset[#outset + 1] = ARGV[o + 4]
  else
    local f = fails[i] + 1
    failset[#failset + 1] = idx
    failset[#failset + 1] = f
    errset[#errset + 1] = idx
    errset[#errset + 1] = ARGV[o + 4]
    if f >= max then
      codes[i] = 4
      cur[idx] = 'failed'
      leaseset[#leaseset + 1] = idx
      leaseset[#leaseset + 1] = 'failed'
      failmsg = 'task ' .. idx .. ': ' .. ARGV[o + 4]
    else
      codes[i] = 3
      retried = retried + 1
      cur[idx] = false
      hdel[#hdel + 1] = idx
      requeue[#requeue + 1] = idx
    end
  end
end
if #leaseset > 0 then redis.call('HSET', KEYS[3], unpack(leaseset)) end
if #outset > 0 then redis.call('HSET', KEYS[6], unpack(outset)) end
if #hdel > 0 then redis.call('HDEL', KEYS[3], unpack(hdel)) end
if #failset > 0 then
  redis.call('HSET', KEYS[4], unpack(failset))
  redis.call('HSET', KEYS[5], unpack(errset))
end
if #requeue > 0 then redis.call('RPUSH', KEYS[2], unpack(requeue)) end
run = run - accepted - retried
pend = pend + retried
local was = ok
ok = ok + accepted
local done, is_final = 0, 0
if failmsg then
  run = run - 1
  bad = bad + 1
  local voided = void_leases(KEYS[3])
  run = run - voided
  pend = pend + voided
  redis.call('HSET', KEYS[1], 'pend', pend, 'run', run, 'ok', ok, 'bad', bad,
    'state', 'failed', 'err', failmsg, 'fat', ARGV[1])
  is_final = 1
elseif accepted > 0 or retried > 0 then
  redis.call('HSET', KEYS[1], 'pend', pend, 'run', run, 'ok', ok)
end
if not final and not failmsg and was < total and ok == total then done = 1 end
if final then is_final = 1 end
local out = {0, done, is_final}
for i = 1, n do out[#out + 1] = codes[i] end
return out
`)

// release: KEYS job, pending, lease, :w: set of the worker. ARGV worker.
// Puts the worker's leases in this job back at the head of pending (no
// attempt counted) and returns how many. A lease is released only if it
// is still that worker's, so two coordinators may release at once.
var release = redis.NewScript(`
local idxs = redis.call('SMEMBERS', KEYS[4])
if #idxs == 0 then return 0 end
redis.call('DEL', KEYS[4])
local h = redis.call('HMGET', KEYS[1], 'state', 'pend', 'run')
if not h[1] or (h[1] ~= 'queued' and h[1] ~= 'running') then return 0 end
local total = 0
local i = 1
local suffix = '|' .. ARGV[1]
while i <= #idxs do
  local chunk = {}
  for j = i, math.min(i + 999, #idxs) do chunk[#chunk + 1] = idxs[j] end
  local leases = redis.call('HMGET', KEYS[3], unpack(chunk))
  local mine = {}
  for j = 1, #chunk do
    local v = leases[j]
    if v and string.sub(v, -#suffix) == suffix and string.find(v, '|', 1, true) == #v - #suffix + 1 then
      mine[#mine + 1] = chunk[j]
    end
  end
  if #mine > 0 then
    redis.call('HDEL', KEYS[3], unpack(mine))
    redis.call('LPUSH', KEYS[2], unpack(mine))
    total = total + #mine
  end
  i = i + 1000
end
if total > 0 then
  redis.call('HSET', KEYS[1], 'pend', tonumber(h[2]) + total, 'run', tonumber(h[3]) - total)
end
return total
`)

// cancel: KEYS job, lease. ARGV now_ns.
// Returns 0 cancelled, -1 missing, -2 already final.
var cancel = redis.NewScript(leaseLua + `
local h = redis.call('HMGET', KEYS[1], 'state', 'pend', 'run')
if not h[1] then return -1 end
if h[1] ~= 'queued' and h[1] ~= 'running' then return -2 end
local voided = void_leases(KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'fat', ARGV[1],
  'pend', tonumber(h[2]) + voided, 'run', tonumber(h[3]) - voided)
return 0
`)

// finish: KEYS job, result. ARGV now_ns, result, error message.
// Returns 0 finished, -1 missing, -2 already final (no-op), -3 not every
// task succeeded.
var finish = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'ok', 'total')
if not h[1] then return -1 end
if h[1] ~= 'queued' and h[1] ~= 'running' then return -2 end
if tonumber(h[2]) ~= tonumber(h[3]) then return -3 end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'err', ARGV[3], 'fat', ARGV[1])
else
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('HSET', KEYS[1], 'state', 'succeeded', 'res', '1', 'fat', ARGV[1])
end
return 0
`)

// deleteJob: KEYS every key of the job, then its :w: sets. Deletes only a
// final job. Returns its idempotency key ("" when none), -1 when the job
// is not final, or nil when it is missing.
var deleteJob = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'idem')
if not h[1] then return false end
if h[1] == 'queued' or h[1] == 'running' then return -1 end
redis.call('DEL', unpack(KEYS))
return h[2] or ''
`)

// delIfEquals: KEYS a key. ARGV value. Deletes the key only if it holds
// value (an idempotency key still pointing at our job).
var delIfEquals = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// forgetCoord: KEYS coords, the coordinator's workers hash. ARGV
// coordinator, now_ms. Forgets a coordinator only if its lease is still
// expired (it may have renewed while we released its tabs).
var forgetCoord = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
`)

var allScripts = []*redis.Script{createJob, claim, complete, release, cancel, finish, deleteJob, delIfEquals, forgetCoord}
