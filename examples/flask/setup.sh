#!/usr/bin/env bash
# One-time setup of the Flask example: the local Debian base image the Dockerfile starts from.
# Then: berth compose up   (Ctrl-C stops) and curl http://127.0.0.1:8080/
set -euo pipefail
cd "$(dirname "$0")"
../setup-base.sh
