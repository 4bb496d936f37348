#!/usr/bin/env bash
# Check Cargo.lock against the RustSec advisory database (cargo audit), offline.
#
# The database is read from $BERTH_ADVISORY_DB, else ~/.cargo/advisory-db (where cargo audit
# keeps its clone); it is fetched only when BERTH_ADVISORY_FETCH=1 (CI runs offline). When
# cargo-audit or the database is missing the check is skipped (with CI=true both are fetched
# first when github.com is reachable), saying so plainly; it never
# passes silently. Vulnerabilities fail; informational advisories (unmaintained, unsound)
# are printed as warnings.
#
# Install: cargo install --locked cargo-audit
# Database: git clone https://github.com/rustsec/advisory-db ~/.cargo/advisory-db
set -euo pipefail
cd "$(dirname "$0")/.."
db=${BERTH_ADVISORY_DB:-$HOME/.cargo/advisory-db}
# In CI, get the database when GitHub answers within a minute (a shallow clone), and only then
# build cargo-audit from crates.io (minutes of compiling that would be wasted offline).
if [[ ${CI:-} == true && ! -d $db/crates ]]; then
  if timeout 60 git clone -q --depth 1 https://github.com/rustsec/advisory-db "$db" 2>/dev/null; then
    command -v cargo-audit >/dev/null 2>&1 || cargo install -q --locked cargo-audit ||
      echo "advisories: cargo install cargo-audit failed"
  else
    rm -rf "$db"
    echo "advisories: no network to github.com for the advisory database"
  fi
fi
if ! command -v cargo-audit >/dev/null 2>&1; then
  echo "advisories: SKIPPED: cargo-audit is not installed (cargo install --locked cargo-audit)"
  exit 0
fi
if [[ ${BERTH_ADVISORY_FETCH:-0} == 1 ]]; then
  exec cargo audit --db "$db" --file Cargo.lock
fi
if [[ ! -d $db/crates ]]; then
  echo "advisories: SKIPPED: no advisory database at $db (set BERTH_ADVISORY_DB, or BERTH_ADVISORY_FETCH=1 with network access)"
  exit 0
fi
echo "advisories: checking Cargo.lock against $db ($(git -C "$db" log -1 --format=%cs 2>/dev/null || echo 'date unknown'))"
exec cargo audit --no-fetch --stale --db "$db" --file Cargo.lock
