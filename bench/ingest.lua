-- wrk script for durable ingest: POST /webhooks/contacts with pre-signed events.
-- usage: wrk ... -s bench/ingest.lua URL -- REQUESTS_FILE NTHREADS
-- Thread t of n takes every n-th line (from line t), so no two threads send the same event.
-- If a thread runs out it starts over (counted as `wrapped`: those get 200 "duplicate").
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
require("status")
expected_status = 202

local reqs, idx, count = {}, 0, 0

function init(args)
   local file, nthreads = args[1], tonumber(args[2])
   local i = 0
   for line in io.lines(file) do
      if i % nthreads == tid then
         local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
         count = count + 1
         reqs[count] = wrk.format("POST", "/webhooks/contacts", {
            ["Content-Type"] = "application/json",
            ["webhook-id"] = id,
            ["webhook-timestamp"] = ts,
            ["webhook-signature"] = sig,
         }, body)
      end
      i = i + 1
   end
end

function request()
   idx = idx + 1
   if idx > count then
      idx = 1
      wrapped = wrapped + 1
   end
   return reqs[idx]
end
