# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper: one JSON snapshot of what the lab and the docroot hold (one task instead of many).

  lab_check.py LABSIM_DIR [--file PATH] [--content PATH] [--record DISK[=PASSWORD]]
               [--tgz-member TGZ=MEMBER] [--status VM] [--console VM]

--record reads the install record the lab's installer wrote into DISK; with =PASSWORD it also
says whether the recorded root password hash is a bcrypt hash of PASSWORD (passlib).
"""

import grp
import json
import os
import subprocess
import sys
import tarfile


def tgz_member(archive_path, member_name):
    with tarfile.open(archive_path, 'r:gz') as archive:
        for member in archive.getmembers():
            if member.name.lstrip('./') == member_name:
                return archive.extractfile(member).read().decode()
    return None


def status_of(name):
    """(state) of VM name from `vmctl status`, or None if vmd does not list it."""
    output = subprocess.run(['vmctl', 'status'], capture_output=True, text=True, check=False).stdout
    for line in output.splitlines()[1:]:
        words = line.split()
        if words and words[-1] == name:
            return words[-2]
    return None


def main(argv):
    sys.path.insert(0, argv[0])
    from labsim.installer import read_install_record  # pylint: disable=import-error,import-outside-toplevel
    snapshot = dict(files={}, content={}, records={}, members={}, status={}, console={})
    pairs = list(zip(argv[1::2], argv[2::2]))
    for option, value in pairs:
        if option == '--file':
            if os.path.exists(value):
                stat = os.stat(value)
                snapshot['files'][value] = dict(exists=True, mode='%04o' % (stat.st_mode & 0o7777),
                                                group=grp.getgrgid(stat.st_gid).gr_name)
            else:
                snapshot['files'][value] = dict(exists=False, mode=None, group=None)
        elif option == '--content':
            with open(value, encoding='utf-8') as handle:
                snapshot['content'][value] = handle.read()
        elif option == '--record':
            disk, _sep, password = value.partition('=')
            record = read_install_record(disk)
            if record is not None and password:
                from passlib.hash import bcrypt  # pylint: disable=import-outside-toplevel
                record['root_password_verifies'] = bcrypt.verify(password, record['root_password_hash'])
            snapshot['records'][disk] = record
        elif option == '--tgz-member':
            archive_path, _sep, member_name = value.partition('=')
            snapshot['members'][value] = tgz_member(archive_path, member_name)
        elif option == '--status':
            snapshot['status'][value] = status_of(value)
        elif option == '--console':
            snapshot['console'][value] = subprocess.run(['lab', 'console-log', value], capture_output=True,
                                                        text=True, check=False).stdout
        else:
            sys.stderr.write('unknown option %s\n' % option)
            return 2
    print(json.dumps(snapshot))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
