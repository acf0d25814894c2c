#!/usr/bin/env bash
# `make check-aarch64`: the slim runtime on Linux aarch64 (Raspberry Pi, Jetson), under
# qemu-user emulation, compared with this x86-64 machine.
#
# ai-edge-litert publishes only 1.x wheels for Linux aarch64 (2.x for x86-64, macOS arm64,
# Windows), so a board gets another LiteRT than a PC. This script builds a Debian arm64 root
# file system from Debian packages (debootstrap, qemu-user-static, binfmt-support), installs
# emseg-lite into a venv there from this source tree with the aarch64 pip -- which resolves
# LiteRT, numpy and pillow from PyPI as a board would -- and runs `emseg-lite segment` on real
# slices with the float32 and the int8 model, and `emseg-lite evaluate` on ISBI's held-out
# sections; tests/compare_platforms.py compares them with the x86-64 install in .venv: float32
# masks must be equal pixel for pixel, int8 ones as close as the export gate asks (XNNPACK's int8
# kernels round differently on ARM and x86). LITERT=1.2.0 pins a LiteRT release.
#
# Root only (debootstrap, chroot, binfmt_misc). Slow: everything in the chroot is emulated;
# docs/platforms.md records how long it took. Not part of `make test`. Re-runs reuse the root file
# system in $AARCH64_ROOT (delete it to start over); the venv there is made anew each run.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$(realpath -m "${AARCH64_ROOT:-build/aarch64-rootfs}")
SUITE=${SUITE:-bookworm}  # Debian 12: Python 3.11, as Raspberry Pi OS 12 has
DATA=$(realpath "${EMSEG_DATA:-../shared/data}")
SLICES=(${SLICES:-isbi2012/test/0.png vnc-stack2/00.tif})
HOST_PY=${HOST_PY:-.venv/bin/python}
WORK=$(realpath -m build/aarch64)
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }
# Each emulated phase reports wall time and CPU time: CPU time does not count waiting for the
# other core or for processes that pause this one, so it is the figure to compare between runs.
TIMEFORMAT='   %0R s wall, %0U s user + %0S s system CPU'

[ "$(id -u)" = 0 ] || { echo "error: check-aarch64 needs root (debootstrap, chroot, binfmt_misc)" >&2; exit 2; }
[ -x "$HOST_PY" ] || { echo "error: $HOST_PY missing; run make .venv/.installed first" >&2; exit 2; }
for slice in "${SLICES[@]}"; do
    [ -f "$DATA/$slice" ] || { echo "error: $DATA/$slice: no such slice (set EMSEG_DATA)" >&2; exit 2; }
done

echo "== host packages"
missing=()
for pkg in qemu-user-static binfmt-support debootstrap; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== binfmt_misc: aarch64 executables run through qemu-aarch64-static"
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "error: qemu-aarch64 binfmt not enabled" >&2; exit 1; }

# Mounts left by an interrupted run must go before anything under $ROOT is deleted.
awk -v root="$ROOT/" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
mkdir -p "$(dirname "$WORK")"

mounted=()
cleanup() {
    local i
    for (( i=${#mounted[@]}-1; i>=0; i-- )); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() { mkdir -p "$2"; mount --bind "$1" "$2"; mounted+=("$2"); [ "${3:-}" = ro ] && mount -o remount,ro,bind "$2"; true; }

if [ ! -x "$ROOT/usr/bin/python3" ]; then
    echo "== debootstrap $SUITE arm64 into $ROOT"
    # The mirror this machine's apt already uses (deb822 or one-line sources).
    mirror=${MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)}
    mirror=${mirror:-$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
    [ -n "$mirror" ] || { echo "error: no Debian mirror in /etc/apt; set MIRROR" >&2; exit 2; }
    rm -rf --one-file-system "$ROOT"
    time debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ROOT" "$mirror" >"$WORK.debootstrap.log" 2>&1 \
        || { tail -20 "$WORK.debootstrap.log" >&2; exit 1; }
fi
# ELF e_machine 183 = EM_AARCH64
[ "$(od -An -t u2 -j 18 -N 2 "$ROOT/usr/bin/python3.11" | tr -d ' ')" = 183 ] \
    || { echo "error: $ROOT is not an aarch64 system" >&2; exit 1; }

rm -rf --one-file-system "$WORK" && mkdir -p "$WORK/x86_64" "$WORK/aarch64"
bind /proc "$ROOT/proc"
bind /dev "$ROOT/dev"
bind "$DATA" "$ROOT/mnt/data" ro
bind "$WORK/aarch64" "$ROOT/mnt/out"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# pip in the chroot trusts what this machine's pip trusts (its certificate bundle may hold a proxy's CA).
host_ca=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)}
cp -L "$host_ca" "$ROOT/etc/ssl/host-ca-certificates.crt"
# The source tree as pip would get it from a checkout: tracked and new files, nothing ignored.
rm -rf --one-file-system "$ROOT/opt/emseg-lite" && mkdir -p "$ROOT/opt/emseg-lite"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$ROOT/opt/emseg-lite"

in_chroot() {
    chroot "$ROOT" /usr/bin/env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/host-ca-certificates.crt "$@"
}

echo "== pip install emseg-lite (aarch64 Python $(in_chroot python3 -c 'import platform; print(platform.python_version(), platform.machine())'))"
rm -rf --one-file-system "$ROOT/opt/venv"
time {
    in_chroot python3 -m venv /opt/venv
    in_chroot pip install --quiet /opt/emseg-lite ${LITERT:+"ai-edge-litert==$LITERT"} >"$WORK/pip.log" 2>&1 \
        || { tail -20 "$WORK/pip.log" >&2; exit 1; }
}
echo "   installed: $(in_chroot pip list 2>/dev/null | grep -iE '^(ai-edge-litert|numpy|pillow) ' | tr -s ' ' | paste -sd, -)"

echo "== emseg-lite info (aarch64)"
in_chroot emseg-lite info | grep -iE "backend|interpreter|amx|threads" || true

inputs=() host_inputs=()
for slice in "${SLICES[@]}"; do inputs+=("/mnt/data/$slice"); host_inputs+=("$DATA/$slice"); done
host_cli="$(dirname "$HOST_PY")/emseg-lite"
for model in float32 int8; do
    echo "== emseg-lite segment --model $model: ${SLICES[*]}"
    time in_chroot emseg-lite segment "${inputs[@]}" -o "/mnt/out/$model" --model "$model" --probabilities \
        --threads 2 --quiet
    "$host_cli" segment "${host_inputs[@]}" -o "$WORK/x86_64/$model" --model "$model" --probabilities --threads 2 --quiet
done

sections=${SECTIONS:-25-29}
echo "== emseg-lite evaluate (int8) on ISBI sections $sections"
evaluate=(evaluate --sections "$sections" --threads 2)
time in_chroot emseg-lite "${evaluate[@]}" --images /mnt/data/isbi2012/train/images \
    --labels /mnt/data/isbi2012/train/labels >"$WORK/aarch64/evaluate.txt"
"$host_cli" "${evaluate[@]}" --images "$DATA/isbi2012/train/images" --labels "$DATA/isbi2012/train/labels" \
    >"$WORK/x86_64/evaluate.txt"

echo "== aarch64 vs x86-64"
"$HOST_PY" tests/compare_platforms.py "$WORK" "${SLICES[@]}"
echo "== done in $(elapsed "$start") ($(date -u +%Y-%m-%dT%H:%MZ), host: $(lscpu | sed -n 's/^Model name: *//p'))"
