"""Files kiln puts into its Debian base images (their content is part of the recipe hash)."""

from __future__ import annotations

AGENT = r"""#!/bin/sh
# kiln-agent: applies a NoCloud seed (meta-data, user-data) at boot and grows the root partition.
# Per instance (a new instance-id): new SSH host keys, user data run once. Every boot: keys, hostname.
set -u
STATE=/var/lib/kiln
SEED=/run/kiln/seed
log() { echo "kiln-agent: $*" >&2; }

grow_root() {
    src=$(findmnt -no SOURCE / 2>/dev/null) || return 0
    case "$src" in /dev/*) ;; *) return 0 ;; esac
    part=$(basename "$(readlink -f "$src")")
    sys=/sys/class/block/$part
    [ -f "$sys/partition" ] || return 0
    disk=$(basename "$(readlink -f "$sys/..")")
    num=$(cat "$sys/partition")
    end=$(($(cat "$sys/start") + $(cat "$sys/size")))
    total=$(cat "/sys/class/block/$disk/size")
    [ $((end + 4096)) -lt "$total" ] || return 0
    log "growing /dev/$disk partition $num to the end of the disk"
    echo ", +" | sfdisk -q --force --no-reread --no-tell-kernel -N "$num" "/dev/$disk" >/dev/null 2>&1 &&
        partx -u -n "$num" "/dev/$disk" && resize2fs "$src" >/dev/null 2>&1 || log "growing the root failed"
}

find_seed() {
    [ -f "$SEED/meta-data" ] && return 0
    i=0
    while [ $i -lt 10 ]; do
        dev=$(blkid -c /dev/null -t LABEL=CIDATA -o device 2>/dev/null | head -n 1)
        [ -n "$dev" ] || dev=$(blkid -c /dev/null -t LABEL=cidata -o device 2>/dev/null | head -n 1)
        if [ -n "$dev" ]; then
            mkdir -p /run/kiln/seed-disk
            mount -o ro "$dev" /run/kiln/seed-disk && SEED=/run/kiln/seed-disk && return 0
        fi
        i=$((i + 1))
        sleep 0.1
    done
    return 1
}

field() { sed -n "s/^$1:[[:space:]]*//p" "$SEED/meta-data" | head -n 1 | tr -d "\"'\r"; }
list() { sed -n "/^$1:/,/^[^[:space:]-]/s/^[[:space:]]*-[[:space:]]*//p" "$2" | tr -d "\r" | sed "s/^[\"']//; s/[\"']\$//"; }

add_keys() {
    mkdir -p /root/.ssh && chmod 700 /root/.ssh
    touch /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys
    while IFS= read -r key; do
        [ -n "$key" ] || continue
        grep -qxF "$key" /root/.ssh/authorized_keys || printf '%s\n' "$key" >>/root/.ssh/authorized_keys
    done
}

boot() {
    mkdir -p "$STATE" /run/kiln
    grow_root
    find_seed || { log "no NoCloud seed found"; return 0; }
    iid=$(field instance-id)
    host=$(field local-hostname)
    if [ -n "$host" ]; then
        hostname "$host" 2>/dev/null
        echo "$host" >/etc/hostname
        sed -i "/^127\.0\.1\.1[[:space:]]/d" /etc/hosts && echo "127.0.1.1	$host" >>/etc/hosts
    fi
    if [ "$iid" != "$(cat "$STATE/instance-id" 2>/dev/null)" ]; then
        log "new instance $iid"
        rm -f /etc/ssh/ssh_host_*
        if [ -s "$SEED/user-data" ]; then
            cp "$SEED/user-data" "$STATE/user-data"
            head -c 2 "$STATE/user-data" | grep -q '^#!' && touch "$STATE/user-data.pending"
        fi
        echo "$iid" >"$STATE/instance-id"
    fi
    list public-keys "$SEED/meta-data" | add_keys
    if head -n 1 "$SEED/user-data" 2>/dev/null | grep -q '^#cloud-config'; then
        list ssh_authorized_keys "$SEED/user-data" | add_keys
    fi
}

userdata() {
    rm -f "$STATE/user-data.pending"
    chmod 700 "$STATE/user-data"
    log "running user data"
    "$STATE/user-data" >/var/log/kiln-user-data.log 2>&1
    log "user data exited with $?"
}

case "${1:-boot}" in
boot) boot ;;
userdata) userdata ;;
esac
exit 0
"""

AGENT_UNIT = """[Unit]
Description=kiln agent: NoCloud seed (SSH keys, hostname), root partition growth
DefaultDependencies=no
After=local-fs.target systemd-remount-fs.service
Before=ssh.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/kiln/kiln-agent boot

# not part of sysinit.target: only sshd waits for the agent, the rest of the boot goes on meanwhile
[Install]
WantedBy=multi-user.target
"""

USERDATA_UNIT = """[Unit]
Description=kiln agent: run the instance's user data once
After=network-online.target kiln-agent.service
Wants=network-online.target
ConditionPathExists=/var/lib/kiln/user-data.pending

[Service]
Type=oneshot
ExecStart=/usr/lib/kiln/kiln-agent userdata
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""

# Debian 12's ssh.service refuses to start without host keys: make them when missing. Only ed25519 and
# ECDSA: an RSA key takes seconds to generate under TCG emulation, and every current client speaks both.
SSH_DROPIN = """[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'for t in ed25519 ecdsa; do f=/etc/ssh/ssh_host_$${t}_key; \\
    [ -s $$f ] || ssh-keygen -q -t $$t -N "" -f $$f; done'
ExecStartPre=/usr/sbin/sshd -t
"""

SSHD_CONFIG = """HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

DHCP_NETWORK = """[Match]
Name=en* eth*

[Network]
DHCP=yes
"""

# The namespace runner's slirp4netns link: the addresses slirp4netns --configure sets, kept by networkd,
# and its DNS forwarder handed to systemd-resolved.
SLIRP_NETWORK = """[Match]
Name=tap0

[Network]
Address=10.0.2.100/24
Gateway=10.0.2.2
DNS=10.0.2.3
KeepConfiguration=yes
LinkLocalAddressing=no
IPv6AcceptRA=no
"""

FSTAB = "/dev/disk/by-label/root / ext4 defaults,errors=remount-ro 0 1\n"

GRUB_CFG = """set timeout=0
set default=0
menuentry "Debian GNU/Linux 12" {
    search --no-floppy --label root --set=root
    linux /vmlinuz root=LABEL=root ro console=ttyS0,115200 quiet i8042.noaux i8042.nokbd
    initrd /initrd.img
}
"""

# A small initramfs (the default takes "most" modules: 15 MB that GRUB reads and the kernel unpacks,
# slowly under emulation): only what finds a root disk on QEMU's usual disk interfaces.
INITRAMFS_CONF = "MODULES=list\n"
INITRAMFS_HOOK = """#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for module in virtio_pci virtio_blk virtio_scsi sd_mod ahci ata_piix nvme; do
    manual_add_modules "$module"
done
"""

HOSTS = "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost ip6-loopback\n"

FILES: dict[str, tuple[str, int]] = {
    "usr/lib/kiln/kiln-agent": (AGENT, 0o755),
    "etc/systemd/system/kiln-agent.service": (AGENT_UNIT, 0o644),
    "etc/systemd/system/kiln-userdata.service": (USERDATA_UNIT, 0o644),
    "etc/systemd/system/ssh.service.d/kiln-hostkeys.conf": (SSH_DROPIN, 0o644),
    "etc/ssh/sshd_config.d/kiln.conf": (SSHD_CONFIG, 0o644),
    "etc/systemd/network/80-dhcp.network": (DHCP_NETWORK, 0o644),
    "etc/systemd/network/70-kiln-slirp.network": (SLIRP_NETWORK, 0o644),
    "etc/fstab": (FSTAB, 0o644),
    "etc/hostname": ("debian\n", 0o644),
    "etc/hosts": (HOSTS, 0o644),
    "boot/grub/grub.cfg": (GRUB_CFG, 0o644),
}

# Must be in place before the kernel package builds the initramfs (an mmdebstrap essential hook).
EARLY_FILES: dict[str, tuple[str, int]] = {
    "etc/initramfs-tools/conf.d/kiln": (INITRAMFS_CONF, 0o644),
    "etc/initramfs-tools/hooks/kiln": (INITRAMFS_HOOK, 0o755),
}

# Run as (mapped) root with the root file system tree as $1 and the disk file as $2, sector count $3.
MAKE_DISK = r"""#!/bin/sh
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
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$DISK"
mkfs.ext4 -q -F -L root -b 4096 -E offset=1048576 -d "$ROOT" "$DISK" "$(((SECTORS - 2048) / 2))k"
dd if=/usr/lib/grub/i386-pc/boot.img of="$DISK" bs=440 count=1 conv=notrunc status=none
dd if="$CORE" of="$DISK" bs=512 seek=1 conv=notrunc status=none
"""
