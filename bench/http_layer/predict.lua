-- wrk script for bench/http_layer/run.sh: POSTs one predict request whose body is about 9 KB,
-- the size of one 50x50 PNG patch base64-encoded, and prints one machine-readable line at the
-- end. KEEPALIVE=0 leaves out the Connection header (HTTP/1.1 is persistent by default).
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
math.randomseed(42)
local chars = {}
for i = 1, 9000 do
  local k = math.random(#alphabet)
  chars[i] = alphabet:sub(k, k)
end

wrk.method = "POST"
wrk.body = '{"instances": [{"b64": "' .. table.concat(chars) .. '"}]}'
wrk.headers["Content-Type"] = "application/json"
if os.getenv("KEEPALIVE") ~= "0" then
  wrk.headers["Connection"] = "keep-alive"
end

-- RESULT requests req/s p50_ms p99_ms non2xx connect read write timeout
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.1f %.3f %.3f %d %d %d %d %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.status, e.connect, e.read, e.write, e.timeout))
end
