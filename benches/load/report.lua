-- Shared done(): one JSON line with throughput, latency percentiles (ms) and
-- errors (connect/read/write/timeout and non-2xx answers).
function report(summary, latency, extra)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local out = string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d,"non_2xx":%d%s}',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.timeout, e.status, extra or "")
  io.write(out .. "\n")
end
