#!/usr/bin/env bash
# System packages quantkit's tests need beyond Python: OpenSSH and the DejaVu fonts.
# The remote-benchmark tests start a real sshd on 127.0.0.1 and reach it with ssh/scp, as
# they would an ARM board; the model zoo renders text with known ground truth in DejaVu
# (quantkit/zoo/render.py).
#
# Idempotent and fast: when /usr/sbin/sshd, ssh, scp, ssh-keygen and DejaVuSans.ttf are all
# present it only says so. Otherwise it installs Debian's openssh-server / openssh-client /
# fonts-dejavu-core with apt-get (running `apt-get update` only if the first install
# attempt fails), as root or through passwordless sudo.
set -euo pipefail

SSHD="${SSHD:-/usr/sbin/sshd}"  # where Debian's openssh-server puts the daemon
DEJAVU="${DEJAVU:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}"  # fonts-dejavu-core

missing=()
[ -x "$SSHD" ] || missing+=(openssh-server)
for tool in ssh scp ssh-keygen; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing+=(openssh-client)
        break
    fi
done
[ -f "$DEJAVU" ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
    echo "system deps: OpenSSH present ($SSHD, $(command -v ssh)); DejaVu fonts present ($DEJAVU)"
    exit 0
fi

echo "system deps: installing ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: ${missing[*]} missing and this is not a Debian/Ubuntu system (no apt-get):" \
         "install them with your package manager (sshd must be at $SSHD, the DejaVu" \
         "fonts at $(dirname "$DEJAVU"))" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "error: installing ${missing[*]} needs root or passwordless sudo;" \
         "run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
install_missing() {
    ${sudo[@]+"${sudo[@]}"} apt-get install -y --no-install-recommends "${missing[@]}"
}
if ! install_missing; then
    echo "system deps: install failed, refreshing the package lists and retrying"
    ${sudo[@]+"${sudo[@]}"} apt-get update
    install_missing
fi

[ -x "$SSHD" ] || { echo "error: installed ${missing[*]} but $SSHD is still missing" >&2; exit 1; }
[ -f "$DEJAVU" ] || { echo "error: installed ${missing[*]} but $DEJAVU is still missing" >&2; exit 1; }
echo "system deps: installed ${missing[*]}"
