-- Shared by hello.lua and ingest.lua: counts response statuses per thread and prints one
-- machine-readable line (prefixed "BENCH") from done(). Expects `expected_status` to be set.
threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

ok, other, wrapped = 0, 0, 0
other_codes = {}

function response(status, headers, body)
   if status == expected_status then
      ok = ok + 1
   else
      other = other + 1
      other_codes[tostring(status)] = (other_codes[tostring(status)] or 0) + 1
   end
end

function done(summary, latency, requests)
   local t_ok, t_other, t_wrapped, codes = 0, 0, 0, {}
   for _, thread in ipairs(threads) do
      t_ok = t_ok + thread:get("ok")
      t_other = t_other + thread:get("other")
      t_wrapped = t_wrapped + (thread:get("wrapped") or 0)
      for code, n in pairs(thread:get("other_codes")) do
         codes[code] = (codes[code] or 0) + n
      end
   end
   local code_list = {}
   for code, n in pairs(codes) do table.insert(code_list, code .. ":" .. n) end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
         .. "expected=%d other=%d other_codes=%s wrapped=%d sock_connect=%d sock_read=%d "
         .. "sock_write=%d sock_timeout=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      t_ok, t_other, (#code_list > 0) and table.concat(code_list, ",") or "-", t_wrapped,
      e.connect, e.read, e.write, e.timeout))
end
