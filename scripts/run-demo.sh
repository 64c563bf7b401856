#!/usr/bin/env bash
# make run: two demo upstreams and synapserve on etc/synapserve, in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
$py scripts/demo_backend.py 9001 demo-a & a=$!
$py scripts/demo_backend.py 9002 demo-b & b=$!
trap 'kill $a $b 2>/dev/null || true' EXIT
cat <<MSG

synapserve on etc/synapserve/ with two demo upstreams (127.0.0.1:9001 and :9002).
  the site:     curl http://127.0.0.1:8080/          (run it a few times: a, b, a, b)
  status:       .venv/bin/synapserve status --config-dir etc/synapserve
  metrics:      curl http://127.0.0.1:9180/metrics
  failover:     curl -X POST http://127.0.0.1:9001/fail    (health checks take demo-a out;
                curl -X POST http://127.0.0.1:9001/recover  brings it back)
  live edit:    edit etc/synapserve/synapserve.toml and save: applied without a restart
  stop:         Ctrl-C

MSG
.venv/bin/synapserve run --config-dir etc/synapserve
