packer {
  required_plugins {
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = "~> 1"
    }
  }
}

variable "iso_checksum" {
  type    = string
  default = "none"
}

variable "iso_url" {
  type    = string
  default = ""
}

source "qemu" "debian" {
  boot_command     = ["e<down><down><end>", " url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/install.sh<f10>"]
  boot_wait        = "1s"
  cpus             = 2
  disk_interface   = "virtio"
  disk_size        = "4G"
  format           = "qcow2"
  headless         = true
  http_directory   = "http"
  iso_checksum     = "${var.iso_checksum}"
  iso_url          = "${var.iso_url}"
  machine_type     = "pc"
  memory           = 1024
  net_device       = "virtio-net"
  output_directory = "output-debian"
  shutdown_command = "systemctl poweroff"
  ssh_password     = "kilnroot"
  ssh_timeout      = "20m"
  ssh_username     = "root"
  vm_name          = "debian.qcow2"
}

build {
  sources = ["source.qemu.debian"]

  provisioner "shell" {
    inline = ["echo \"built by ${build.name} from the installer ISO\" > /etc/kiln-iso-build", "cat /etc/kiln-iso-build"]
  }

}
