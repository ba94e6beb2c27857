#!/usr/bin/env bash
# One meeting on one node and spread over three nodes, in one run (docs/benchmarks.md,
# "meetings on several nodes").
#
#   bash scripts/bench-meetings-cluster.sh [MEMBERS] [MESSAGES] [RATE]
#
# Starts its own nats-server (JetStream, dynamic port, scratch directory), creates a fresh
# PostgreSQL database on 127.0.0.1:5432 (trust auth; SWITCHBOARD_BENCH_PG overrides the server
# URL without a database), three clustered nodes of the release build on loopback ports, then
# runs `switchboard-bench meeting` twice with the same numbers: every member on node 1 (all
# local to the meeting's owner) and members round-robin over the three nodes (two thirds of
# them remote to the owner). Everything it starts is stopped, and the database dropped, on exit.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

members="${1:-60}"
messages="${2:-20}"
rate="${3:-0}"
pg="${SWITCHBOARD_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
db="switchboard_bench_$$"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p switchboard -p switchboard-bench
bin=target/release/switchboard
bench=target/release/switchboard-bench
nats="$(command -v nats-server || echo /usr/sbin/nats-server)"
psql -q "$pg/postgres" -c "CREATE DATABASE $db" >/dev/null

"$nats" -a 127.0.0.1 -p -1 -js -sd "$work/js" >"$work/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    port="$(grep -o 'client connections on 127.0.0.1:[0-9]*' "$work/nats.log" | grep -o '[0-9]*$' || true)"
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "nats-server did not start"; cat "$work/nats.log"; exit 1; }

# start NAME CONFIG: runs a node, prints its address once it listens.
start() {
    local name=$1 config=$2
    env -u SWITCHBOARD_CONFIG "$bin" serve --config "$config" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    echo $! >"$work/$name.pid"
    for _ in $(seq 200); do
        addr="$(grep -o 'listening on http://[0-9.:]*' "$work/$name.out" | head -1 | sed 's#.*http://##' || true)"
        [ -n "$addr" ] && { echo "$addr"; return; }
        sleep 0.05
    done
    echo "node $name did not start" >&2; cat "$work/$name.err" >&2; exit 1
}

for i in 1 2 3; do
    cat >"$work/node$i.toml" <<TOML
[server]
listen = ["127.0.0.1:0"]
[ops]
enabled = false
[console]
enabled = false
[rtc]
enabled = false
[pairing]
enabled = false
[pubsub]
enabled = false
[store]
url = "$pg/$db"
[log]
level = "warn"
[cluster]
nats_url = "nats://127.0.0.1:$port"
node_name = "bench$i"
subject_prefix = "bench"
TOML
    eval "node$i=\$(start node$i \"\$work/node$i.toml\")"
done
sleep 2 # the three nodes hear each other's heartbeats

run() {
    echo "==== $1"
    shift
    "$bench" meeting --url "ws://$node1/" --members "$members" --messages "$messages" --rate "$rate" "$@"
}
run "every member on node 1 (the owner)" --member-url "ws://$node1/"
run "members round-robin over nodes 1-3" \
    --member-url "ws://$node1/" --member-url "ws://$node2/" --member-url "ws://$node3/"
