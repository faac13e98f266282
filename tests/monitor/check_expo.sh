#!/usr/bin/env bash
# Usage: check_expo.sh MONITOR_EXPO_DEMO PROMTOOL OUT_DIR
# Renders the demo registry in both formats and checks them: promtool must print nothing and
# succeed on the 0.0.4 text; the OpenMetrics text must end with "# EOF\n" and hold it once.
set -euo pipefail
demo=$1 promtool=$2 out=$3
mkdir -p "$out"
command -v "$promtool" >/dev/null 2>&1 || {
  echo "promtool not found (apt-get install prometheus, or scripts/install-deps.sh)"; exit 1; }
"$demo" "$out/metrics.prom" "$out/metrics.om"

complaints=$("$promtool" check metrics < "$out/metrics.prom" 2>&1) || {
  echo "promtool failed:"; echo "$complaints"; exit 1; }
if [ -n "$complaints" ]; then
  echo "promtool complained:"; echo "$complaints"; exit 1
fi

if [ "$(tail -c 6 "$out/metrics.om")" != "# EOF" ] || [ "$(tail -c 1 "$out/metrics.om" | od -An -c | tr -d ' ')" != '\n' ]; then
  echo "OpenMetrics output does not end with '# EOF\\n'"; exit 1
fi
if [ "$(grep -c '^# EOF$' "$out/metrics.om")" != 1 ]; then
  echo "OpenMetrics output holds '# EOF' more than once"; exit 1
fi
for m in process_cpu_seconds_total process_resident_memory_bytes process_virtual_memory_bytes \
         process_open_fds process_max_fds process_start_time_seconds vigil_build_info; do
  grep -q "^$m" "$out/metrics.prom" || { echo "missing $m"; exit 1; }
done
echo "ok: promtool accepts $out/metrics.prom; $out/metrics.om ends with # EOF"
