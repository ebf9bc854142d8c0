#!/usr/bin/env bash
# Installs the Debian packages the test suite needs when they are missing.
# As root it runs apt-get; otherwise it only reports what is missing (the
# tests that need a package then say so and the rest still run).
set -euo pipefail

# package -> a file that proves it is installed
declare -A NEED=(
  [chromium]=/usr/bin/chromium
  # PC/SC stack for the native bridge and its tests (docs/pcsc.md)
  [pcscd]=/usr/sbin/pcscd
  [libpcsclite-dev]=/usr/include/PCSC/winscard.h
  [vsmartcard-vpcd]=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
  [g++]=/usr/bin/g++
  [make]=/usr/bin/make
  [python3]=/usr/bin/python3
)

missing=()
for pkg in "${!NEED[@]}"; do
  [ -e "${NEED[$pkg]}" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "setup-system: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may still be running its own apt job (seen here: the dpkg
  # frontend lock held at boot): wait for the lock instead of failing.
  wait_lock=(-o DPkg::Lock::Timeout=600)
  apt-get "${wait_lock[@]}" update -qq
  apt-get "${wait_lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup-system: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
fi
