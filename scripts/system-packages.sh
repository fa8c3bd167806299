#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are missing (apt, with sudo when not
# root). The C libraries the build links: librdkafka (built from source by rdkafka-sys) needs
# zlib's and OpenSSL's headers (Kafka over TLS and SASL) and pkg-config to find them.
# Usage: scripts/system-packages.sh PACKAGE…
set -euo pipefail
missing=()
for package in "$@"; do
  case "$package" in
    chromium) [[ -x /usr/bin/chromium ]] || missing+=(chromium) ;;
    *) dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package") ;;
  esac
done
if (( ${#missing[@]} )); then
  echo "installing ${missing[*]} (apt)" >&2
  sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
