#!/bin/sh
# Builds the image of the microVM sandboxes (sandbox/_microvm.py) from Debian's packages, as root:
#   vmlinuz      Debian's cloud kernel (linux-image-cloud-amd64), taken from its .deb
#   initrd.img   busybox (busybox-static), the virtio modules of that kernel, and ./init
#   rootfs.ext4  a minbase Debian (debootstrap, from the mirror apt uses) with Python 3, NumPy,
#                pandas, Matplotlib, Pillow, pip and Node.js; ./guest.py and sandbox/_agent.py in
#                /opt/switchboard; read-only in the VM, so no set-uid program and no compiler
#   provides     the paths the image offers for a sandbox's binds (with a digest where the host's
#                copy must match: the agent)
#   build-id     a digest of every input: when it matches, nothing is rebuilt
# Usage: sandbox/microvm/build.sh [OUT]  (default .sandbox-images/microvm); FORCE=1 rebuilds.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/.sandbox-images/microvm}
suite=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
mirror=${MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-numpy,python3-pandas,python3-matplotlib,python3-pil,python3-pip,nodejs
modules="virtio_ring virtio virtio_mmio virtio_blk virtio_console"

id=$(cat "$here/build.sh" "$here/init" "$here/guest.py" "$repo/sandbox/_agent.py" \
    | { cat; echo "$suite $mirror $packages $modules"; } | sha256sum | cut -c1-16)
if [ -z "${FORCE:-}" ] && [ "$(cat "$out/build-id" 2>/dev/null)" = "$id" ]; then
    echo "microvm image up to date ($out)"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "build.sh: debootstrap needs root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
need() {  # a host tool, installed from Debian's packages when missing
    command -v "$1" >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends "$2" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$2" >/dev/null; }
}
need debootstrap debootstrap
need mkfs.ext4 e2fsprogs
need dpkg-deb dpkg

work=$(mktemp -d "${TMPDIR:-/tmp}/microvm-build.XXXXXX")
cleanup() {  # (a failed debootstrap may leave its chroot's /proc and /sys mounted)
    grep -o " $work/[^ ]*" /proc/mounts | sort -r | while read -r mounted; do umount -l "$mounted"; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
started=$(date +%s)
mkdir -p "$work/debs" "$out"

# -- kernel and busybox, unpacked from their packages (nothing is installed on the host) -------
fetch() {  # (the kernel's package is named by its version: the one apt's lists know)
    kernel=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$kernel" ] && (cd "$work/debs" && apt-get download -q -o APT::Sandbox::User=root "$kernel" busybox-static) >/dev/null 2>&1
}
fetch || { apt-get update -q >/dev/null && fetch; } || { echo "build.sh: Debian's kernel or busybox cannot be downloaded" >&2; exit 1; }
dpkg-deb -x "$work"/debs/linux-image-*.deb "$work/kernel"
dpkg-deb -x "$work"/debs/busybox-static_*.deb "$work/busybox"

initramfs=$work/initramfs
mkdir -p "$initramfs/bin" "$initramfs/lib/modules" "$initramfs/proc" "$initramfs/dev" "$initramfs/sys" "$initramfs/root"
cp "$work/busybox/bin/busybox" "$initramfs/bin/busybox"
for applet in sh mount umount insmod mkdir chown sleep switch_root echo; do
    ln -s busybox "$initramfs/bin/$applet"
done
for module in $modules; do
    found=$(find "$work/kernel/lib/modules" -name "$module.ko" | head -n 1)
    [ -n "$found" ] || { echo "build.sh: the kernel has no module $module" >&2; exit 1; }
    cp "$found" "$initramfs/lib/modules/"
done
install -m 0755 "$here/init" "$initramfs/init"
(cd "$initramfs" && find . | "$work/busybox/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip -9 > "$work/initrd.img"
cp "$work"/kernel/boot/vmlinuz-* "$work/vmlinuz"

# -- the root filesystem -----------------------------------------------------------------------
root=$work/root
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
mkdir -p "$root/work" "$root/opt/switchboard" "$root/opt/node/bin"
install -m 0644 "$here/guest.py" "$root/opt/switchboard/guest.py"
install -m 0644 "$repo/sandbox/_agent.py" "$root/opt/switchboard/agent.py"
ln -s /usr/bin/node "$root/opt/node/bin/node"
echo sandbox > "$root/etc/hostname"
printf '127.0.0.1 localhost sandbox\n::1 localhost sandbox\n' > "$root/etc/hosts"
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/locale" \
    "$root/usr/share/lintian" "$root/usr/include" "$root/usr/lib/gcc" "$root/usr/libexec/gcc" \
    "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*
find "$root" -xdev -type f -name '*.a' -delete
rm -f "$root"/usr/lib/x86_64-linux-gnu/lib*san.so.*
mib=$(du -smx "$root" | cut -f1)
inodes=$(find "$root" -xdev | wc -l)
rm -f "$work/rootfs.ext4"
mkfs.ext4 -q -F -L switchboard -O ^has_journal -m 0 -N $((inodes + inodes / 5 + 1024)) \
    -d "$root" "$work/rootfs.ext4" "$((mib + mib / 8 + 64))M" >/dev/null

{
    echo "/opt/switchboard/agent.py $(sha256sum "$repo/sandbox/_agent.py" | cut -d' ' -f1)"
    echo "/opt/switchboard/guest.py"
    echo "/opt/node/bin/node"
} > "$work/provides"
for file in vmlinuz initrd.img rootfs.ext4 provides; do
    mv -f "$work/$file" "$out/$file"
done
echo "$id" > "$out/build-id"
echo "microvm image built in $(( $(date +%s) - started )) s: $out ($(du -sh "$out" | cut -f1))"
