#!/bin/bash
# Kafka-mode catch-up throughput: 200,000 JSON records pre-loaded into a
# 2-partition topic, then a CREATE TABLE ... AS SELECT reading from the
# earliest offset; prints wall time and the server's CPU time until the
# query has read every record.
#
# usage: tests/scripts/kafka_catchup.sh BROKER [rill args...]
#   BROKER   a Kafka-protocol broker with an admin API (e.g. Tansu)
#   RILL     the rill binary (default target/release/rill)
#   COMMAND_TOPIC  rill's command topic (default: one per run; empty turns
#            the command and state topics off)
# Needs psql and python3 with confluent_kafka (as .ci/run installs).
set -euo pipefail
BROKER=$1; shift
RILL=${RILL:-target/release/rill}
N=200000
RUN=r$RANDOM
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$RILL" --listen 127.0.0.1:$PORT --data-dir "$DATA" --kafka-brokers "$BROKER" \
  --kafka-command-topic="${COMMAND_TOPIC-_rill_commands_$RUN}" "$@" > "$DATA.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.2
done
SQL="psql -X -h 127.0.0.1 -p $PORT -U rill -d rill -qAt"
$SQL -c "CREATE STREAM bids_$RUN (k VARCHAR KEY, auction INT, price INT, ts BIGINT) \
  WITH (kafka_topic='bids_$RUN', partitions=2, timestamp='ts');" > /dev/null
python3 "$(dirname "$0")/produce_json.py" "$BROKER" "bids_$RUN" $N
TICK=$(getconf CLK_TCK)
T0=$(date +%s.%N); C0=$(awk '{print $14+$15}' /proc/$PID/stat)
$SQL -c "SET 'auto.offset.reset'='earliest';" -c "CREATE TABLE agg_$RUN AS \
  SELECT auction, COUNT(*) AS n, MAX(price) AS mx FROM bids_$RUN GROUP BY auction;" > /dev/null
SINK=$(echo "AGG_$RUN" | tr a-z A-Z)
until [ "$($SQL -c 'SHOW QUERIES;' | awk -F'|' -v s="$SINK" '$5==s {print $6}')" = "$N" ]; do
  sleep 0.05
done
T1=$(date +%s.%N); C1=$(awk '{print $14+$15}' /proc/$PID/stat)
python3 -c "w=$T1-$T0; c=($C1-$C0)/$TICK; print(f'$N records caught up in {w:.2f} s wall, {c:.2f} CPU-s, {$N/c/1000:.0f}K records/CPU-s')"
