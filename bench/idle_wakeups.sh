#!/usr/bin/env bash
# An idle node's wake-ups and CPU: one silent connection, strace -c for 20 s, then CPU untraced.
# Usage: bench/idle_wakeups.sh [REDIS_URL] [PORT]   (needs strace; run from the repo root)
# docs/decisions/2026-11-performance-round-two.md (section 2) has the figures this printed before and after 8601eb2.
set -euo pipefail
redis_url=${1:-redis://127.0.0.1:6379/7}
port=${2:-8711}
python=${PYTHON:-.venv/bin/python}
out=$(mktemp -d)
AETHER_LOG_LEVEL=warning "$python" -m bridge.cli serve --port "$port" --redis-url "$redis_url" \
  >"$out/serve.log" 2>&1 &
node=$!
trap 'kill $client $node 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT
sleep 3
"$python" -c "
import asyncio, websockets
async def main():
    async with websockets.connect('ws://127.0.0.1:$port/v3/ws/group/silent01/client/alice01'):
        await asyncio.sleep(3600)
asyncio.run(main())" &
client=$!
sleep 3
ticks() { awk '{print $14 + $15}' "/proc/$node/stat"; }
hz=$(getconf CLK_TCK)
timeout 20 strace -f -c -p "$node" -o "$out/strace.txt" 2>/dev/null || true
before=$(ticks); sleep 10; after=$(ticks)
echo "CPU over 10 s untraced: $(( (after - before) * 1000 / hz )) ms"
echo "system calls over 20 s (strace -c -f):"
sed -n '1,12p' "$out/strace.txt"
