#!/bin/sh
# scripts/redis-bundled.sh: build redis-server with the jemalloc it ships
# (je_-prefixed, linked into the executable), the build that can run active
# defragmentation; Debian's redis-server links the system jemalloc and
# cannot. The tests of jemalloc's je_* API use it.
#
#   scripts/redis-bundled.sh [CACHE_DIR]    prints the path of redis-server
#
# The source is Debian's upstream tarball (the same redis 7.0.15 that
# Debian 12 ships), checked against its SHA-256. Built once per CACHE_DIR
# (default /var/cache/lsan-tests), about a minute on two cores.
set -eu
version=7.0.15
sha256=4b1dc4ee6d622a09fff9c6777191209750fb5e5a725ef78ea012d6eef4c22982
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${1:-/var/cache/lsan-tests}
dir=$cache/redis-$version
exe=$dir/src/redis-server
if [ -x "$exe" ]; then
	echo "$exe"
	exit 0
fi
mkdir -p "$cache"
tarball=$cache/redis_$version.orig.tar.gz
if ! echo "$sha256  $tarball" | sha256sum -c --status 2>/dev/null; then
	curl -fsSL -o "$tarball.part" "$mirror/pool/main/r/redis/redis_$version.orig.tar.gz" >&2
	echo "$sha256  $tarball.part" | sha256sum -c --status || { echo "redis-bundled.sh: checksum mismatch" >&2; exit 1; }
	mv "$tarball.part" "$tarball"
fi
rm -rf "$dir.part"
mkdir -p "$dir.part"
tar xzf "$tarball" -C "$dir.part" --strip-components=1
make -C "$dir.part" -j"$(nproc)" MALLOC=jemalloc BUILD_TLS=no USE_SYSTEMD=no redis-server >"$cache/redis-build.log" 2>&1 ||
	{ tail -20 "$cache/redis-build.log" >&2; exit 1; }
rm -rf "$dir"
mv "$dir.part" "$dir"
echo "$exe"
