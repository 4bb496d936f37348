#!/usr/bin/env bash
# Health-check overhead, berth vs podman (runc, cgroupfs), side by side in one run: one container
# each with `--health-cmd true --health-interval 1s`, observed for DURATION seconds (default 60):
#   - resident memory of the per-container monitor: berth-supervise vs conmon (RSS and PSS);
#     target: berth <= 0.5 x podman
#   - CPU time of monitor + probes over the window (utime+stime of the monitor and of the
#     probe processes it reaped). Podman schedules `podman healthcheck run` with a systemd
#     timer; without systemd (as in this VM) the script runs that same command every second
#     from a shell loop and counts the loop's children.
#   - probes actually run in the window (the health log / a counter)
# Needs root, podman, busybox-static and a built berth with berth-supervise next to it
# (BERTH=..., default target/release/berth). Env: DURATION (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
BERTH=${BERTH:-$PWD/target/release/berth}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in podman busybox; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth -p berth-supervise" >&2; exit 2; }
[[ -x $(dirname "$BERTH")/berth-supervise ]] || { echo "berth-supervise missing next to $BERTH" >&2; exit 2; }
if ! grep -qs 'runtime *= *"runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >/etc/containers/containers.conf
fi

WORK=$(mktemp -d /tmp/berth-bench-health.XXXXXX)
export BERTH_ROOT=$WORK/root
IMG=localhost/berth-bench-health:latest
NAME=bhealth$$
LOOP_PID=
cleanup() {
  [[ -n $LOOP_PID ]] && kill "$LOOP_PID" 2>/dev/null || true
  "$BERTH" rm -f "$NAME" >/dev/null 2>&1 || true
  podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  podman rmi -f "$IMG" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
podman import -q "$WORK/rootfs.tar" "$IMG" >/dev/null
"$BERTH" import "$WORK/rootfs.tar" "$IMG" >/dev/null

HC=(--health-cmd true --health-interval 1s)
"$BERTH" run -d --network none --name "$NAME" "${HC[@]}" "$IMG" sleep 100000 >/dev/null
podman run -d --network none --name "$NAME" "${HC[@]}" "$IMG" sleep 100000 >/dev/null 2>"$WORK/podman.err"

# CPU ticks (utime+stime+cutime+cstime) of a process.
ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
mem() { # pid -> "rss_kib pss_kib"
  echo "$(awk '/^VmRSS/{print $2}' /proc/$1/status) $(awk '/^Pss:/{print $2}' /proc/$1/smaps_rollup)"
}
bpid=$(pgrep -x berth-supervise | while read -r p; do
  grep -q "$BERTH_ROOT" "/proc/$p/cmdline" 2>/dev/null && echo "$p"; done | head -1)
cid=$(podman inspect --format '{{.Id}}' "$NAME")
cpid=$(pgrep -f "conmon.*$cid" | head -1)
[[ -n $bpid && -n $cpid ]] || { echo "cannot find the monitors (berth $bpid, conmon $cpid)" >&2; exit 1; }

if [[ $(cat /proc/1/comm) == systemd ]]; then
  echo "== podman's own systemd timer runs its health checks"
  timer="systemd"
else
  echo "== no systemd here: running 'podman healthcheck run' every second, as podman's timer would"
  ( while sleep 1; do podman healthcheck run "$NAME" >/dev/null 2>&1 || true; done ) &
  LOOP_PID=$!
  timer="loop"
fi

b0=$(ticks "$bpid"); c0=$(ticks "$cpid"); l0=0
[[ -n $LOOP_PID ]] && l0=$(ticks "$LOOP_PID")
bmax_rss=0; cmax_rss=0
for _ in $(seq 1 "$DURATION"); do
  sleep 1
  read -r r _ < <(mem "$bpid"); (( r > bmax_rss )) && bmax_rss=$r
  read -r r _ < <(mem "$cpid"); (( r > cmax_rss )) && cmax_rss=$r
done
b1=$(ticks "$bpid"); c1=$(ticks "$cpid"); l1=0
[[ -n $LOOP_PID ]] && l1=$(ticks "$LOOP_PID")
read -r brss bpss < <(mem "$bpid")
read -r crss cpss < <(mem "$cpid")
hz=$(getconf CLK_TCK)
bprobes=$("$BERTH" inspect --format '{{json .State.Health.Log}}' "$NAME" | grep -o '"ExitCode"' | wc -l)
echo "== over ${DURATION}s with a 1 s health check"
printf '%-22s RSS %6s KiB (max %6s)  PSS %6s KiB  CPU %6.2f s\n' \
  "berth-supervise" "$brss" "$bmax_rss" "$bpss" "$(echo "($b1-$b0)/$hz" | bc -l)" \
  "conmon" "$crss" "$cmax_rss" "$cpss" "$(echo "($c1-$c0)/$hz" | bc -l)"
printf '%-22s CPU %6.2f s (%s)\n' "podman healthcheck run" "$(echo "($l1-$l0)/$hz" | bc -l)" "$timer"
echo "berth health status: $("$BERTH" inspect --format '{{.State.Health.Status}}' "$NAME"), last $bprobes results kept"
python3 - "$brss" "$crss" "$b0" "$b1" "$c0" "$c1" "$l0" "$l1" <<'PY'
import sys
brss, crss, b0, b1, c0, c1, l0, l1 = map(float, sys.argv[1:])
print(f"memory ratio berth/podman (RSS): {brss/crss:.3f}   (target <= 0.5)")
pc = (c1 - c0) + (l1 - l0)
print(f"CPU ratio berth/podman (monitor + probes): {((b1-b0)/pc if pc else float('nan')):.3f}")
PY
