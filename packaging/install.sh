#!/bin/sh
# Builds lpexec and installs it with a working default configuration:
#   /usr/bin/lpexec                          0755  the front end
#   /usr/libexec/lpexec/lpexec-helper        4755  root:root, the setuid helper
#   /usr/sbin/lpexec-approvald               0755  the approval service (set up separately:
#                                                   lpexec-approvald(8); or use the .deb)
#   /etc/lpexec/lpexec.toml, policy.toml     0644  only if absent (never overwritten)
#   /var/lib/lpexec                          0700  state
#   /var/log/lpexec/sessions                 0700  recordings
# and a group lpexec-admin (root and the invoking sudo user join it) that the default policy
# lets run any command. Safe to run again.
set -eu

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: must run as root: sudo $0" >&2
    exit 1
fi
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
if ! command -v "$CARGO" >/dev/null 2>&1; then
    for c in "$HOME/.cargo/bin/cargo" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)/.cargo/bin/cargo"; do
        [ -x "$c" ] && CARGO=$c && break
    done
fi
"$CARGO" build --release --locked --bins

install -d -o root -g root -m 0755 /usr/bin /usr/libexec/lpexec
install -o root -g root -m 0755 target/release/lpexec /usr/bin/lpexec
install -o root -g root -m 4755 target/release/lpexec-helper /usr/libexec/lpexec/lpexec-helper
install -d -o root -g root -m 0755 /usr/sbin
install -o root -g root -m 0755 target/release/lpexec-approvald /usr/sbin/lpexec-approvald

install -d -o root -g root -m 0755 /etc/lpexec /etc/lpexec/policy.d
[ -e /etc/lpexec/lpexec.toml ] || install -o root -g root -m 0644 etc/lpexec.toml /etc/lpexec/lpexec.toml
[ -e /etc/lpexec/policy.toml ] || install -o root -g root -m 0644 packaging/default-policy.toml /etc/lpexec/policy.toml
install -d -o root -g root -m 0700 /var/lib/lpexec
install -d -o root -g root -m 0755 /var/log/lpexec
install -d -o root -g root -m 0700 /var/log/lpexec/sessions

getent group lpexec-admin >/dev/null || groupadd --system lpexec-admin
usermod -aG lpexec-admin root
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    usermod -aG lpexec-admin "$SUDO_USER"
    echo "install.sh: $SUDO_USER joined lpexec-admin"
fi

/usr/bin/lpexec check
echo "install.sh: installed; try: lpexec id"
