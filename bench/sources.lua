-- wrk script for the CRM webhooks (part `sources`): replays pre-generated requests.
-- usage: wrk ... -s bench/sources.lua URL -- REQUESTS_FILE NTHREADS
-- One request per line (written by bench/bench.py), tab-separated: path, headers as "Name: value",
-- the body last. Thread t of n takes every n-th line (from line t), so no two threads send the
-- same request. If a thread runs out it starts over: every request sent again is counted in
-- `wrapped` (those are answered as duplicates: 200, nothing stored).
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
require("status")
expected_status = 200

local reqs, idx, count, first_pass = {}, 0, 0, true

function init(args)
   local file, nthreads = args[1], tonumber(args[2])
   local i = 0
   for line in io.lines(file) do
      if i % nthreads == tid then
         local fields = {}
         for field in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = field end
         assert(#fields >= 2, "a request line needs at least a path and a body: " .. file)
         local headers = {}
         for h = 2, #fields - 1 do
            local name, value = fields[h]:match("^([^:]+):%s*(.*)$")
            assert(name, "not a 'Name: value' header: " .. fields[h])
            headers[name] = value
         end
         count = count + 1
         reqs[count] = wrk.format("POST", fields[1], headers, fields[#fields])
      end
      i = i + 1
   end
   assert(count > 0, "no requests for thread " .. tid .. " in " .. file)
end

function request()
   idx = idx + 1
   if idx > count then
      idx = 1
      first_pass = false
   end
   if not first_pass then wrapped = wrapped + 1 end
   return reqs[idx]
end
