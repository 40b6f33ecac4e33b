-- wrk script: POST new readings (never duplicates) to the ingest API.
-- Environment: BENCH_KEY (device key), BENCH_BATCH (readings per request, 1 = one object),
-- BENCH_DEVICES (distinct devices per thread), BENCH_START (epoch seconds of the first minute).
local key = os.getenv("BENCH_KEY")
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local devices = tonumber(os.getenv("BENCH_DEVICES") or "5000")
local start = tonumber(os.getenv("BENCH_START") or "1767225600")
local threads = {}
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local function reading(n)
  local device = n % devices
  local minute = math.floor(n / devices)
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", start + minute * 60)
  if device % 2 == 0 then
    return string.format('{"meterId":"BM-%d-%d","kwhConsumedAc":%.3f,"voltage":230.5,"timestamp":"%s"}',
      thread_id, device, 0.1 + (n % 7) * 0.01, ts)
  end
  return string.format('{"vehicleId":"BV-%d-%d","soc":%.1f,"kwhDeliveredDc":%.3f,"batteryTemp":31.5,"timestamp":"%s"}',
    thread_id, device, 20 + (n % 70), 0.09 + (n % 7) * 0.01, ts)
end

function request()
  local body
  if batch == 1 then
    body = reading(counter)
    counter = counter + 1
  else
    local parts = {}
    for i = 1, batch do
      parts[i] = reading(counter)
      counter = counter + 1
    end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Api-Key " .. key}, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d rps=%.1f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6)))
end
