"""kiln's installer ISO and the qemu builder's ISO mode, without booting anything: the initramfs's
module order, the recipe hash, the answer file, the VM runner's QEMU arguments for an install, and the
options' checks. (test_iso_build.py boots it.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.errors import MachineError
from kiln.machines import guestfiles, installer
from kiln.machines.qemu import VirtualMachine
from kiln.machines.spec import Install, MachineSpec

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "qemu" / "iso"


def test_modules_load_after_what_they_need_and_builtins_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(
        "kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko\n"
        "kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko\n"
        "kernel/drivers/scsi/scsi_mod.ko:\n"
        "kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_mod.ko\n"
        "kernel/drivers/cdrom/cdrom.ko:\n"
    )
    (tmp_path / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    order = installer.module_order(tmp_path, ["ata_piix", "sr_mod", "ext4"])
    names = [Path(path).name for path in order]
    assert names == ["scsi_mod.ko", "libata.ko", "ata_piix.ko", "cdrom.ko", "sr_mod.ko"]
    with pytest.raises(MachineError, match="no module ahci"):
        installer.module_order(tmp_path, ["ahci"])


def test_the_iso_hash_follows_its_files(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = installer.ISO_RECIPES["debian-12-installer"]
    before = installer.iso_hash(recipe)
    assert installer.iso_hash(recipe) == before
    changed = dict(guestfiles.INSTALLER_FILES)
    changed["init"] = (changed["init"][0] + "# changed\n", 0o755)
    monkeypatch.setattr(guestfiles, "INSTALLER_FILES", changed)
    assert installer.iso_hash(recipe) != before


def test_the_menu_waits_and_the_init_takes_url_from_the_command_line() -> None:
    grub = guestfiles.INSTALLER_FILES["grub.cfg"][0]
    assert "set timeout=-1" in grub.splitlines()
    init = guestfiles.INSTALLER_FILES["init"][0]
    assert "url=*) url=${arg#url=}" in init and "reboot -f" in init


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_example_answer_file_passes_shellcheck() -> None:
    done = subprocess.run(
        ["shellcheck", str(EXAMPLE / "http" / "install.sh")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_an_install_machine_boots_the_cd_once_onto_blank_disks(tmp_path: Path) -> None:
    iso = tmp_path / "installer.iso"
    iso.write_bytes(b"\0" * 2048)
    install = Install(disk_size="4G", extra_disks=("1G",), vnc="127.0.0.1:7", machine_type="pc")
    spec = MachineSpec(image=iso, work_dir=tmp_path / "vm", install=install, disk_interface="virtio")
    machine = VirtualMachine(spec)
    try:
        machine._prepare_disk()
        argv = machine._argv(["-accel", "tcg"])
        assert argv[argv.index("-machine") + 1] == "pc"
        assert argv[argv.index("-boot") + 1] == "once=d"
        assert f"file={iso},media=cdrom,readonly=on" in argv
        assert argv[argv.index("-vnc") + 1] == "127.0.0.1:7"
        assert not any("seed.img" in arg for arg in argv) and "-kernel" not in argv
        disks = [arg for arg in argv if arg.startswith("file=") and "if=virtio" in arg]
        assert [Path(d.split(",")[0][5:]).name for d in disks] == ["disk.qcow2", "disk-1.qcow2"]
        info = subprocess.run(
            ["qemu-img", "info", str(tmp_path / "vm" / "disk.qcow2")], capture_output=True, text=True
        )
        assert "virtual size: 4 GiB" in info.stdout
    finally:
        machine.destroy()
    assert not (tmp_path / "vm").exists()


def test_uefi_gets_ovmf_and_its_own_variable_store(tmp_path: Path) -> None:
    from kiln.machines.qemu_install import OVMF_CODE, OVMF_VARS

    if not OVMF_CODE.exists():
        pytest.skip("ovmf is not installed")
    iso = tmp_path / "installer.iso"
    iso.write_bytes(b"\0" * 2048)
    install = Install(disk_size="1G", efi_code=OVMF_CODE, efi_vars=OVMF_VARS)
    machine = VirtualMachine(MachineSpec(image=iso, work_dir=tmp_path / "vm", install=install))
    try:
        machine._prepare_disk()
        argv = " ".join(machine._argv(["-accel", "tcg"]))
        assert f"if=pflash,unit=0,format=raw,readonly=on,file={OVMF_CODE}" in argv
        assert f"if=pflash,unit=1,format=raw,file={tmp_path / 'vm' / 'efivars.fd'}" in argv
        assert (tmp_path / "vm" / "efivars.fd").read_bytes() == OVMF_VARS.read_bytes()
    finally:
        machine.destroy()


def kiln(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiln", *args], cwd=cwd, capture_output=True, text=True)


def test_the_example_validates_in_both_formats_and_bad_sizes_are_located(tmp_path: Path) -> None:
    for name in ("debian.json", "debian.pkr.hcl"):
        done = kiln("validate", "-var", f"iso_url={EXAMPLE / 'http' / 'install.sh'}", name, cwd=EXAMPLE)
        assert done.returncode == 0, done.stdout + done.stderr
    bad = (EXAMPLE / "debian.json").read_text().replace('"disk_size": "4G"', '"disk_size": "4 gigs"')
    (tmp_path / "bad.json").write_text(bad)
    done = kiln("validate", "-var", "iso_url=x.iso", "bad.json", cwd=tmp_path)
    assert done.returncode == 1
    assert 'disk_size: "4 gigs" is not a size such as 20G or 40960M' in done.stderr


def test_packer_sizes_for_blank_disks() -> None:
    from kiln.builders.qemu.config import QemuConfig

    cfg = QemuConfig.__new__(QemuConfig)
    assert cfg.blank_disk_size("") == "40960M"
    assert cfg.blank_disk_size("20480") == "20480M"
    assert cfg.blank_disk_size("20g") == "20G"


def test_an_iso_takes_no_size() -> None:
    done = kiln("baseimage", "build", "debian-12-installer", "--size", "4G", cwd=REPO)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == "Error: --size: debian-12-installer is an ISO, not a disk"
