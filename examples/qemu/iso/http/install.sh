#!/bin/sh
# The answer file of examples/qemu/iso: installs Debian 12 from kiln's installer ISO onto the machine's
# blank disk. The ISO's live system runs it (url=http://HOST:PORT/install.sh on the kernel command line;
# or type `curl -fsS http://HOST:PORT/install.sh | sh` in its root shell) and reboots when it exits 0.
# It partitions the disk (MBR, one bootable ext4 partition), copies the live system's pristine Debian
# root (/run/live/rootfs) onto it, installs GRUB into the disk's MBR, sets root's password and lets sshd
# accept it, and has the installed system take its address by DHCP.
set -eu
ROOT_PASSWORD=kilnroot
HOSTNAME=debian

# the first disk that is not the installer's disc
MEDIUM=$(findmnt -n -o SOURCE /run/live/medium || true)
DISK=""
for candidate in /dev/vda /dev/sda /dev/nvme0n1 /dev/xvda; do
    if [ -b "$candidate" ] && [ "$candidate" != "$MEDIUM" ]; then
        DISK=$candidate
        break
    fi
done
[ -n "$DISK" ] || { echo "install.sh: no disk to install onto" >&2; exit 1; }
case "$DISK" in *nvme*) PART=${DISK}p1 ;; *) PART=${DISK}1 ;; esac
echo "install.sh: installing Debian onto $DISK"

printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$DISK"
udevadm settle 2>/dev/null || sleep 1
mkfs.ext4 -q -F -L root "$PART"
mkdir -p /target
mount "$PART" /target
cp -a /run/live/rootfs/. /target/
UUID=$(blkid -s UUID -o value "$PART")

echo "UUID=$UUID / ext4 errors=remount-ro 0 1" >/target/etc/fstab
echo "$HOSTNAME" >/target/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$HOSTNAME" >/target/etc/hosts
cat >/target/etc/systemd/network/80-dhcp.network <<'NETWORK'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NETWORK
systemctl --root=/target enable -q systemd-networkd.service
cat >/target/etc/ssh/sshd_config.d/install.conf <<'SSHD'
PermitRootLogin yes
PasswordAuthentication yes
UseDNS no
SSHD
ssh-keygen -q -t ed25519 -N "" -f /target/etc/ssh/ssh_host_ed25519_key
ssh-keygen -q -t ecdsa -N "" -f /target/etc/ssh/ssh_host_ecdsa_key
echo "root:$ROOT_PASSWORD" | chroot /target chpasswd

# GRUB in the disk's MBR; its menu boots at once, on the serial console too
grub-install --target=i386-pc --boot-directory=/target/boot "$DISK"
cat >/target/boot/grub/grub.cfg <<GRUB
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "Debian GNU/Linux 12" {
    search --no-floppy --fs-uuid --set=root $UUID
    linux /vmlinuz root=UUID=$UUID ro console=tty0 console=ttyS0,115200 net.ifnames=0
    initrd /initrd.img
}
GRUB

umount /target
echo "install.sh: done"
