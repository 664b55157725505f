#!/usr/bin/env bash
# Run a command on the real display if there is one, else on a virtual 1280x800 screen (Xvfb).
set -euo pipefail
if [ -n "${DISPLAY:-}" ] && xdpyinfo >/dev/null 2>&1; then
  exec "$@"
fi
exec xvfb-run -a -s "-screen 0 1280x800x24 +extension GLX +render -noreset" "$@"
