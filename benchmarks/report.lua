-- Shared by the fc-wsgi wrk scripts (loaded with dofile). wrk alone only says "Non-2xx or 3xx
-- responses", which cannot tell a 202 from a 200, nor a stack that stopped authenticating from
-- one that works: so every thread counts each status, and done() prints one line,
--   FCBENCH {"requests":..,"duration_us":..,"p50_us":..,"p99_us":..,"statuses":{"200":n},..}
-- that `python -m benchmarks` parses and checks. FCBENCH_HEADERS adds request headers, one
-- "Name: value" per line.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'FCBENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    table.concat(parts, ","), e.connect, e.read, e.write, e.status, e.timeout))
end

-- Returns the value of an environment variable the runner must set.
function required_env(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    error(name .. " is not set: run this script through `python -m benchmarks`")
  end
  return value
end

for line in (os.getenv("FCBENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end
