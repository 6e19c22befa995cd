#!/usr/bin/env bash
# Image delivery benchmark: the bytes each tool moves to turn a machine's v1 into v2, on a real
# Debian image pair (build-images.sh), all measured in this one run:
#   Hearth (at 16, 64 and 256 KiB blocks), casync (64 KiB chunks, v1 as seed), zsync, rsync
#   (daemon on loopback, -z), and zstd --patch-from as the near-ideal reference.
# Usage: Benchmarks/ImageDelta/run.sh        (as root: the image build loop-mounts v2)
# Figures are kept in docs/PERFORMANCE.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
"$top/scripts/setup-host" bench >&2
images=${HEARTH_BENCH_IMAGES:-$HOME/.cache/hearth/bench-images}
"$here/build-images.sh" "$images"
v1=$images/v1.img
v2=$images/v2.img
# Bytes moved do not depend on the build; timings do (HEARTH_BENCH_CONFIG=debug for a quick run).
config=${HEARTH_BENCH_CONFIG:-release}
(cd "$top" && swift build -c "$config" --product hearth >&2)
hearth=$top/.build/$config/hearth
work=$(mktemp -d /var/tmp/hearth-bench-XXXXXX)
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"
}
pids=()
trap cleanup EXIT
size() { stat -c %s "$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

echo "v1: $(du -h --apparent-size "$v1" | cut -f1) virtual, $(du -h "$v1" | cut -f1) allocated; v2 the same plus packages" >&2
declare -A moved

# nginx on loopback serves this run's folder: Hearth's 64 KiB repository and zsync's files.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
daemon off;
user root;
pid $work/nginx.pid;
error_log $work/nginx.err;
events {}
http {
  access_log $work/access.log;
  server { listen 127.0.0.1:$port; root $work; }
}
CONF
nginx -c "$work/nginx.conf" &
pids+=($!)
sleep 1
requests_served() { [ -f "$work/access.log" ] && wc -l <"$work/access.log" || echo 0; }

# Hearth at three block sizes: what the pull downloads, plus the metadata and index it reads.
for bs in 16K 64K 256K; do
  repo=$work/repo-$bs
  "$hearth" image init --repo "$repo" --keys "$work/keys-$bs" --json >/dev/null
  start=$(date +%s.%N)
  "$hearth" image publish "$v1" --from raw --repo "$repo" --keys "$work/keys-$bs" --name debian --version 1 --block-size "$bs" --json >/dev/null
  end=$(date +%s.%N)
  "$hearth" image publish "$v2" --from raw --repo "$repo" --keys "$work/keys-$bs" --name debian --version 2 --block-size "$bs" --json >/dev/null
  "$hearth" image pull debian --version 1 --repo "$repo" --trust "$repo/metadata/1.root.json" --into "$work/store-$bs" --json >/dev/null
  # 64 KiB (the default) is pulled over HTTP from nginx, so its requests are counted by the server.
  source=$repo
  [ "$bs" = 64K ] && source=http://127.0.0.1:$port/repo-$bs
  before=$(requests_served)
  result=$("$hearth" image pull debian --version 2 --repo "$source" --trust "$repo/metadata/1.root.json" --into "$work/store-$bs" --json | tail -1)
  served=$(( $(requests_served) - before ))
  fetched=$(echo "$result" | json 'd["result"]["bytesFetched"]')
  requests=$(echo "$result" | json 'd["result"]["requests"]')
  index=$(size "$work/store-$bs/debian/2/index")
  meta=$(( $(size "$repo/metadata/timestamp.json") + $(ls -t "$repo"/metadata/*.snapshot.json | head -1 | xargs stat -c %s) + $(ls -t "$repo"/metadata/*.targets.json | head -1 | xargs stat -c %s) ))
  moved[hearth-$bs]=$(( fetched + index + meta ))
  cmp "$work/store-$bs/debian/2/system.img" "$v2" >/dev/null || { echo "Hearth $bs: pulled v2 differs from v2.img" >&2; exit 1; }
  whole=$("$hearth" image list --repo "$repo" --trust "$repo/metadata/1.root.json" --json | json '[v for v in d if v["version"]=="2"][0]["storedBytes"]')
  printf 'hearth %-5s blocks: delta %s bytes in %s range request(s) (index %s, metadata %s); whole v2 compressed %s; publish v1 %.1f s (%s build)\n' \
    "$bs" "${moved[hearth-$bs]}" "$requests" "$index" "$meta" "$whole" "$(echo "$end - $start" | bc)" "$config" >&2
  [ "$bs" = 64K ] && echo "hearth 64K over HTTP: nginx served $served request(s) in all (metadata, index, ranges) for $fetched bytes of packs: $(echo "scale=1; $fetched / 1048576 / $served" | bc) MiB per request" >&2
  [ "$bs" = 64K ] && moved[whole]=$whole
done

# Indexing and verifying: `hearth image verify` re-hashes the pulled v2 on one core (every data
# block by SHA-256, holes checked for zeros) and reports the time spent hashing; beside it, the
# same file through `openssl dgst -sha256` (SHA-NI where the CPU has it) and coreutils' sha256sum.
# Each is run twice and the second run (page cache warm) counted.
for round in 1 2; do
  verify=$("$hearth" image verify debian --version 2 --into "$work/store-64K" --json)
done
hashed=$(echo "$verify" | json 'd["bytesHashed"]')
hsecs=$(echo "$verify" | json 'd["hashSeconds"]')
vsecs=$(echo "$verify" | json 'd["seconds"]')
rate() { echo "$1 / $2 / 1000000000" | bc -l; }
timed() { for round in 1 2; do s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); done; echo "$e - $s" | bc; }
osecs=$(timed openssl dgst -sha256 "$v2")
ssecs=$(timed sha256sum "$v2")
printf 'hashing, one core (%s build): hearth SHA-256 %.2f GB/s (%s bytes in %.2f s; whole verify incl. reading %s bytes %.2f s); openssl dgst %.2f GB/s; sha256sum %.2f GB/s (%s bytes)\n' \
  "$config" "$(rate "$hashed" "$hsecs")" "$hashed" "$hsecs" "$(size "$v2")" "$vsecs" \
  "$(rate "$(size "$v2")" "$osecs")" "$(rate "$(size "$v2")" "$ssecs")" "$(size "$v2")" >&2

# casync: v1 and v2 chunked alike (64 KiB average); the seed (v1) supplies v1's chunks, so the
# download is v2's index plus the chunks v1 lacks.
casync make --store="$work/ca1" --chunk-size=65536 --compression=zstd "$work/v1.caibx" "$v1" >/dev/null
casync make --store="$work/ca2" --chunk-size=65536 --compression=zstd "$work/v2.caibx" "$v2" >/dev/null
(cd "$work/ca1" && find . -name '*.cacnk' | sort) >"$work/ca1.list"
(cd "$work/ca2" && find . -name '*.cacnk' | sort) >"$work/ca2.list"
new=$(comm -13 "$work/ca1.list" "$work/ca2.list" | (cd "$work/ca2" && xargs -r stat -c %s) | awk '{s+=$1} END {print s+0}')
moved[casync]=$(( new + $(size "$work/v2.caibx") ))
echo "casync: ${moved[casync]} bytes" >&2
# Check the claim: extracting v2 with v1 as seed from a store holding only v2's chunks works.
casync extract --store="$work/ca2" --seed="$v1" "$work/v2.caibx" "$work/ca-out.img" >/dev/null
cmp "$work/ca-out.img" "$v2" >/dev/null || { echo "casync: extracted v2 differs" >&2; exit 1; }
rm -f "$work/ca-out.img"

# zsync over HTTP with (multi-)Range requests, from the nginx started above.
cp --sparse=always "$v2" "$work/v2.img"
zsyncmake -o "$work/v2.zsync" -u v2.img "$work/v2.img" >/dev/null 2>&1
zout=$(cd "$work" && zsync -i "$v1" -o "$work/zs-out.img" "http://127.0.0.1:$port/v2.zsync" 2>&1 | tr '\r' '\n')
zfetched=$(echo "$zout" | sed -n 's/.*fetched \([0-9]*\).*/\1/p' | tail -1)
moved[zsync]=$(( ${zfetched:-0} + $(size "$work/v2.zsync") ))
echo "zsync: ${moved[zsync]} bytes" >&2
cmp "$work/zs-out.img" "$v2" >/dev/null || { echo "zsync: output differs" >&2; exit 1; }
rm -f "$work/zs-out.img" "$work/v2.img"

# rsync: a daemon on loopback, the client holding v1, compression on.
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'use chroot = no\n[bench]\npath = %s\nread only = yes\n' "$images" >"$work/rsyncd.conf"
rsync --daemon --no-detach --address=127.0.0.1 --port="$rport" --config="$work/rsyncd.conf" &
pids+=($!)
sleep 1
cp --sparse=always "$v1" "$work/rs.img"
rout=$(rsync -z --no-whole-file --inplace --stats "rsync://127.0.0.1:$rport/bench/v2.img" "$work/rs.img")
moved[rsync]=$(echo "$rout" | sed -n 's/^Total bytes received: \([0-9,]*\).*/\1/p' | tr -d ,)
echo "rsync: ${moved[rsync]} bytes" >&2
cmp "$work/rs.img" "$v2" >/dev/null || { echo "rsync: output differs" >&2; exit 1; }
rm -f "$work/rs.img"

# zstd --patch-from: a patch made knowing both images exactly; no real delivery does better.
zstd -q -19 --long=31 -T2 --patch-from="$v1" "$v2" -o "$work/patch.zst"
moved[zstd-patch]=$(size "$work/patch.zst")
echo "zstd --patch-from: ${moved[zstd-patch]} bytes" >&2

echo
echo "bytes moved to turn v1 into v2 (same run, same images)"
printf '%-22s %14s %10s\n' tool bytes "vs Hearth"
for tool in hearth-16K hearth-64K hearth-256K casync zsync rsync zstd-patch whole; do
  label=$tool
  [ "$tool" = whole ] && label="whole v2 (Hearth packs)"
  printf '%-22s %14s %9.2fx\n' "$label" "${moved[$tool]}" "$(echo "${moved[$tool]} / ${moved[hearth-64K]}" | bc -l)"
done
