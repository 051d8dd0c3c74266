-- wrk script for bench/run: prints the run's figures as one JSON line ("BENCH_JSON {...}") from
-- the done() hook, with latency percentiles from wrk's own histogram (microseconds).
--
-- Paced mode: with BENCH_PACE_PERIOD_MS set (a number of milliseconds, fractions allowed), each
-- connection waits a random delay, uniform in [0, 2 x period] (mean: the period), before each
-- request, so that C connections send about C / period requests per millisecond in total,
-- spread out instead of in lock-step. wrk measures latency from the moment a request is sent, so
-- the delay is not counted in it.

local period_ms = tonumber(os.getenv("BENCH_PACE_PERIOD_MS") or "")
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("thread_no", threads)
end

function init(_args)
   -- Each thread has its own Lua state; give each its own random sequence.
   math.randomseed(7919 * (thread_no or 0) + 1)
end

if period_ms and period_ms > 0 then
   function delay()
      return math.floor(math.random() * 2 * period_ms + 0.5)
   end
end

function done(summary, latency, _requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d},"paced_period_ms":%s}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
      latency.mean, latency.max, period_ms and string.format("%.3f", period_ms) or "null"))
end
