#!/usr/bin/env bash
# Builds the real image pair the delivery benchmark uses, once (cached):
#   v1.img: Debian bookworm (debootstrap --variant=minbase) on a 2 GiB ext4 filesystem;
#   v2.img: v1 with more packages installed into the same filesystem (loop-mounted, chroot).
# Usage: build-images.sh DIR        Needs root (mount, chroot) and Debian's mirrors.
set -euo pipefail
dir=${1:?usage: build-images.sh DIR}
mkdir -p "$dir"
cd "$dir"
packages="python3 curl openssh-client less vim-tiny ca-certificates"

if [ ! -f v1.img ]; then
  echo "building v1.img: debootstrap bookworm minbase (a few minutes)" >&2
  rm -rf root v1.img.tmp
  debootstrap --variant=minbase bookworm root http://deb.debian.org/debian >debootstrap.log 2>&1 \
    || { echo "debootstrap failed; see $dir/debootstrap.log" >&2; exit 1; }
  rm -rf root/var/cache/apt/archives/*.deb
  truncate -s 2G v1.img.tmp
  mke2fs -q -t ext4 -d root -L hearth-root v1.img.tmp
  mv v1.img.tmp v1.img
  rm -rf root
fi

if [ ! -f v2.img ]; then
  echo "building v2.img: v1 plus $packages, installed in place" >&2
  cp --sparse=always v1.img v2.img.tmp
  mnt=$(mktemp -d)
  mount -o loop v2.img.tmp "$mnt"
  trap 'umount -l "$mnt/proc" 2>/dev/null || true; umount -l "$mnt" 2>/dev/null || true' EXIT
  mount -t proc proc "$mnt/proc"
  cp /etc/resolv.conf "$mnt/etc/resolv.conf"
  chroot "$mnt" /usr/bin/env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $packages && apt-get clean" >apt.log 2>&1 \
    || { echo "installing packages failed; see $dir/apt.log" >&2; exit 1; }
  umount "$mnt/proc"
  umount "$mnt"
  trap - EXIT
  rmdir "$mnt"
  mv v2.img.tmp v2.img
fi
ls -ls v1.img v2.img >&2
