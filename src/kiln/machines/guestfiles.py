"""Files kiln puts into its Debian base images (their content is part of the recipe hash)."""

from __future__ import annotations

#: what kiln's agent writes on the console once sshd listens and the early network is set
READY_LINE = "kiln-agent: sshd is listening"

AGENT = r"""#!/bin/sh
# kiln-agent: applies a NoCloud seed (meta-data, user-data) at boot and grows the root partition.
# Per instance (a new instance-id): new SSH host keys, user data run once. Every boot: keys, hostname.
# Written with shell builtins wherever it can: sshd waits for this script, and under TCG emulation
# every program started costs tens of milliseconds.
set -u
umask 022
STATE=/var/lib/kiln
SEED=/run/kiln/seed
DISK_SEED=/run/kiln/seed-disk  # where a seed read from a disk goes
NET_PENDING=/run/kiln/early-network.pending  # while the early network is being set
READY_LINE="@READY_LINE@"
NL='
'
CR=$(printf '\r')
log() { echo "kiln-agent: $*" >&2; }

# a small text file copied with builtins (cp is a program: a second under emulation on a cold boot)
copy_text() {
    while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line"; done <"$1" >"$2"
}

# $v without surrounding blanks and one pair of quotes
clean() {
    v=${1%"$CR"}
    while :; do case "$v" in [[:space:]]*) v=${v#?} ;; *[[:space:]]) v=${v%?} ;; *) break ;; esac; done
    case "$v" in \"*\") v=${v#?} v=${v%?} ;; \'*\') v=${v#?} v=${v%?} ;; esac
}

grow_root() {
    src=
    while read -r dev mnt _rest; do [ "$mnt" = / ] && src=$dev; done </proc/self/mounts
    case "$src" in /dev/*) ;; *) return 0 ;; esac
    [ -L "$src" ] && src=$(readlink -f "$src")
    sys=/sys/class/block/${src#/dev/}
    [ -f "$sys/partition" ] || return 0
    read -r num <"$sys/partition" && read -r start <"$sys/start" && read -r size <"$sys/size" || return 0
    cd -P "$sys/.." || return 0
    disk=${PWD##*/}
    cd /
    read -r total <"/sys/class/block/$disk/size" || return 0
    [ $((start + size + 4096)) -lt "$total" ] || return 0
    log "growing /dev/$disk partition $num to the end of the disk"
    echo ", +" | sfdisk -q --force --no-reread --no-tell-kernel -N "$num" "/dev/$disk" >/dev/null 2>&1 &&
        partx -u -n "$num" "/dev/$disk" && resize2fs "$src" >/dev/null 2>&1 || log "growing the root failed"
}

# kiln's VM runner boots the root read-write. Under a `ro` command line fsck has run by now (the
# unit's ordering) and the agent remounts the root itself rather than wait for systemd-remount-fs.
root_rw() {
    opts=
    while read -r _dev mnt _fs o _rest; do [ "$mnt" = / ] && opts=$o; done </proc/self/mounts
    case ",$opts," in *,ro,*) mount -o remount,rw / || log "cannot remount the root read-write" ;; esac
}

# the seed: a folder bound in by the namespace runner; else kiln's text bundle on a disk found by its
# serial number (kiln-seed, on NVMe) through sysfs and read with builtins alone; else a disk found by
# its label CIDATA (blkid probes every disk: over a second under emulation). A vfat seed is read with
# mtools without mounting (a mount would load three kernel modules first); iso9660 is mounted.
# Besides meta-data and user-data, kiln's seeds carry the instance's SSH host key
# (ssh_host_ed25519_key): made on the host in a millisecond, where ssh-keygen in the guest costs
# seconds under emulation, and known to kiln before the machine answers.
find_seed() {
    [ -f "$SEED/meta-data" ] && return 0
    SEED=$DISK_SEED
    [ -d "$SEED" ] || mkdir -p "$SEED"
    i=0
    while [ $i -lt 20 ]; do
        if seed_by_serial && read_bundle; then
            return 0
        fi
        if seed_by_label && read_seed_disk; then
            return 0
        fi
        i=$((i + 1))
        sleep 0.1
    done
    return 1
}

seed_by_serial() {
    for f in /sys/class/block/*/device/serial /sys/class/block/*/serial; do
        [ -f "$f" ] && read -r serial <"$f" && [ "$serial" = kiln-seed ] || continue
        f=${f#/sys/class/block/}
        dev=/dev/${f%%/*}
        [ -b "$dev" ] && return 0
    done
    return 1
}

seed_by_label() {
    for label in CIDATA cidata; do
        dev=$(blkid -c /dev/null -t "LABEL=$label" -o device 2>/dev/null) || continue
        dev=${dev%%"$NL"*}
        [ -n "$dev" ] && return 0
    done
    return 1
}

# kiln.machines.seed.bundle's format: `file NAME`, its lines (a leading "." doubled), `.`; then `end`
read_bundle() {
    if (
        umask 077
        out=
        IFS= read -r line && [ "$line" = "kiln-seed 1" ] || exit 1
        while IFS= read -r line; do
            if [ -n "$out" ]; then
                case "$line" in
                .) out= ;;
                .*) printf '%s\n' "${line#.}" >>"$out" ;;
                *) printf '%s\n' "$line" >>"$out" ;;
                esac
                continue
            fi
            case "$line" in
            "file "*)
                name=${line#file }
                case "$name" in '' | .* | */*) break ;; esac
                out=$SEED/$name
                : >"$out"
                ;;
            end) exit 0 ;;
            *) break ;;
            esac
        done
        exit 1
    ) <"$dev"; then
        log "seed: kiln bundle on $dev"
        return 0
    fi
    log "the seed on $dev is not a kiln bundle"
    return 1
}

read_seed_disk() {
    if command -v mcopy >/dev/null; then
        # one call for all of them; a seed without some of them still yields the others
        (umask 077 && MTOOLS_SKIP_CHECK=1 mcopy -n -o -i "$dev" ::meta-data ::user-data \
            ::ssh_host_ed25519_key ::resolv.conf ::early-network "$SEED/" 2>/dev/null)
        [ -f "$SEED/meta-data" ] && log "seed: CIDATA disk $dev" && return 0
    fi
    mount -o ro "$dev" "$SEED" && log "seed: CIDATA disk $dev (mounted)"
}

# This boot's address from the seed (the runner's user-mode network: the address its DHCP will lease),
# set at once so that sshd is reachable the moment it listens rather than after udev, networkd and
# DHCP. networkd keeps it beside the lease (KeepConfiguration=static). Only with net.ifnames=0: else
# udev renames the NIC later, which fails once the link is up. Run in the background: the NIC's driver
# may still be loading, and sshd does not wait for it.
early_network() {
    read -r cmdline </proc/cmdline
    case " $cmdline " in *" net.ifnames=0 "*) ;; *) return 0 ;; esac
    line=
    while read -r l; do case "$l" in '#'* | '') ;; *) line=$l ;; esac; done <"$SEED/early-network"
    set -f
    # split on purpose: the line's four words
    set -- $line
    set +f
    [ $# -eq 4 ] || { log "early-network: expected 'interface address gateway nameserver'"; return 0; }
    i=0
    while [ ! -e "/sys/class/net/$1" ]; do
        i=$((i + 1))
        [ $i -le 200 ] || { log "no $1 after 20 s: no early network"; return 0; }
        sleep 0.1
    done
    ip -force -batch - <<NET >/dev/null 2>&1 || log "early network on $1 failed"
link set $1 up
address add $2 peer $3 dev $1
route add default via $3 dev $1 proto static
route add $4 dev $1 proto static src $2
NET
}

# After sshd listens (ssh.service's ExecStartPost): once the early network is set too, say so on the
# console. kiln's VM runner reads it there and only then probes SSH quickly: each probe sent through
# the user-mode forward before the guest has its address is queued there and reaches sshd later,
# when a burst of them can push sshd past MaxStartups and drop the real login.
ready() {
    i=0
    while [ -e "$NET_PENDING" ] && [ $i -lt 300 ]; do
        i=$((i + 1))
        sleep 0.1
    done
    { echo "$READY_LINE" >/dev/console; } 2>/dev/null
    return 0
}

# meta-data: instance-id, local-hostname and the public-keys list (the YAML subset kiln writes)
read_meta() {
    iid= host= keys= inlist=
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
        instance-id:*) clean "${line#instance-id:}" && iid=$v inlist= ;;
        local-hostname:*) clean "${line#local-hostname:}" && host=$v inlist= ;;
        public-keys:*) inlist=1 ;;
        [[:space:]]*-*) [ -n "$inlist" ] && clean "${line#*-}" && keys=$keys$v$NL ;;
        *) inlist= ;;
        esac
    done <"$SEED/meta-data"
}

# the ssh_authorized_keys list of a #cloud-config user-data
read_cloud_config_keys() {
    inlist=
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
        ssh_authorized_keys:*) inlist=1 ;;
        [[:space:]]*-*) [ -n "$inlist" ] && clean "${line#*-}" && keys=$keys$v$NL ;;
        [[:space:]]*) ;;
        *) inlist= ;;
        esac
    done <"$SEED/user-data"
}

add_keys() {
    [ -d /root/.ssh ] || mkdir -m 700 /root/.ssh
    have=$NL
    if [ -f /root/.ssh/authorized_keys ]; then
        while IFS= read -r line; do have=$have$line$NL; done </root/.ssh/authorized_keys
    fi
    new=
    while IFS= read -r key; do
        [ -n "$key" ] || continue
        case "$have" in *"$NL$key$NL"*) continue ;; esac
        have=$have$key$NL new=$new$key$NL
    done <<KEYS
$keys
KEYS
    [ -n "$new" ] || return 0
    (umask 077 && printf '%s' "$new" >>/root/.ssh/authorized_keys)
}

set_hostname() {
    # /proc/sys is read-only in a namespace machine: there the hostname program (sethostname) does it
    { echo "$host" >/proc/sys/kernel/hostname; } 2>/dev/null || hostname "$host"
    echo "$host" >/etc/hostname
    hosts=
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in 127.0.1.1[[:space:]]*) ;; *) hosts=$hosts$line$NL ;; esac
    done </etc/hosts
    printf '%s127.0.1.1\t%s\n' "$hosts" "$host" >/etc/hosts
}

boot() {
    root_rw
    [ -d "$STATE" ] || mkdir -p "$STATE"
    grow_root
    find_seed || { log "no NoCloud seed found"; return 0; }
    if [ -s "$SEED/early-network" ]; then
        : >"$NET_PENDING"
        { early_network; rm -f "$NET_PENDING"; } &
    fi
    read_meta
    [ -n "$host" ] && set_hostname
    # the runner's DNS forwarder, until systemd-resolved starts and replaces this file with its own
    if [ -s "$SEED/resolv.conf" ] && [ ! -e /run/systemd/resolve/stub-resolv.conf ]; then
        [ -d /run/systemd/resolve ] || mkdir -p /run/systemd/resolve
        copy_text "$SEED/resolv.conf" /run/systemd/resolve/stub-resolv.conf
    fi
    old=
    [ -f "$STATE/instance-id" ] && read -r old <"$STATE/instance-id"
    if [ "$iid" != "$old" ]; then
        log "new instance $iid"
        set -- /etc/ssh/ssh_host_*
        [ -e "$1" ] && rm -f "$@"
        if [ -s "$SEED/ssh_host_ed25519_key" ]; then
            umask 077
            copy_text "$SEED/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
            umask 022
        fi
        if [ -s "$SEED/user-data" ]; then
            cp "$SEED/user-data" "$STATE/user-data"
            first=
            read -r first <"$STATE/user-data"
            case "$first" in '#!'*) : >"$STATE/user-data.pending" ;; esac
        fi
        echo "$iid" >"$STATE/instance-id"
    fi
    if [ -s "$SEED/user-data" ]; then
        first=
        read -r first <"$SEED/user-data"
        case "$first" in '#cloud-config'*) read_cloud_config_keys ;; esac
    fi
    add_keys
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
ready) ready ;;
userdata) userdata ;;
esac
exit 0
""".replace("@READY_LINE@", READY_LINE)

AGENT_UNIT = """[Unit]
Description=kiln agent: NoCloud seed (SSH keys, hostname), root partition growth
DefaultDependencies=no
After=systemd-journald.socket systemd-fsck-root.service
Before=ssh.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/kiln/kiln-agent boot
# made by systemd before the agent starts: no mkdir program on sshd's path (the seed's files are 0600;
# resolved takes its folder over when it starts)
RuntimeDirectory=kiln/seed-disk systemd/resolve
RuntimeDirectoryPreserve=yes

# not part of sysinit.target: only sshd waits for the agent, the rest of the boot goes on meanwhile
[Install]
WantedBy=multi-user.target
"""

USERDATA_UNIT = """[Unit]
Description=kiln agent: run the instance's user data once
After=network-online.target nss-lookup.target kiln-agent.service
Wants=network-online.target
ConditionPathExists=/var/lib/kiln/user-data.pending

[Service]
Type=oneshot
ExecStart=/usr/lib/kiln/kiln-agent userdata
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""

# Debian 12's ssh.service, replaced whole: a drop-in cannot remove its default dependencies on
# sysinit.target and basic.target, nor its After=network.target. sshd listens on the wildcard address,
# so it needs neither a network nor the rest of the boot: only a writable root and the agent's host
# key, authorized keys and hostname. Everything else boots beside it. Not even systemd-resolved (3-6 s
# later under emulation): a provisioner's first `apt-get update` resolves names through the runner's
# DNS forwarder, which the agent hands to resolv.conf until resolved starts (see kiln.machines.seed).
# No `sshd -t` pre-check: sshd checks its configuration when it starts anyway, and under emulation each
# process before the first banner costs. Once sshd listens the agent says so on the console (`ready`).
SSH_UNIT = """[Unit]
Description=OpenBSD Secure Shell server
Documentation=man:sshd(8) man:sshd_config(5)
DefaultDependencies=no
Wants=kiln-agent.service kiln-hostkey.service
After=kiln-agent.service kiln-hostkey.service
Conflicts=shutdown.target
Before=shutdown.target
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Service]
EnvironmentFile=-/etc/default/ssh
ExecStart=/usr/sbin/sshd -D $SSHD_OPTS
ExecStartPost=-/usr/lib/kiln/kiln-agent ready
ExecReload=/usr/sbin/sshd -t
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
Restart=on-failure
RestartPreventExitStatus=255
Type=notify
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755

[Install]
WantedBy=multi-user.target
Alias=sshd.service
"""

# Debian's sshd refuses to start without host keys. Kiln's seeds carry one; this makes it when a seed
# did not (the condition is checked by systemd: no process at all when the key is there). Only ed25519:
# an RSA key takes seconds under emulation, and every current client speaks ed25519.
HOSTKEY_UNIT = """[Unit]
Description=kiln: SSH host key of a new instance
DefaultDependencies=no
After=kiln-agent.service
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
"""

SSHD_CONFIG = """HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

# KeepConfiguration=static: networkd leaves the agent's early address and routes (see kiln-agent) in
# place when it takes the link over, instead of dropping them under an open SSH session.
DHCP_NETWORK = """[Match]
Name=en* eth*

[Network]
DHCP=yes
KeepConfiguration=static
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

# net.ifnames=0: the first NIC is eth0, as on Alibaba Cloud's own images (and the agent's early network
# needs a name that udev does not change after the link is up). GRUB writes to the serial port too: a
# machine without a display shows GRUB's errors in its console log.
GRUB_CFG = """serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
menuentry "Debian GNU/Linux 12" {
    search --no-floppy --label root --set=root
    linux /vmlinuz root=LABEL=root ro net.ifnames=0 console=ttyS0,115200 quiet i8042.noaux i8042.nokbd
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

# The network card's drivers, loaded by systemd-modules-load at the start of the boot rather than by
# udev's coldplug of every device much later (seconds under emulation, with no initramfs to load them):
# QEMU's and most clouds' network is virtio. On other hardware the modules load and find nothing.
MODULES_LOAD = "virtio_pci\nvirtio_net\n"

HOSTS = "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost ip6-loopback\n"

FILES: dict[str, tuple[str, int]] = {
    "usr/lib/kiln/kiln-agent": (AGENT, 0o755),
    "etc/systemd/system/kiln-agent.service": (AGENT_UNIT, 0o644),
    "etc/systemd/system/kiln-userdata.service": (USERDATA_UNIT, 0o644),
    "etc/systemd/system/ssh.service": (SSH_UNIT, 0o644),
    "etc/systemd/system/kiln-hostkey.service": (HOSTKEY_UNIT, 0o644),
    "etc/ssh/sshd_config.d/kiln.conf": (SSHD_CONFIG, 0o644),
    "etc/systemd/network/80-dhcp.network": (DHCP_NETWORK, 0o644),
    "etc/systemd/network/70-kiln-slirp.network": (SLIRP_NETWORK, 0o644),
    "etc/fstab": (FSTAB, 0o644),
    "etc/hostname": ("debian\n", 0o644),
    "etc/hosts": (HOSTS, 0o644),
    "etc/modules-load.d/kiln-virtio.conf": (MODULES_LOAD, 0o644),
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
mkdir -p -m 700 "$ROOT/root/.ssh"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$DISK"
mkfs.ext4 -q -F -L root -b 4096 -E offset=1048576 -d "$ROOT" "$DISK" "$(((SECTORS - 2048) / 2))k"
dd if=/usr/lib/grub/i386-pc/boot.img of="$DISK" bs=440 count=1 conv=notrunc status=none
dd if="$CORE" of="$DISK" bs=512 seek=1 conv=notrunc status=none
"""
