-- wrk script: GET paths picked at random from BENCH_PATHS_FILE (one path per line), with
-- `Authorization: Token BENCH_TOKEN`. Prints one summary line the harness parses.
local token = os.getenv("BENCH_TOKEN")
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS_FILE")) do
  if #line > 0 then table.insert(paths, line) end
end

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
end

function request()
  local path = paths[math.random(#paths)]
  return wrk.format("GET", path, {["Authorization"] = "Token " .. token})
end

local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d rps=%.1f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6)))
end
