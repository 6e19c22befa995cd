/// The shell scripts the guest runs, all under busybox. Their text is part of the kit's cache
/// key, so editing them rebuilds the kit.
enum GuestScripts {
    /// Kernel modules the initramfs loads, in this order: Debian's kernels build virtio as
    /// modules, and each needs the ones before it (`virtio_net` also needs the failover pair). `qemu_fw_cfg` lets the guest read its probe;
    /// `evdev` and `button` let it see the ACPI power button.
    static let modules = [
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
        "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/block/virtio_blk.ko",
        "kernel/net/core/failover.ko",
        "kernel/drivers/net/net_failover.ko",
        "kernel/drivers/net/virtio_net.ko",
        "kernel/drivers/firmware/qemu_fw_cfg.ko",
        "kernel/drivers/input/evdev.ko",
        "kernel/drivers/acpi/button.ko",
    ]

    /// `/init` of the initramfs: load the modules, find the root disk by its virtio serial,
    /// and hand over to the root disk's init.
    static let initramfsInit = #"""
    #!/bin/busybox sh
    /bin/busybox --install -s /bin
    export PATH=/bin
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    exec </dev/console >/dev/console 2>&1
    fail() {
        echo "HEARTH-GUEST-ERROR: $*"
        poweroff -f
    }
    for module in $(cat /lib/modules/order); do
        insmod "/lib/modules/$module" || fail "cannot load the kernel module $module"
    done
    root_serial=hearth-root
    for word in $(cat /proc/cmdline); do
        case "$word" in hearth.root=*) root_serial="${word#hearth.root=}" ;; esac
    done
    root=""
    tries=0
    while [ -z "$root" ] && [ "$tries" -lt 100 ]; do
        root=$(/bin/hearth-disk "$root_serial" 2>/dev/null)
        [ -n "$root" ] || { sleep 0.1; tries=$((tries + 1)); }
    done
    [ -n "$root" ] || fail "no disk with serial '$root_serial' appeared within 10 s"
    # A read-only root disk (the gold image itself) is mounted read-only.
    mode=rw
    [ "$(cat "/sys/block/${root#/dev/}/ro")" = 1 ] && mode=ro
    mount -t ext4 -o "$mode" "$root" /newroot || fail "cannot mount the root disk $root ($mode)"
    umount /proc /sys
    mount --move /dev /newroot/dev
    exec switch_root /newroot /sbin/init
    """#

    /// `/bin/hearth-disk NAME` prints the device of the disk whose virtio serial is NAME.
    static let hearthDisk = #"""
    #!/bin/sh
    for serial in /sys/block/vd*/serial; do
        [ -r "$serial" ] || continue
        if [ "$(cat "$serial")" = "$1" ]; then
            disk="${serial%/serial}"
            echo "/dev/${disk##*/}"
            exit 0
        fi
    done
    echo "hearth-disk: no disk named '$1'" >&2
    exit 1
    """#

    /// `/sbin/init` of the root disk: print the boot marker, power off on the ACPI power
    /// button, run the probe handed over fw_cfg and print its output framed on the console.
    static let rootInit = #"""
    #!/bin/sh
    export PATH=/bin:/sbin:/usr/bin:/usr/sbin
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    # The root disk may be read-only: everything a probe writes goes to tmpfs or to its disks.
    mount -t tmpfs tmpfs /tmp
    mount -t tmpfs tmpfs /mnt
    grep -q " /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
    exec </dev/console >/dev/console 2>&1
    for event in /sys/class/input/event*; do
        if [ "$(cat "$event/device/name" 2>/dev/null)" = "Power Button" ]; then
            (
                dd if="/dev/input/${event##*/}" of=/dev/null bs=24 count=1 2>/dev/null
                echo "HEARTH-GUEST: power button pressed, powering off"
                sync
                poweroff -f
            ) &
        fi
    done
    echo "HEARTH-BOOT-MARKER release=$(cat /etc/hearth-release) kernel=$(uname -r)"
    probe=/sys/firmware/qemu_fw_cfg/by_name/opt/org.hearth/probe/raw
    if [ -r "$probe" ]; then
        cat "$probe" > /tmp/probe.sh
        sh /tmp/probe.sh > /tmp/probe.out 2>&1
        status=$?
        echo "HEARTH-PROBE-BEGIN"
        while IFS= read -r line; do
            echo "HEARTH-PROBE: $line"
        done < /tmp/probe.out
        echo "HEARTH-PROBE-END status=$status"
    fi
    while true; do
        sleep 3600
    done
    """#
}
