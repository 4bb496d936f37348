#!/usr/bin/env bash
# One-time setup of the LAMP example: the local Debian base image the Dockerfiles start from.
# Then: berth compose up -d && curl http://127.0.0.1:8080/
set -euo pipefail
cd "$(dirname "$0")"
../setup-base.sh
