#!/usr/bin/env bash
# Installs what "make bench" needs beyond the tests' own prerequisites
# (.ci/deps: vsftpd, fuse3, curl, python3-astropy): rclone, and gnuplot for
# the chart. Runs "apt-get update" only when something must be fetched.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash .ci/deps

packages=(rclone gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed; then
		missing+=("$p")
	fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "bench deps: missing ${missing[*]}; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
echo "bench deps: apt-get install ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
