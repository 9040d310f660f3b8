-- wrk script for the HTTP ceiling: GET /hello, counting non-200 responses (same response()
-- bookkeeping as ingest.lua so the client does the same work per response).
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
require("status")
expected_status = 200
