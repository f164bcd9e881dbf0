#!/usr/bin/env bash
# Measures the HTTP layer alone, cpp-httplib 0.11 against Pistache 0.0.5 (both from Debian), for
# the choice in docs/serving.md. Both servers answer POST /v1/models/idc:predict with a fixed
# JSON body, THREADS threads each, on 127.0.0.1. wrk posts a ~9 KB body (one 50x50 PNG patch in
# base64) at 1, 8 and 32 connections for DURATION seconds each, then at 8 connections without a
# Connection header; a last test sends SIGTERM under load. About 2 minutes in all.
#   bench/http_layer/run.sh          (DURATION=10 THREADS=8 PORT=18480 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/http_layer
OUT=${HISTOCNN_BUILD_DIR:-build}/http_layer
DURATION=${DURATION:-10}
THREADS=${THREADS:-8}
PORT=${PORT:-18480}
URL=http://127.0.0.1:$PORT/v1/models/idc:predict

missing=()
for p in g++ pkg-config wrk curl libcpp-httplib-dev libpistache-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "http_layer: installing ${missing[*]}"
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

mkdir -p "$OUT"
echo "http_layer: building into $OUT"
g++ -O2 -std=c++17 "$HERE/httplib_server.cpp" -o "$OUT/httplib_server" \
  $(pkg-config --cflags --libs cpp-httplib) -pthread &
build_pid=$!
g++ -O2 -std=c++17 "$HERE/pistache_server.cpp" -o "$OUT/pistache_server" \
  $(pkg-config --cflags --libs libpistache) -pthread
wait "$build_pid"
version() { dpkg-query -W -f='${Version}' "$1"; }
echo "http_layer: cpp-httplib $(version libcpp-httplib-dev), Pistache $(version libpistache-dev)," \
  "wrk $(version wrk), $(nproc) cores, $THREADS server threads, ${DURATION}s per run," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

SERVER_PID=
SERVER_LOG=
# start NAME LOG [DELAY_MS]: starts a fresh server logging to $OUT/LOG and waits for its
# "listening on" line.
start() {
  SERVER_LOG=$OUT/$2
  "$OUT/$1_server" "$PORT" "$THREADS" "${3:-0}" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 50); do grep -q "listening on" "$SERVER_LOG" && return; sleep 0.1; done
  echo "http_layer: $1 did not start: $(cat "$SERVER_LOG")" >&2
  exit 1
}
# stop: SIGTERM, wait, and set STATS to the server's closing numbers
# "started answered client-ports single-answer-ports".
stop() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=
  STATS=$(sed -n 's/^requests: started \([0-9]*\), answered \([0-9]*\), client ports \([0-9]*\), single-answer ports \([0-9]*\)$/\1 \2 \3 \4/p' "$SERVER_LOG")
}
trap '[ -z "$SERVER_PID" ] || kill -TERM "$SERVER_PID" 2>/dev/null || true' EXIT

# wrk CLIENTS SECONDS [KEEPALIVE]: wrk with 2 threads (1 for 1 client); its last line is
# "RESULT requests req/s p50_ms p99_ms non2xx connect read write timeout" (see predict.lua).
run_wrk() {
  KEEPALIVE=${3:-1} wrk -t"$(($1 < 2 ? $1 : 2))" -c"$1" -d"$2"s --latency -s "$HERE/predict.lua" "$URL"
}

# Both servers must answer 200 with the fixed body before anything is timed.
for server in httplib pistache; do
  start "$server" "$server-check.log"
  reply=$(curl -s -w ' %{http_code}' -H 'Content-Type: application/json' \
    --data-binary '{"instances": [{"b64": "AAAA"}]}' "$URL")
  stop
  if [ "$reply" != '{"predictions": [[0.25, 0.75]]} 200' ]; then
    echo "http_layer: $server answered '$reply'" >&2
    exit 1
  fi
done

# row TABLE SERVER CLIENTS KEEPALIVE: one timed run against a fresh server, appended to the
# markdown table in variable TABLE. Errors are non-2xx responses plus socket errors. Stalled
# connections got no answer during the run: never answered, or answered once, after wrk had
# stopped (only meaningful with keep-alive, where a wrk connection keeps its port until the server
# closes it: httplib does after 100000 requests, and wrk reconnects from a new port).
declare -A RPS
row() {
  local -n tab=$1
  start "$2" "$2-c$3-ka$4.log"
  local r
  r=$(run_wrk "$3" "$DURATION" "$4" | grep '^RESULT')
  stop
  read -r _ n rps p50 p99 status conn rd wr to <<<"$r"
  read -r _ _ ports single <<<"$STATS"
  RPS[$2,$3,$4]=$rps
  local stalled=-
  [ "$4" = 1 ] && stalled=$((single + ($3 > ports ? $3 - ports : 0)))
  tab+=$'\n'$(printf '| %s | %s | %.0f | %.2f | %.2f | %d | %s |' "$2" "$3" "$rps" "$p50" "$p99" \
    $((status + conn + rd + wr + to)) "$stalled")
}

header=$'| server | clients | req/s | p50 ms | p99 ms | errors | stalled conns |\n| --- | --- | --- | --- | --- | --- | --- |'
# Runs alternate between the servers so that both see the same background load.
table=$header
close_table=$header
for c in 1 8 32; do
  for server in httplib pistache; do
    echo "http_layer: $server, $c clients"
    row table "$server" "$c" 1
  done
done
for server in httplib pistache; do
  echo "http_layer: $server, 8 clients, no Connection header"
  row close_table "$server" 8 0
done

# Graceful shutdown: each request takes 100 ms, so about 8 are in flight when SIGTERM arrives
# 2 s into a run at 8 clients. The server reports how many requests it started and answered;
# wrk is stopped as soon as the server has exited, and its read errors are connections that were
# closed with a request outstanding.
shutdown_table=$'| server | exit code | exit after SIGTERM ms | started | answered | wrk responses | wrk read errors |\n| --- | --- | --- | --- | --- | --- | --- |'
for server in httplib pistache; do
  echo "http_layer: $server, SIGTERM under load"
  start "$server" "$server-sigterm.log" 100
  run_wrk 8 10 >"$OUT/shutdown_wrk.txt" &
  wrk_pid=$!
  sleep 2
  t0=$(date +%s%N)
  kill -TERM "$SERVER_PID"
  for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.02; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" || true
    code="hung 2 s, killed"
  else
    wait "$SERVER_PID" && code=0 || code=$?
  fi
  ms=$((($(date +%s%N) - t0) / 1000000))
  SERVER_PID=
  kill -INT "$wrk_pid"
  wait "$wrk_pid" || true
  read -r started answered _ <<<"$(sed -n 's/^requests: started \([0-9]*\), answered \([0-9]*\).*/\1 \2/p' "$SERVER_LOG")"
  read -r _ n _ _ _ _ _ rd _ _ <<<"$(grep '^RESULT' "$OUT/shutdown_wrk.txt")"
  shutdown_table+=$'\n'"| $server | $code | $ms | ${started:-none} | ${answered:-none} | $n | $rd |"
done

echo
echo "Throughput, ~9 KB POST with 'Connection: keep-alive', $THREADS server threads, ${DURATION}s per run:"
echo
echo "$table"
echo
echo "| clients | pistache/httplib req/s |"
echo "| --- | --- |"
for c in 1 8 32; do
  awk -v c="$c" -v p="${RPS[pistache,$c,1]}" -v h="${RPS[httplib,$c,1]}" 'BEGIN {printf "| %s | %.2f |\n", c, p / h}'
done
echo
echo "8 clients without a Connection header (HTTP/1.1's default, as curl and Go's client send):"
echo
echo "$close_table"
echo
echo "Graceful shutdown: SIGTERM 2 s into a run at 8 clients, 100 ms per request:"
echo
echo "$shutdown_table"
