#!/usr/bin/env bash
# mmdebstrap customize hook of image/build (runs on the build host): $1 the arm64 root, $2 image/build's
# work directory (hw/ from the hardware render, overlays/*.dtbo, hooks.env, the .deb).
set -euo pipefail
R=$1 W=$2
. "$W/hooks.env"
. "$(dirname "$0")/common.sh"  # CACHE_DIR
say() { printf '  customize: %s\n' "$*" >&2; }

say "hostname, fstab, network, logs"
echo "$HOSTNAME_" >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$HOSTNAME_" >"$R/etc/hosts"
cat >"$R/etc/fstab" <<FSTAB
# stratum1 image: the partitions by label (the card is the same on every Pi).
# The boot partition is checked and mounted as ever, but 'nofail': the appliance serves without
# waiting for it (nothing before the NTP server reads it), and a damaged FAT does not stop the boot.
LABEL=RASPIROOT  /              ext4  rw,noatime,errors=remount-ro       0 1
LABEL=RASPIFIRM  /boot/firmware vfat  rw,noatime,umask=0022,nofail       0 2
FSTAB

say "the board: config.txt lines, kernel command line, udev rules, ntp.conf"
# raspi-firmware regenerates config.txt and cmdline.txt from these at every kernel update.
cat >>"$R/etc/default/raspi-firmware" <<DEFAULTS

# stratum1 image: root by label; the console on the screen only (the GPS has the UART).
ROOTPART=LABEL=RASPIROOT
CONSOLES="tty0"
DEFAULTS
cp "$W/hw/config.txt" "$R/etc/default/raspi-firmware-custom"
install -D -m 0644 "$W/hw/ntp.conf" "$R/etc/stratum1/ntp.conf"
if [ -f "$W/hw/udev/99-stratum1.rules" ]; then
  install -D -m 0644 "$W/hw/udev/99-stratum1.rules" "$R/etc/udev/rules.d/99-stratum1.rules"
fi
install -D -m 0644 "$W/hw/profile.json" "$R/etc/stratum1/profile.json"
# i2c-dev for the status LCD (nothing else loads it; pps-gpio loads itself from the overlay)
if [ -f "$W/hw/modules-load.d/stratum1.conf" ]; then
  install -D -m 0644 "$W/hw/modules-load.d/stratum1.conf" "$R/etc/modules-load.d/stratum1.conf"
fi
# A `pool` line in a user's ntp.conf needs names resolved.
ln -sf ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"

say "SSH: keys only, host keys made on the device, the build's key if given"
# (essential.sh's empty placeholders, which kept openssh-server's postinst from making keys)
rm -f "$R"/etc/ssh/ssh_host_*
if [ -f "$W/authorized_keys" ]; then
  install -d -m 0700 "$R/root/.ssh"
  install -m 0600 "$W/authorized_keys" "$R/root/.ssh/authorized_keys"
fi
# No password for any account: '*' (no login by password) where a hash or nothing was.
awk -F: 'BEGIN { OFS = ":" } { if ($2 == "" || $2 ~ /^\$/) $2 = "*"; print }' "$R/etc/shadow" >"$R/etc/shadow.new"
cat "$R/etc/shadow.new" >"$R/etc/shadow" && rm "$R/etc/shadow.new"

say "units: the appliance, first boot, networkd, resolved, fake-hwclock"
for u in stratum1.service stratum1-growroot.service stratum1-sshkeys.service ssh.service systemd-networkd.service; do
  chroot "$R" systemctl enable "$u" >/dev/null 2>&1 || { echo "cannot enable $u" >&2; exit 1; }
done
chroot "$R" systemctl enable systemd-resolved.service >/dev/null 2>&1 || say "warning: cannot enable systemd-resolved.service"
# fake-hwclock: bookworm's package had one fake-hwclock.service; trixie's has fake-hwclock-load.service
# (at boot) and fake-hwclock-save.service with its timer (hourly and at shutdown), enabled by its own
# postinst, and ships fake-hwclock.service masked (so `systemctl enable fake-hwclock` fails). Enable
# whichever units of this version have an [Install] section and say which.
hw_units=$(cd "$R/usr/lib/systemd/system" && ls fake-hwclock*.service fake-hwclock*.timer 2>/dev/null | tr '\n' ' ' || true)
[ -n "$hw_units" ] || { echo "fake-hwclock ships no systemd unit" >&2; exit 1; }
for u in $hw_units; do
  grep -q '^\[Install\]' "$R/usr/lib/systemd/system/$u" || continue
  chroot "$R" systemctl enable "$u" >/dev/null 2>&1 || { echo "cannot enable $u" >&2; exit 1; }
done
say "fake-hwclock units: $hw_units($(chroot "$R" systemctl is-enabled $hw_units 2>/dev/null | tr '\n' ' ' || true))"
# The status readers' units (stratum1-lcd, -web, -exporter) need settings first (the web page and the
# exporter a --listen address, the LCD a display on the I2C bus and its options): enabled unconfigured, they
# fail and restart every 5 s for ever, a Python start each time. The package leaves them disabled
# (debian/rules); the build stops if one came out enabled. docs/display.md says how to set one up.
for u in stratum1-lcd.service stratum1-web.service stratum1-exporter.service; do
  if [ -e "$R/usr/lib/systemd/system/$u" ] && chroot "$R" systemctl is-enabled --quiet "$u" 2>/dev/null; then
    echo "$u is enabled in the image: the package should leave it disabled (debian/rules)" >&2
    exit 1
  fi
done
chroot "$R" systemctl mask serial-getty@ttyAMA0.service serial-getty@serial0.service >/dev/null 2>&1
# systemd's ssh generator looks for AF_VSOCK (virtual machines) and fails on a Pi; ssh.service is enabled.
ln -sf /dev/null "$R/etc/systemd/system-generators/systemd-ssh-generator" 2>/dev/null ||
  { mkdir -p "$R/etc/systemd/system-generators" && ln -sf /dev/null "$R/etc/systemd/system-generators/systemd-ssh-generator"; }
# The clock starts near the build's date (no RTC on a Pi; fake-hwclock keeps the last shutdown's).
date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S' >"$R/etc/fake-hwclock.data"

say "kernel modules indexed natively (depmod)"
# essential.sh diverted depmod while packages were configured (the kernel's postinst runs it: minutes
# under emulation over ~4000 xz-compressed modules). The index (modules.dep and the .bin files beside
# it: the same format on every architecture) is made by the build host's depmod (package kmod,
# image/install-build-deps), with the root's own depmod.d configuration; update-initramfs (below) needs it.
kver=$(basename "$(ls -d "$R"/usr/lib/modules/* | sort -V | tail -n 1)")
if [ -e "$R/usr/sbin/depmod.stratum1" ] || [ -L "$R/usr/sbin/depmod.stratum1" ]; then
  rm -f "$R/usr/sbin/depmod"
  chroot "$R" dpkg-divert --quiet --local --rename --divert /usr/sbin/depmod.stratum1 --remove /usr/sbin/depmod
fi
[ -x "$R/usr/sbin/depmod" ] || { echo "no /usr/sbin/depmod in the root after the diversion" >&2; exit 1; }
confs=()
for d in "$R/etc/depmod.d" "$R/usr/lib/depmod.d"; do
  [ ! -d "$d" ] || confs+=(-C "$d")
done
[ ${#confs[@]} -gt 0 ] || confs=(-C /dev/null)
host_depmod=$(PATH=/usr/sbin:/sbin:$PATH command -v depmod || true)
if [ -n "$host_depmod" ] && "$host_depmod" -a -b "$R" "${confs[@]}" -F "$R/boot/System.map-$kver" "$kver" &&
  [ -s "$R/usr/lib/modules/$kver/modules.dep.bin" ]; then
  say "modules.dep: $(wc -l <"$R/usr/lib/modules/$kver/modules.dep") modules by $host_depmod"
  # kmod 34 (trixie's) also writes modules.weakdep; bookworm's depmod (30) predates weak dependencies.
  # Debian's 6.12 modules declare none (the emulated depmod wrote the header alone): the same file.
  [ -e "$R/usr/lib/modules/$kver/modules.weakdep" ] ||
    echo '# Weak dependencies extracted from modules themselves.' >"$R/usr/lib/modules/$kver/modules.weakdep"
else
  say "no usable depmod on the host: indexing the modules under emulation"
  chroot "$R" depmod -a -F "/boot/System.map-$kver" "$kver"
fi

say "initramfs: once, with a short module list (under emulation it is the slow part)"
rm -f "$R/usr/sbin/update-initramfs"
chroot "$R" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.stratum1 --remove /usr/sbin/update-initramfs
cat >"$R/etc/initramfs-tools/conf.d/stratum1.conf" <<CONF
# stratum1 image: only the modules that find the root file system (SD card; virtio for the boot test).
MODULES=list
COMPRESS=zstd
CONF
cat >>"$R/etc/initramfs-tools/modules" <<MODS
# stratum1 image: Raspberry Pi SD card (Pi 3: sdhost/sdhci-iproc; Pi 4: emmc2) and the root fs
ext4
crc32c_generic
mmc_block
sdhci_iproc
bcm2835
bcm2835_dma
clk_raspberrypi
raspberrypi_cpufreq
reset_raspberrypi
pwrseq_simple
# qemu -M virt (image/boot-test)
virtio_mmio
virtio_pci
virtio_blk
virtio_net
virtio_console
MODS
chroot "$R" update-initramfs -c -k "$kver" >"$W/initramfs.log" 2>&1 || { tail -n 30 "$W/initramfs.log"; exit 1; }
ls "$R"/boot/firmware/initrd.img* >/dev/null 2>&1 ||
  { tail -n 30 "$W/initramfs.log"; echo "raspi-firmware put no initrd on /boot/firmware" >&2; exit 1; }
cp "$W/initramfs.log" "$R/var/log/stratum1-image-initramfs.log" 2>/dev/null || true

say "udev's hardware database, compiled natively"
# essential.sh diverted systemd-hwdb while packages were configured. The database (hwdb.d text to
# hwdb.bin, the same format on every architecture) is compiled by the build host's systemd-hwdb: the
# host's own (package udev) or, where udev is not installed, the one in the host's udev .deb, unpacked
# privately into the download cache (nothing is installed). Under emulation it would take minutes.
if [ -e "$R/usr/bin/systemd-hwdb.stratum1" ]; then
  rm -f "$R/usr/bin/systemd-hwdb"
  chroot "$R" dpkg-divert --quiet --local --rename --divert /usr/bin/systemd-hwdb.stratum1 --remove /usr/bin/systemd-hwdb
fi
if [ ! -s "$R/usr/lib/udev/hwdb.bin" ]; then
  hwdb=$(command -v systemd-hwdb || true)
  if [ -z "$hwdb" ]; then
    tools=$CACHE_DIR/host-udev
    mkdir -p "$tools"
    ls "$tools"/udev_*.deb >/dev/null 2>&1 || (cd "$tools" && apt-get download -q udev >/dev/null 2>&1) || true
    deb=$(ls "$tools"/udev_*.deb 2>/dev/null | tail -n 1 || true)
    if [ -n "$deb" ]; then
      rm -rf "$W/host-udev" && dpkg-deb -x "$deb" "$W/host-udev"
      hwdb=$(ls "$W"/host-udev/usr/bin/systemd-hwdb "$W"/host-udev/bin/systemd-hwdb 2>/dev/null | head -n 1 || true)
    fi
  fi
  if [ -n "$hwdb" ] && "$hwdb" --root "$R" --usr update && [ -s "$R/usr/lib/udev/hwdb.bin" ]; then
    say "hwdb.bin: $(stat -c %s "$R/usr/lib/udev/hwdb.bin") bytes by $hwdb"
  else
    say "no usable systemd-hwdb on the host: compiling hwdb.bin under emulation"
    chroot "$R" systemd-hwdb --usr update
  fi
fi
[ -s "$R/usr/lib/udev/hwdb.bin" ] || { echo "no /usr/lib/udev/hwdb.bin in the root" >&2; exit 1; }

say "overlays"
install -d "$R/boot/firmware/overlays" "$R/usr/lib/stratum1-image/overlays"
for o in "$W"/overlays/*.dtbo; do
  [ -e "$o" ] || continue
  install -m 0644 "$o" "$R/boot/firmware/overlays/"
  install -m 0644 "$o" "$R/usr/lib/stratum1-image/overlays/"
done

say "first boot: systemd's update jobs already done by the build"
# ldconfig, the journal catalog and udev's hwdb were brought up to date by the packages' own scripts
# here; stamp /etc and /var as systemd-update-done does, so that ConditionNeedsUpdate does not run them
# again at the first boot (under emulation, and on a Pi's SD card, that is time before serving).
usr_ns=$(stat -c %.9Y "$R/usr" | tr -d .)
for d in etc var; do
  printf 'TIMESTAMP_NSEC=%s\n' "$usr_ns" >"$R/$d/.updated"
  touch -r "$R/usr" "$R/$d/.updated"
done

say "empty machine-id, no build leftovers"
# dpkg's force-unsafe-io (image/build: no fsync for every file it unpacks) was for the build only: a
# Pi that loses power during an upgrade needs dpkg's safe writes. The path filters stay (no man pages).
sed -i '/^force-unsafe-io$/d' "$R/etc/dpkg/dpkg.cfg.d/99mmdebstrap"
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id" "$R"/tmp/*.deb "$R/tmp/hooks.env" "$R/tmp/stratum1-install.log"
rm -f "$R"/var/cache/apt/archives/*.deb
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/log/apt/* "$R/var/cache/debconf/"*-old
