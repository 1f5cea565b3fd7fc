#!/bin/sh
# Writes a base image: run as (mapped) root with the root file system tree ($1), the disk file ($2),
# its size in sectors ($3), the folder of kiln's files to copy in ($4) and GRUB's core image ($5).
set -eu
ROOT=$1 DISK=$2 SECTORS=$3 FILES=$4 CORE=$5
cp -R --no-preserve=ownership "$FILES"/. "$ROOT"/
chown -R 0:0 "$ROOT/usr/lib/kiln" "$ROOT/etc/systemd/system" "$ROOT/etc/systemd/network" "$ROOT/boot/grub"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_*
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/log/*.log "$ROOT"/tmp/*
chroot "$ROOT" systemctl -q enable kiln-agent.service kiln-userdata.service systemd-networkd.service \
    systemd-resolved.service ssh.service
# Debian's apt timers would hold apt's lock while a build provisions the machine
chroot "$ROOT" systemctl -q disable apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
# a scrub of the file system at every boot costs seconds under emulation
chroot "$ROOT" systemctl -q disable e2scrub_all.timer e2scrub_reap.service 2>/dev/null || true
chroot "$ROOT" systemctl -q mask systemd-firstboot.service
# work a machine from this image has no use for, each an emulated process or mount competing with
# sshd's path at boot (systemd-sysusers: Debian's packages create their users when installed)
chroot "$ROOT" systemctl -q mask getty@tty1.service dev-hugepages.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount modprobe@drm.service modprobe@efi_pstore.service systemd-sysusers.service
# generators for disks this image never has (encrypted, verity, integrity, GPT auto-discovery, hibernation)
mkdir -p "$ROOT/etc/systemd/system-generators"
for g in cryptsetup gpt-auto hibernate-resume integritysetup veritysetup system-update; do
    ln -sf /dev/null "$ROOT/etc/systemd/system-generators/systemd-$g-generator"
done
mkdir -p "$ROOT/var/lib/kiln"
mkdir -p "$ROOT/root/.ssh"
chmod 700 "$ROOT/root/.ssh"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$DISK"
mkfs.ext4 -q -F -L root -b 4096 -E offset=1048576 -d "$ROOT" "$DISK" "$(((SECTORS - 2048) / 2))k"
dd if=/usr/lib/grub/i386-pc/boot.img of="$DISK" bs=440 count=1 conv=notrunc status=none
dd if="$CORE" of="$DISK" bs=512 seek=1 conv=notrunc status=none
