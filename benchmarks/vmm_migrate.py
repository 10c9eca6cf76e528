# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""playbooks/migrate.yml between lab hosts: each VM's downtime, and bytes copied against its disk's size.

A fresh lab with three hosts; on vmm1 a 4G base with 64M of data (qemu-io) and, per size and transfer, a running VM
on an overlay of it into which --sizes MiB were written. Per transfer (--transfers), one migrate.yml run moves its
VMs, in name order: `controller` to vmm2 (each copy fetched to the controller, then copied), `ssh` to vmm3 (its
vmm_migrate_ssh_host: vmm_disk_send on vmm1 pipes each file through the lab's ssh to vmm3).
Recorded per VM from the journal's step times: the downtime (from the end of `base_ready`, when the stop begins,
to `answering`, running on the target), the whole move, the bytes sent while the VM was down (the blocks of its
overlay that changed after the overlay's pre-copy, or the overlay when it had none) and while it ran (the base,
copied once: only the first VM's move copies it, and the pre-copy of the overlay), as the journal records them
(`sent_bytes`), against the disk's virtual size;
written to benchmarks/results/vmm_migrate.json. Exits 1 when a VM does not run on vmm2 afterwards or its data
reads back wrong. Measurement only: nothing asserts a time.

    .venv/bin/python benchmarks/vmm_migrate.py [--sizes 0 16 64 256] [--transfers controller ssh]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from _bench import ROOT, checkout_lab_env, collection_module, run_module

RESULTS = os.path.join(ROOT, 'benchmarks', 'results', 'vmm_migrate.json')
MIB = 1024 * 1024


def qemu_io(*args):
    return subprocess.run(['qemu-io'] + list(args), check=True, capture_output=True, text=True).stdout


def when(stamp):
    return datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S.%fZ').timestamp()


# each transfer's target host, and the prefix of its VMs' names
TRANSFERS = {'controller': ('vmm2', 'mig'), 'ssh': ('vmm3', 'ssh')}


def migrate(env, workdir, inventory, transfer, names):
    """One migrate.yml run moving ``names`` to the transfer's host; (its start time, its journal's moves)."""
    journal = os.path.join(workdir, 'journal-%s.json' % transfer)
    started = time.time()
    process = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory,
         os.path.join(ROOT, 'playbooks', 'migrate.yml'), '-e', json.dumps(dict(
             migrate_from='vmm1', migrate_to=TRANSFERS[transfer][0], migrate_vms=names, migrate_journal=journal))],
        env=dict(env, ANSIBLE_COLLECTIONS_PATH=workdir), capture_output=True, text=True, check=False)
    if process.returncode:
        raise SystemExit('migrate.yml (%s) failed:\n%s' % (transfer, process.stdout[-3000:]))
    return started, json.load(open(journal, encoding='utf-8'))['moves']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[0, 16, 64, 256], help='MiB written into each overlay')
    parser.add_argument('--transfers', nargs='+', choices=sorted(TRANSFERS), default=['controller', 'ssh'])
    options = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    records = []
    with tempfile.TemporaryDirectory(prefix='vmm-migrate-bench-') as workdir:
        env = checkout_lab_env(workdir)[1]
        # sibling lab roots: the lab's ssh reaches a host of the same base by its name
        roots = {host: os.path.join(workdir, host) for host in ('vmm1', 'vmm2', 'vmm3')}
        for root in roots.values():
            subprocess.run(['lab', 'init'], env=dict(env, VMM_LAB_ROOT=root), check=True)
            subprocess.run(['lab', 'vmd', 'start'], env=dict(env, VMM_LAB_ROOT=root), check=True)
            os.makedirs(os.path.join(root, 'var', 'vmm'))
        try:
            source_env = dict(env, VMM_LAB_ROOT=roots['vmm1'])
            disks = os.path.join(roots['vmm1'], 'var', 'vmm')
            subprocess.run(['vmctl', 'create', '-s', '4G', 'base.qcow2'], cwd=disks, env=source_env, check=True, capture_output=True)
            qemu_io('-c', 'write -P 0x11 0 64M', os.path.join(disks, 'base.qcow2'))
            vmm_vm = collection_module(os.path.join(workdir, 'ansible_collections'), 'vmm_vm')
            names = {transfer: [] for transfer in options.transfers}
            written = {}
            for transfer in options.transfers:
                for size in options.sizes:
                    name = '%s%d' % (TRANSFERS[transfer][1], size)
                    overlay = os.path.join(disks, name + '.qcow2')
                    subprocess.run(['vmctl', 'create', '-b', 'base.qcow2', name + '.qcow2'], cwd=disks, env=source_env,
                                   check=True, capture_output=True)
                    if size:
                        qemu_io('-c', 'write -P 0x5a 1G %dM' % size, overlay)
                    run_module(vmm_vm, workdir, source_env, dict(
                        name=name, memory='64M', disks=[overlay], interfaces=[dict(local=True)], state='running',
                        vm_conf=os.path.join(roots['vmm1'], 'etc', 'vm.conf'), dev_dir=os.path.join(roots['vmm1'], 'dev')))
                    names[transfer].append(name)
                    written[name] = size
            overlay_bytes = {name: os.path.getsize(os.path.join(disks, name + '.qcow2')) for name in written}
            base_bytes = os.path.getsize(os.path.join(disks, 'base.qcow2'))
            inventory = os.path.join(workdir, 'inventory.yml')
            with open(inventory, 'w', encoding='utf-8') as handle:
                json.dump({'all': {'children': {'vmm_hosts': {'hosts': {
                    host: dict({'lab_root': root}, **({'vmm_migrate_ssh_host': host} if host == TRANSFERS['ssh'][0] else {}))
                    for host, root in roots.items()}}}, 'vars': {
                    'ansible_connection': 'local', 'ansible_become': False,
                    'ansible_python_interpreter': os.path.join(ROOT, 'tests', 'lab', 'bin', 'python3-openbsd'),
                    'vmm_environment': {'VMM_LAB_ROOT': '{{ lab_root }}'}, 'vmm_vm_conf': '{{ lab_root }}/etc/vm.conf',
                    'vmm_host_dev_dir': '{{ lab_root }}/dev', 'vmm_disk_dir': '{{ lab_root }}/var/vmm'}}}, handle)
            for transfer in options.transfers:
                target_host = TRANSFERS[transfer][0]
                started, moves = migrate(env, workdir, inventory, transfer, names[transfer])
                status = subprocess.run(['vmctl', 'status'], env=dict(env, VMM_LAB_ROOT=roots[target_host]), check=True,
                                        capture_output=True, text=True).stdout
                previous = started
                # the moves run in the journal's (name) order; each move's whole time runs from the end of the one before
                for name in sorted(names[transfer], key=lambda vm, moves=moves: when(moves[vm]['times']['done'])):
                    size = written[name]
                    times = {step: when(stamp) for step, stamp in moves[name]['times'].items()}
                    target = os.path.join(roots[target_host], 'var', 'vmm', name + '.qcow2')
                    running = any(line.split()[-1:] == [name] and ' running ' in line for line in status.splitlines())
                    intact = 'read 65536/65536' in qemu_io('-r', '-U', '-c', 'read -P 0x11 0 64k', target) and (
                        not size or 'read 65536/65536' in qemu_io('-r', '-U', '-c', 'read -P 0x5a 1G 64k', target))
                    if not (running and intact):
                        raise SystemExit('%s: running on %s %s, data intact %s' % (name, target_host, running, intact))
                    sent = moves[name]['sent_bytes']
                    records.append(dict(
                        vm=name, transfer=transfer, written_mib=size, virtual_size=4 << 30,
                        downtime_seconds=round(times['answering'] - times['base_ready'], 3),
                        # the downtime's parts: vmm_vm stop, the copy, vmm_vm define and start, the check
                        stop_seconds=round(times['stopped'] - times['base_ready'], 3),
                        copy_seconds=round(times['copied'] - times['stopped'], 3),
                        define_seconds=round(times['defined'] - times['copied'], 3),
                        answer_seconds=round(times['answering'] - times['defined'], 3),
                        move_seconds=round(times['done'] - previous, 3),
                        overlay_bytes=overlay_bytes[name],
                        bytes_while_down=int(sent['while_down']),
                        bytes_while_running=int(sent['while_running']),
                        copied_percent_of_disk=round(100.0 * (int(sent['while_down']) + int(sent['while_running'])) / (4 << 30), 2)))
                    previous = times['done']
        finally:
            for root in roots.values():
                subprocess.run(['lab', 'vmd', 'stop'], env=dict(env, VMM_LAB_ROOT=root), check=False, capture_output=True)
    result = dict(benchmark='vmm_migrate', machine=platform.machine(), python=platform.python_version(),
                  cpus=os.cpu_count(), load_before=load_before, base_bytes=base_bytes, records=records)
    with open(RESULTS, 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=2)
        handle.write('\n')
    for record in records:
        print('%(vm)s (%(transfer)s): %(written_mib)d MiB written, down %(downtime_seconds).2f s (stop %(stop_seconds).2f, '
              'copy %(copy_seconds).2f, define %(define_seconds).2f, check %(answer_seconds).2f), move %(move_seconds).2f s, '
              '%(bytes_while_down)d bytes while down, %(bytes_while_running)d while running' % record)


if __name__ == '__main__':
    main()
