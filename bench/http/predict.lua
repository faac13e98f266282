-- wrk script of bench/http/run.sh: POSTs one Iris row as JSON on every request and checks every
-- answer (status 200 and a body holding the expected prediction), so the benchmark verifies what
-- it measures. Arguments after `--`: the text every body must contain (default
-- "prediction":"setosa"; the class names alone appear in every answer, in "probabilities"), and
-- optionally a file holding the request body to send instead of the one row.
--
-- Each wrk thread runs this file in its own Lua state; setup() keeps the thread handles so that
-- done() can add up the per-thread counters. done() prints one machine-readable line,
-- "vgbench key=value ...", that run.sh parses (latencies in microseconds).

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

wrk.method = "POST"
wrk.body = '{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}'
wrk.headers["Content-Type"] = "application/json"

expected = '"prediction":"setosa"'
responses = 0
non_200 = 0
wrong_body = 0

function init(args)
    if args[1] ~= nil and args[1] ~= "" then
        expected = args[1]
    end
    -- A second argument names a file whose contents replace the body (quality_cost.sh --rows).
    if args[2] ~= nil and args[2] ~= "" then
        local f = assert(io.open(args[2], "rb"))
        wrk.body = f:read("*a")
        f:close()
    end
end

function response(status, headers, body)
    responses = responses + 1
    if status ~= 200 then
        non_200 = non_200 + 1
    elseif body == nil or not string.find(body, expected, 1, true) then
        wrong_body = wrong_body + 1
    end
end

function done(summary, latency, requests)
    local seen, bad_status, bad_body = 0, 0, 0
    for _, t in ipairs(threads) do
        seen = seen + t:get("responses")
        bad_status = bad_status + t:get("non_200")
        bad_body = bad_body + t:get("wrong_body")
    end
    local e = summary.errors
    local seconds = summary.duration / 1e6
    io.write(string.format(
        "vgbench requests=%d seconds=%.3f rps=%.1f bytes=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f " ..
        "max_us=%.1f responses=%d non_200=%d wrong_body=%d err_connect=%d err_read=%d " ..
        "err_write=%d err_timeout=%d err_status=%d\n",
        summary.requests, seconds, summary.requests / seconds, summary.bytes,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        seen, bad_status, bad_body, e.connect, e.read, e.write, e.timeout, e.status))
end
