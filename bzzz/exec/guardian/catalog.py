"""The programs and variables the Guardian knows by name: wrappers, shells, downloaders,
decoders; the categories refused outright (escalation, disk tools, power, kernel and system
configuration, package changes); the programs that write; the builtins that run nothing; the
variables that carry code or change every program; and ``category``, the refusal of a
program for what it is. The rules by program are in ``bzzz/exec/guardian/programs.py``.
"""

from __future__ import annotations

WRAPPERS = {"env", "nohup", "nice", "ionice", "time", "timeout", "stdbuf", "command",
            "builtin", "exec", "setsid", "unbuffer", "chronic", "caffeinate", "taskset", "chrt",
            "flock", "strace", "ltrace", "busybox", "toybox", "coproc", "xvfb-run",
            "dbus-run-session", "fakeroot", "watch", "sudo", "doas", "catchsegv", "nocache"}
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "fish", "csh", "tcsh", "ash",
          "yash", "posh", "rbash", "lksh", "oksh"}
DOWNLOADERS = {"curl", "wget", "fetch", "aria2c", "http", "https", "httpie", "lwp-request",
               "GET", "nc", "ncat", "netcat", "socat", "telnet", "ftp", "tftp", "scp", "sftp",
               "ssh", "openssl", "xh", "curlie", "lynx", "w3m", "links"}
DECODERS = {"base64", "base32", "basenc", "xxd", "od", "uudecode", "openssl", "gpg", "rev",
            "tr", "gunzip", "zcat", "gzip", "bzcat", "bzip2", "xz", "xzcat", "unxz", "zstd",
            "zstdcat", "brotli", "python", "python3", "perl", "ruby", "node", "printf", "awk",
            "sed"}
ESCALATION = {"sudo", "su", "doas", "pkexec", "runuser", "chroot", "setpriv", "capsh",
              "setcap", "nsenter", "unshare", "sudoedit", "gosu", "su-exec", "sg", "newgrp",
              "machinectl", "systemd-run", "run0", "suexec", "ksu", "calife", "super"}
DISK_TOOLS = {"fdisk", "sfdisk", "cfdisk", "gdisk", "sgdisk", "parted", "partprobe", "wipefs",
              "mount", "umount", "swapon", "swapoff", "mkswap", "losetup", "cryptsetup",
              "blkdiscard", "hdparm", "debugfs", "tune2fs", "resize2fs", "e2fsck", "fsck",
              "lvremove", "vgremove", "pvremove", "lvcreate", "vgcreate", "pvcreate", "zpool",
              "zfs", "mdadm", "dmsetup", "nvme", "sg_format", "flashrom", "badblocks",
              "xfs_repair", "btrfs", "fstrim", "blockdev", "kpartx", "mount.nfs"}
POWER = {"shutdown", "reboot", "halt", "poweroff", "init", "telinit", "killall5", "kexec"}
KERNEL = {"modprobe", "insmod", "rmmod", "depmod", "iptables", "ip6tables", "iptables-restore",
          "ip6tables-restore", "ebtables", "arptables", "nft", "ufw", "firewall-cmd",
          "crontab", "at", "batch", "visudo", "passwd", "useradd", "userdel", "usermod",
          "groupadd", "groupdel", "groupmod", "gpasswd", "adduser", "deluser", "chpasswd",
          "chsh", "chfn", "setenforce", "auditctl", "hwclock", "timedatectl", "hostnamectl",
          "update-rc.d", "chkconfig", "launchctl", "ldconfig", "tc", "ifdown", "ifup",
          "sysrq", "swapoff", "vipw", "pwck", "grpck", "pam-auth-update", "update-grub",
          "grub-install", "efibootmgr", "dracut", "mkinitramfs", "update-initramfs"}
PACKAGE_TOOLS = {"apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "rpm", "apk", "pacman",
                 "zypper", "snap", "flatpak", "emerge", "port", "pkg", "brew"}
PACKAGE_VERBS = {"install", "remove", "purge", "erase", "upgrade", "dist-upgrade", "-i", "-r",
                 "-P", "--install", "--remove", "--purge", "add", "del", "-S", "-R", "-U",
                 "autoremove", "reinstall", "-e", "--erase", "update", "full-upgrade"}
WRITERS = {"cp", "mv", "ln", "install", "rsync", "tee", "truncate", "touch", "mkdir", "rmdir",
           "chmod", "chown", "chgrp", "chattr", "setfacl", "sed", "patch", "unzip", "tar",
           "cpio", "shred", "unlink", "split", "sort", "curl", "wget", "git", "7z", "7za",
           "dd", "perl", "mkfifo", "mknod", "link", "csplit", "gzip", "gunzip", "xz",
           "bzip2"}
NOOP_BUILTINS = {"cd", "pushd", "popd", "dirs", "export", "set", "unset", "true", "false",
                 ":", "test", "[", "[[", "exit", "return", "shift", "local", "declare",
                 "typeset", "readonly", "wait", "read", "break", "continue", "echo", "printf",
                 "shopt", "umask", "type", "hash", "getopts", "let", "pwd"}

ENV_CODE = {"GIT_SSH_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_EDITOR",
            "EDITOR", "VISUAL", "PAGER", "GIT_PAGER", "MANPAGER", "BROWSER", "GIT_SEQUENCE_EDITOR",
            "PROMPT_COMMAND", "LESSOPEN", "LESSCLOSE"}
ENV_FORBIDDEN = {"LD_PRELOAD": "loads a library into every program",
                 "LD_AUDIT": "loads a library into every program",
                 "BASH_ENV": "runs a file in every shell", "ENV": "runs a file in every shell",
                 "SHELLOPTS": "changes every shell", "BASHOPTS": "changes every shell",
                 "GCONV_PATH": "loads code into every program",
                 "DYLD_INSERT_LIBRARIES": "loads a library into every program"}


def category(name: str, args: list[str]) -> str | None:
    """Why a program is refused for what it is, whatever it is asked to do."""
    if name in ESCALATION:
        return f"privilege escalation ({name})"
    if name in DISK_TOOLS or name.startswith(("mkfs", "mke2fs", "mkswap", "fsck.")):
        return f"disk or filesystem tool ({name})"
    if name in POWER:
        return f"stops the machine ({name})"
    if name in KERNEL:
        return f"changes the system configuration ({name})"
    if name in PACKAGE_TOOLS and any(a in PACKAGE_VERBS for a in args):
        return f"changes the system's packages ({name})"
    return None
