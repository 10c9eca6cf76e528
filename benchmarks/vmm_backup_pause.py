# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""vmm_backup of a running VM: how long the VM is paused, and bytes copied against the disk's size.

A fresh lab; a 4G base with 64M of data (written by qemu-io) and, per size, a running VM on an overlay of
it into which --sizes MiB were written (qemu-io, before the VM starts). Each VM is backed up once by the
module as Ansible runs it (its own Python process, arguments in a JSON file). Recorded per size: the
pause (the module's `paused_seconds`: only the top image is copied while paused), the whole run, the
backup image's bytes on disk, the overlay's bytes (what the pause copies) and the virtual size; written
to benchmarks/results/vmm_backup.json. The script exits 1 when the VM is not running after its backup,
the backup has a base, or its data reads back wrong (qemu-io). Measurement only: nothing asserts a time.

    .venv/bin/python benchmarks/vmm_backup_pause.py [--sizes 0 16 64 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

from _bench import ROOT, checkout_lab_env, collection_module, run_module

RESULTS = os.path.join(ROOT, 'benchmarks', 'results', 'vmm_backup.json')
MIB = 1024 * 1024


def qemu_io(*args):
    subprocess.run(['qemu-io'] + list(args), check=True, capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[0, 16, 64, 256], help='MiB written into each overlay')
    options = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory(prefix='vmm-backup-bench-') as workdir:
        lab_root, env = checkout_lab_env(workdir)
        vmm_vm, vmm_backup = (collection_module(os.path.join(workdir, 'ansible_collections'), name) for name in ('vmm_vm', 'vmm_backup'))
        subprocess.run(['lab', 'init'], env=env, check=True)
        subprocess.run(['lab', 'vmd', 'start'], env=env, check=True)
        try:
            disks, dest = os.path.join(lab_root, 'vmm'), os.path.join(lab_root, 'backups')
            os.makedirs(disks)
            os.makedirs(dest)
            vm_conf = os.path.join(lab_root, 'etc', 'vm.conf')
            subprocess.run(['vmctl', 'create', '-s', '4G', 'base.qcow2'], cwd=disks, env=env, check=True, capture_output=True)
            qemu_io('-c', 'write -P 0x11 0 64M', os.path.join(disks, 'base.qcow2'))
            for size in options.sizes:
                name = 'bk%d' % size
                overlay = os.path.join(disks, name + '.qcow2')
                subprocess.run(['vmctl', 'create', '-b', 'base.qcow2', overlay], cwd=disks, env=env, check=True, capture_output=True)
                if size:
                    qemu_io('-c', 'write -P 0x5a 1G %dM' % size, overlay)
                run_module(vmm_vm, workdir, env, dict(name=name, memory='64M', disks=[overlay], interfaces=[dict(local=True)],
                                                      state='running', vm_conf=vm_conf, dev_dir=os.path.join(lab_root, 'dev')))
                result, seconds = run_module(vmm_backup, workdir, env, dict(name=name, dest=dest, vm_conf=vm_conf))
                image = os.path.join(result['backup'], 'disk0.qcow2')
                info = json.loads(subprocess.run(['qemu-img', 'info', '--output=json', image], check=True, capture_output=True,
                                                 text=True).stdout)
                if 'backing-filename' in info:
                    raise SystemExit('the backup of %s has a base' % name)
                checks = [('0x11', '0', '64M')] + ([('0x5a', '1G', '%dM' % size)] if size else [])
                for pattern, offset, length in checks:
                    read = subprocess.run(['qemu-io', '-r', '-c', 'read -P %s %s %s' % (pattern, offset, length), image],
                                          check=True, capture_output=True, text=True).stdout
                    if 'Pattern verification failed' in read:
                        raise SystemExit('the backup of %s does not read back its data at %s' % (name, offset))
                status = subprocess.run(['vmctl', 'status', name], env=env, check=True, capture_output=True, text=True).stdout
                if ' running %s' % name not in status:
                    raise SystemExit('%s is not running after its backup:\n%s' % (name, status))
                record = dict(written_mib=size, overlay_bytes=os.path.getsize(overlay), paused_seconds=result['paused_seconds'],
                              run_seconds=round(seconds, 3), backup_bytes=os.path.getsize(image),
                              virtual_size=result['manifest']['disks'][0]['virtual_size'],
                              vmctl_calls=len(result['commands']))
                records.append(record)
                print('%4d MiB written: paused %.3f s (overlay %d bytes), run %.2f s, backup %d bytes of %d virtual (%.1f %%), '
                      '%d vmctl calls' % (size, record['paused_seconds'], record['overlay_bytes'], record['run_seconds'],
                                          record['backup_bytes'], record['virtual_size'],
                                          100.0 * record['backup_bytes'] / record['virtual_size'], record['vmctl_calls']))
        finally:
            subprocess.run(['lab', 'vmd', 'stop'], env=env, check=False)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, 'w') as handle:
        json.dump(dict(benchmark='vmm_backup_pause', machine=dict(cpus=os.cpu_count(), python=platform.python_version()),
                       when=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), base_data_mib=64, sizes=records),
                  handle, indent=2)
        handle.write('\n')


if __name__ == '__main__':
    main()
