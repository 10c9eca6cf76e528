"""A lab guest's state follows its disk (labsim.guestnet save_disk_state / read_disk_state), as on OpenBSD.

What a guest did (its guest dir's etc, root, home, var) is saved into its first disk when its VM process
ends and comes back when that disk boots, on any lab root and under any name: a disk copied to another
vmm host (migrate.yml) or restored from a backup under another name boots with everything the guest did.
Skipped, with `lab net-check`'s reason, where network namespaces cannot be made.
"""

import hashlib
import os
import shutil
import stat
import uuid

import pytest

from labsim import guestnet, images, installer
from test_guestnet import NET_REASON, address_of, fixture_key, ssh  # noqa: F401  pylint: disable=unused-import

pytestmark = pytest.mark.skipif(NET_REASON is not None, reason=NET_REASON or "")

DISK_BYTES = 64 * 1024 * 1024


def installed_disk(lab, name, hostname, key, size=DISK_BYTES, **record):
    """A raw disk the simulated installer could have left (MBR and install record), of `size` bytes."""
    disk = lab.disk(name + ".img", size)
    installer._write_disk(disk, 0, installer._mbr(size // 512))  # pylint: disable=protected-access
    content = {"kernel": "/bsd", "hostname": hostname, "release": "7.8", "arch": "amd64", "sshd": True,
               "permit_root_login": "prohibit-password", "root_authorized_keys": key[1],
               "installurl": "http://192.0.2.99/pub/OpenBSD"}
    content.update(record)
    installer.write_install_record(disk, content)
    return disk


def boot(lab, disk, name):
    """Start `name` on `disk`; its address once the guest is at `login:`."""
    result = lab.vmctl("start", "-L", "-d", disk, name)
    assert result.rc == 0, result
    lab.wait_for(lambda: lab.console(name).endswith("login: "), timeout=30)
    return address_of(lab, name)[0]


def stop(lab, name, how="-w"):
    if how == "vmd":
        assert lab.lab("vmd", "stop").rc == 0
        assert lab.lab("vmd", "start").rc == 0
    else:
        assert lab.vmctl("stop", how, name).rc == 0
    lab.wait_for(lambda: lab.row(name) is None)


def change_guest(lab, address, key, token):
    """What guest_firstboot and a user would do: /etc/myname, a file in /etc, a user with a key, a removed file."""
    user = "u" + token[:7]
    script = ("echo %(t)s.example.org > /etc/myname && echo %(t)s > /etc/%(t)s && rm /etc/installurl && "
              "useradd -m %(u)s && mkdir -m 700 /home/%(u)s/.ssh && printf '%%s\\n' '%(k)s' > /home/%(u)s/.ssh/authorized_keys && "
              "chmod 600 /home/%(u)s/.ssh/authorized_keys && chown -R %(u)s /home/%(u)s/.ssh && echo changed"
              % {"t": token, "u": user, "k": key[1].strip()})
    result = ssh(lab, address, key, script)
    assert (result.rc, result.out) == (0, "changed\n"), result
    return user


def what_the_guest_has(lab, address, key, token, user):
    script = ("hostname; cat /etc/%(t)s 2>/dev/null || echo no file; test -e /etc/installurl && echo installurl; "
              "id -u %(u)s >/dev/null 2>&1 && stat -c %%U:%%a /home/%(u)s/.ssh/authorized_keys && "
              "cat /home/%(u)s/.ssh/authorized_keys; true" % {"t": token, "u": user})
    result = ssh(lab, address, key, script)
    assert result.rc == 0, result
    return result.out


def test_disk_state_layout_does_not_overlap_the_install_record():
    assert guestnet.STATE_OFFSET >= installer.RECORD_OFFSET + installer.RECORD_AREA
    assert guestnet.STATE_OFFSET % images.CLUSTER_SIZE == 0


@pytest.mark.parametrize("how", ["-w", "-f", "vmd"])
def test_what_the_guest_did_follows_its_disk_to_another_lab_root_and_name(lab_factory, key, how):
    first, second = lab_factory(), lab_factory()
    disk = installed_disk(first, "mover", "mover.my.domain", key)
    token = uuid.uuid4().hex
    address = boot(first, disk, "mover")
    user = change_guest(first, address, key, token)
    # a file of the machine's /etc (an overlay's lower dir) removed on the guest: an overlayfs whiteout
    machines = next(path for path in ("/etc/debian_version", "/etc/issue", "/etc/hostname") if os.path.exists(path))
    # ... and a directory of it removed and made again: an opaque directory (xattr trusted.overlay.opaque)
    assert ssh(first, address, key, "rm %s && rm -r /etc/default && mkdir /etc/default && touch /etc/default/mine && echo ok"
               % machines).out == "ok\n"
    stop(first, "mover", how)
    assert guestnet.read_disk_state(disk) is not None
    # The other host had a guest of the name the disk arrives under: what it did is not the arriving disk's.
    other = installed_disk(second, "other", "other.my.domain", key)
    assert ssh(second, boot(second, other, "moved"), key, "touch /etc/other-guest && echo ok").out == "ok\n"
    stop(second, "moved")
    shutil.copyfile(disk, second.path("moved.img"))
    address = boot(second, second.path("moved.img"), "moved")
    assert what_the_guest_has(second, address, key, token, user) == (
        "%s.example.org\n%s\n%s:600\n%s" % (token, token, user, key[1]))
    assert ssh(second, address, key, "test -e /etc/other-guest || echo gone; test -e %s || echo removed" % machines).out == (
        "gone\nremoved\n")
    assert ssh(second, address, key, "ls -A /etc/default").out == "mine\n"
    # the removed file is an overlayfs whiteout (a 0/0 character device) in the new guest dir
    info = os.lstat(second.path("guests", "moved", machines.lstrip("/")))
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(0, 0)
    # ... and the host key came with the disk
    with open(first.path("guests", "mover", "etc", "ssh", "ssh_host_ed25519_key.pub"), encoding="ascii") as handle:
        first_key = handle.read()
    with open(second.path("guests", "moved", "etc", "ssh", "ssh_host_ed25519_key.pub"), encoding="ascii") as handle:
        assert handle.read() == first_key


def test_a_disk_without_saved_state_boots_from_its_install_record(lab, key, tmp_path):
    disk = installed_disk(lab, "plain1", "plain1.my.domain", key)
    pristine = str(tmp_path / "pristine.img")
    shutil.copyfile(disk, pristine)
    assert guestnet.read_disk_state(disk) is None
    address = boot(lab, disk, "plain1")
    assert what_the_guest_has(lab, address, key, "none", "nobody-here") == "plain1.my.domain\nno file\ninstallurl\n"
    token = uuid.uuid4().hex
    change_guest(lab, address, key, token)
    stop(lab, "plain1")
    assert guestnet.read_disk_state(disk) is not None
    # the same name on a copy made before the guest ever ran: the guest dir holds another disk's state
    assert guestnet.read_disk_state(pristine) is None
    address = boot(lab, pristine, "plain1")
    assert what_the_guest_has(lab, address, key, token, "nobody-here") == "plain1.my.domain\nno file\ninstallurl\n"
    stop(lab, "plain1", "-f")
    # ... and the first disk again: its own state
    address = boot(lab, disk, "plain1")
    assert ssh(lab, address, key, "cat /etc/%s" % token).out == token + "\n"


def test_a_qcow2_overlay_keeps_the_state_and_its_base_is_not_written(lab, key):
    raw = installed_disk(lab, "base", "base.my.domain", key)
    for argv in (("create", "-i", raw, lab.path("base.qcow2")), ("create", "-b", lab.path("base.qcow2"), lab.path("top1.qcow2")),
                 ("create", "-b", lab.path("base.qcow2"), lab.path("top2.qcow2"))):
        result = lab.vmctl(*argv)
        assert result.rc == 0, result
    with open(lab.path("base.qcow2"), "rb") as handle:
        base_sum = hashlib.sha256(handle.read()).hexdigest()
    token = uuid.uuid4().hex
    change_guest(lab, boot(lab, lab.path("top1.qcow2"), "top1"), key, token)
    stop(lab, "top1")
    assert guestnet.read_disk_state(lab.path("top1.qcow2")) is not None
    assert guestnet.read_disk_state(lab.path("base.qcow2")) is None
    with open(lab.path("base.qcow2"), "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == base_sum
    # another overlay of the same base has only what the base has
    address = boot(lab, lab.path("top2.qcow2"), "top2")
    assert what_the_guest_has(lab, address, key, token, "nobody-here") == "base.my.domain\nno file\ninstallurl\n"


# A lab-only safeguard: on OpenBSD the guest's files are its file system, which no disk too small for it
# could hold. The lab's small test disks carry only the install record (below STATE_OFFSET): the guest's
# state then stays beside the disk only, as before the lab saved it (same lab root, same name).
def test_a_disk_too_small_for_the_saved_state_keeps_it_beside_the_disk_only(lab_factory, key):
    first, second = lab_factory(), lab_factory()
    size = guestnet.STATE_OFFSET
    disk = installed_disk(first, "small1", "small1.my.domain", key, size=size)
    token = uuid.uuid4().hex
    user = change_guest(first, boot(first, disk, "small1"), key, token)
    stop(first, "small1")
    assert guestnet.read_disk_state(disk) is None
    assert os.path.getsize(disk) == size
    address = boot(first, disk, "small1")
    assert ssh(first, address, key, "cat /etc/%s" % token).out == token + "\n"
    stop(first, "small1")
    shutil.copyfile(disk, second.path("small1.img"))
    address = boot(second, second.path("small1.img"), "small1")
    assert what_the_guest_has(second, address, key, token, user) == "small1.my.domain\nno file\ninstallurl\n"


# A lab-only safeguard: a real guest's file system is checked by fsck, not by a checksum; here a saved
# region that does not match its sha256 (a partial write, something else written over it) would restore a
# truncated archive into the guest dir, so the lab ignores it and seeds the guest from the install record.
def test_a_corrupted_saved_state_is_ignored_and_the_install_record_used(lab, key):
    disk = installed_disk(lab, "bad1", "bad1.my.domain", key)
    token = uuid.uuid4().hex
    user = change_guest(lab, boot(lab, disk, "bad1"), key, token)
    stop(lab, "bad1")
    saved = guestnet.read_disk_state(disk)
    assert saved is not None
    offset = guestnet.STATE_OFFSET + guestnet.STATE_HEADER + 100
    images.write_data(disk, offset, bytes([images.read_data(disk, offset, 1)[0] ^ 0xff]))
    assert guestnet.read_disk_state(disk) is None
    address = boot(lab, disk, "bad2")
    assert what_the_guest_has(lab, address, key, token, user) == "bad1.my.domain\nno file\ninstallurl\n"


def test_read_disk_state_of_odd_disks(tmp_path):
    missing = str(tmp_path / "missing.img")
    assert guestnet.read_disk_state(missing) is None
    blank = str(tmp_path / "blank.img")
    with open(blank, "wb") as handle:
        handle.truncate(DISK_BYTES)
    assert guestnet.read_disk_state(blank) is None
    # a header whose length runs past the disk's end
    images.write_data(blank, guestnet.STATE_OFFSET, guestnet.STATE_MAGIC + b" 1 %d %s\n" % (DISK_BYTES, b"0" * 64))
    assert guestnet.read_disk_state(blank) is None


def test_newfs_by_the_installer_clears_the_saved_state(tmp_path):
    disk = str(tmp_path / "reinstalled.img")
    with open(disk, "wb") as handle:
        handle.truncate(DISK_BYTES)
    payload = b"not really a tar, but its sha256 matches"
    assert guestnet.write_disk_state(disk, payload) == hashlib.sha256(payload).hexdigest()
    assert guestnet.read_disk_state(disk) == (hashlib.sha256(payload).hexdigest(), payload)
    installer.clear_install_record(disk)
    assert guestnet.read_disk_state(disk) is None


def test_a_sealed_disk_makes_new_host_keys_at_every_boot(lab_factory, key):
    """/etc/rc runs make_keys (ssh-keygen -A) at every boot, not only the first: a guest whose host key was removed
    (build_image.yml's seal) answers SSH with a new one when its disk boots again, here or copied elsewhere."""
    first, second = lab_factory(), lab_factory()
    disk = installed_disk(first, "sealed", "sealed.my.domain", key)
    address = boot(first, disk, "sealed")
    before = ssh(first, address, key, "cat /etc/ssh/ssh_host_ed25519_key.pub")
    assert before.rc == 0, before
    assert ssh(first, address, key, "rm -f /etc/ssh/ssh_host_* && echo sealed").out == "sealed\n"
    stop(first, "sealed")
    address = boot(first, disk, "sealed")       # a reboot on the same lab root
    again = ssh(first, address, key, "cat /etc/ssh/ssh_host_ed25519_key.pub")
    assert again.rc == 0 and again.out.startswith("ssh-ed25519 ") and again.out != before.out, again
    assert ssh(first, address, key, "rm -f /etc/ssh/ssh_host_* && echo sealed").out == "sealed\n"
    stop(first, "sealed")
    shutil.copyfile(disk, second.path("clone.img"))     # a clone of the sealed disk elsewhere
    address = boot(second, second.path("clone.img"), "clone")
    clone = ssh(second, address, key, "cat /etc/ssh/ssh_host_ed25519_key.pub")
    assert clone.rc == 0 and clone.out.startswith("ssh-ed25519 ") and clone.out not in (before.out, again.out), clone
