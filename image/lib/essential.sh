#!/usr/bin/env bash
# mmdebstrap essential hook of image/build (runs on the build host once the essential packages are in,
# before the rest is installed): $1 the arm64 root. Work that would only be thrown away, done under
# emulation, is skipped here:
# - update-initramfs is diverted to /bin/true: the kernel's postinst and the initramfs-tools trigger
#   would each build an initramfs with every module (minutes under emulation); customize.sh builds
#   the one the image keeps, once, with a short module list.
# - systemd-hwdb is diverted to /bin/true: udev's postinst compiles the hardware database with it,
#   minutes under emulation; customize.sh compiles it natively with the host's systemd-hwdb (seconds).
# - depmod is diverted to /bin/true: the kernel's postinst indexes its ~4000 compressed modules with it
#   (one to three minutes under emulation); customize.sh runs the build host's depmod on them (seconds)
#   before the initramfs is made.
# - empty placeholders for the SSH host keys, so openssh-server's postinst generates none (an RSA key
#   under emulation takes a while): the image must ship no host key anyway; customize.sh removes the
#   placeholders and the device makes its own keys at its first boot (stratum1-sshkeys.service).
set -euo pipefail
R=$1
chroot "$R" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.stratum1 \
  --add /usr/sbin/update-initramfs
ln -sf /bin/true "$R/usr/sbin/update-initramfs"
chroot "$R" dpkg-divert --quiet --local --rename --divert /usr/bin/systemd-hwdb.stratum1 --add /usr/bin/systemd-hwdb
ln -sf /bin/true "$R/usr/bin/systemd-hwdb"
# (kmod is not installed yet: its depmod goes to the diverted name when it is unpacked)
chroot "$R" dpkg-divert --quiet --local --rename --divert /usr/sbin/depmod.stratum1 --add /usr/sbin/depmod
ln -sf /bin/true "$R/usr/sbin/depmod"
mkdir -p "$R/etc/ssh"
for t in rsa ecdsa ed25519; do
  : >"$R/etc/ssh/ssh_host_${t}_key"
done
