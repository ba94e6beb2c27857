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
source scripts/lib/bench.sh
bench_init
bench_on_exit "psql -q '$pg/postgres' -c 'DROP DATABASE IF EXISTS $db' >/dev/null 2>&1"
psql -q "$pg/postgres" -c "CREATE DATABASE $db" >/dev/null
bench_nats
port=$nats_port

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
    eval "node$i=\$(bench_start node$i \"\$work/node$i.toml\")"
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
