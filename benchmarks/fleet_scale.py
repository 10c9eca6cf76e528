# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""playbooks/provision.yml at 1, 10, 40 and 80 guests per host on two lab hosts: wall time and vmctl calls.

For each size: two fresh lab hosts made ready by playbooks/host.yml, one golden image (built once,
copied), a fleet file from tests/integration/targets/playbook_fleet/make_fleet.py (guests on a
switch, static DHCP leases, SSH with the image's key). Measured, each in the same run:
  first    provision.yml, one run from nothing to every guest answering SSH with its first-boot
           configuration; split by play (benchmarks/callback_plugins/play_times.py) into the host side
           (to every console at login:) and the first boot over SSH. Made --first-runs times (default 3),
           each on a fresh lab: the median run is recorded with the plays' split, every run's time beside it
  no-op    provision.yml again (changed=0), and the vmctl calls each host saw (the lab's vmctl log)
  per-task the host side written with one vmm_disk and one vmm_vm task run per guest
           (benchmarks/files/provision_per_guest.yml) on the same converged fleet: its no-op
Written: benchmarks/results/fleet_scale.json and fleet_scale.png (matplotlib). Exits 1 when a no-op
changed something or asked vmctl more than once per host. Nothing here asserts a time: the ratios
and counts are what to compare.

    make bench        # or: PATH=.venv/bin:$PATH .venv/bin/python benchmarks/fleet_scale.py [--sizes 1,10,40,80] [--first-runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_BIN = os.path.join(ROOT, 'tests', 'lab', 'bin')
MAKE_FLEET = os.path.join(ROOT, 'tests', 'integration', 'targets', 'playbook_fleet', 'make_fleet.py')
RESULTS = os.path.join(ROOT, 'benchmarks', 'results')
HOSTS = ('vmm1', 'vmm2')


class Lab:
    """Two lab hosts under one base directory, as the playbook_fleet target makes them."""

    def __init__(self, base, collections):
        self.base = base
        self.env = dict(os.environ, VMM_LAB_BASE=base, PATH=LAB_BIN + os.pathsep + os.environ['PATH'],
                        ANSIBLE_COLLECTIONS_PATH=collections, LAB_PYTHON=os.path.join(LAB_BIN, 'python3-openbsd'),
                        ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_PIPELINING='True', ANSIBLE_FORKS='20',
                        ANSIBLE_NOCOLOR='1', ANSIBLE_INVENTORY_ENABLED='openbsd.vmm.vmm,yaml',
                        ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, 'benchmarks', 'callback_plugins'),
                        ANSIBLE_CALLBACKS_ENABLED='play_times',
                        PLAY_TIMES_FILE=os.path.join(base, 'play_times.json'))
        self.fleet = os.path.join(base, 'inventory', 'fleet.vmm.yml')

    def on(self, host, *argv):
        env = dict(self.env, VMM_LAB_ROOT=os.path.join(self.base, host))
        return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout

    def start(self, per_host):
        for host in HOSTS:
            self.on(host, 'lab', 'init')
            self.on(host, 'lab', 'vmd', 'start')
            self.on(host, 'lab', 'mirror', os.path.join(self.base, host, 'mirror'), '7.8', 'amd64')
            shutil.copy(os.path.join(LAB_BIN, 'MAKEDEV'), os.path.join(self.base, host, 'dev'))
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', os.path.join(self.base, 'id_ed25519')],
                       check=True)
        subprocess.run([sys.executable, MAKE_FLEET, os.path.join(self.base, 'inventory'), str(per_host)], check=True)

    def stop(self):
        for host in HOSTS:
            try:
                self.on(host, 'lab', 'vmd', 'stop')
            except subprocess.CalledProcessError:
                pass

    def play(self, playbook, *extra):
        """Run a playbook; (seconds, {host: changed count})."""
        started = time.monotonic()
        process = subprocess.run(['ansible-playbook', '-i', self.fleet, playbook] + list(extra), env=self.env,
                                 capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if process.returncode:
            raise SystemExit('%s failed:\n%s\n%s' % (playbook, process.stdout[-6000:], process.stderr[-3000:]))
        changed = {host: int(count) for host, count in
                   re.findall(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)', process.stdout, re.MULTILINE)}
        return elapsed, changed

    def play_times(self):
        """[[play name, seconds], ...] of the last run."""
        with open(self.env['PLAY_TIMES_FILE'], encoding='utf-8') as times:
            return json.load(times)

    def vmctl_calls(self, host):
        with open(os.path.join(self.base, host, 'lab', 'vmctl.calls'), encoding='utf-8') as log:
            return sum(1 for _line in log)


def golden_image(workdir, collections):
    """Build the golden image once (vmm1 of a lab of its own) and return its path and manifest."""
    lab = Lab(os.path.join(workdir, 'golden'), collections)
    os.makedirs(lab.base)
    lab.start(0)
    try:
        lab.play(os.path.join(ROOT, 'playbooks', 'host.yml'), '--limit', 'vmm1')
        lab.play(os.path.join(ROOT, 'playbooks', 'build_image.yml'), '--limit', 'vmm1')
    finally:
        lab.stop()
    image = os.path.join(lab.base, 'vmm1', 'var', 'vmm', 'golden.qcow2')
    return image, image + '.manifest.json', os.path.join(lab.base, 'id_ed25519')


def provisioned_lab(workdir, name, collections, per_host, golden):
    """A fresh lab of two hosts made ready by host.yml, the golden image on each, and provision.yml's first run on
    it, as an operator starts it; (the lab, its seconds, its plays split into the host side and the first boot)."""
    image, manifest, key = golden
    lab = Lab(os.path.join(workdir, name), collections)
    os.makedirs(lab.base)
    lab.start(per_host)
    # the image carries the first key: every size logs in with it
    for suffix in ('', '.pub'):
        shutil.copy(key + suffix, os.path.join(lab.base, 'id_ed25519' + suffix))
    try:
        lab.play(os.path.join(ROOT, 'playbooks', 'host.yml'))
        for host in HOSTS:
            os.makedirs(os.path.join(lab.base, host, 'var', 'vmm'), exist_ok=True)
            for path in (image, manifest):
                shutil.copy(path, os.path.join(lab.base, host, 'var', 'vmm'))
        # its plays split it into the host side (VMs defined, running, at login:) and the guests' first boot over
        # SSH (and the state file)
        first, _changed = lab.play(os.path.join(ROOT, 'playbooks', 'provision.yml'))
    except BaseException:
        lab.stop()
        raise
    plays = lab.play_times()
    first_boot = sum(seconds for name, seconds in plays if name.startswith(('Configure the new guests', 'Record the fleet')))
    return lab, first, first_boot, plays


def measure(workdir, collections, per_host, golden, first_runs=1):
    # other work on the machine shows here (the 1-minute load average as this size starts)
    load_before = os.getloadavg()[0]
    # the first run repeated on fresh labs (first_runs in all): one run's time varies by several seconds here
    firsts = []
    for attempt in range(1, first_runs):
        lab, first, first_boot, plays = provisioned_lab(workdir, 'size%d-%d' % (per_host, attempt), collections, per_host, golden)
        lab.stop()
        firsts.append((first, first_boot, plays))
    lab, first, first_boot, plays = provisioned_lab(workdir, 'size%d' % per_host, collections, per_host, golden)
    firsts.append((first, first_boot, plays))
    try:
        provision = os.path.join(ROOT, 'playbooks', 'provision.yml')
        before = {host: lab.vmctl_calls(host) for host in HOSTS}
        noop, noop_changed = lab.play(provision)
        noop_calls = {host: lab.vmctl_calls(host) - before[host] for host in HOSTS}
        # the no-op of the host side alone: what grows with the fleet besides it is the guest play's
        # per-guest decision that nothing needs configuring
        noop_host_side, _changed = lab.play(provision, '--limit', 'vmm_hosts:localhost')
        before = {host: lab.vmctl_calls(host) for host in HOSTS}
        per_task, per_task_changed = lab.play(os.path.join(ROOT, 'benchmarks', 'files', 'provision_per_guest.yml'))
        per_task_calls = {host: lab.vmctl_calls(host) - before[host] for host in HOSTS}
        ping_started = time.monotonic()
        ping = subprocess.run(['ansible', '-i', lab.fleet, 'vmm_guests', '-m', 'ansible.builtin.ping'], env=lab.env,
                              capture_output=True, text=True, check=False)
        ping_time = time.monotonic() - ping_started
    finally:
        lab.stop()
    # the median run (the middle one of an odd number) stands for the size; every run's time is kept
    first, first_boot, plays = sorted(firsts, key=lambda run: run[0])[(len(firsts) - 1) // 2]
    return {
        'guests_per_host': per_host, 'hosts': len(HOSTS),
        'first_run_s': round(first, 2), 'first_run_host_side_s': round(first - first_boot, 2),
        'first_run_first_boot_s': round(first_boot, 2), 'first_run_plays': plays,
        'first_runs_s': [round(run[0], 2) for run in firsts],
        'noop_s': round(noop, 2),
        'noop_host_side_s': round(noop_host_side, 2),
        'noop_changed': sum(noop_changed.get(host, 0) for host in HOSTS),
        'noop_vmctl_calls_per_host': [noop_calls[host] for host in HOSTS],
        'per_task_noop_s': round(per_task, 2),
        'per_task_noop_changed': sum(per_task_changed.get(host, 0) for host in HOSTS),
        'per_task_noop_vmctl_calls_per_host': [per_task_calls[host] for host in HOSTS],
        'ping_s': round(ping_time, 2), 'ping_ok': ping.stdout.count('SUCCESS'),
        # the first boot against Ansible's cheapest task on the same guests, in the same run: a ratio that
        # does not depend on how fast the machine is
        'first_boot_to_ping': round(first_boot / ping_time, 2),
        'load_before': round(load_before, 2),
    }


def plot(results, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    sizes = [row['guests_per_host'] for row in results]
    fig, axis = plt.subplots(figsize=(7, 4.2))
    axis.plot(sizes, [row['first_run_host_side_s'] for row in results], 'o-', label='first run, host side (to login:)')
    axis.plot(sizes, [row['first_run_s'] for row in results], 'o:', label='first run with first boot over SSH')
    axis.plot(sizes, [row['noop_s'] for row in results], 's-', label='no-op, disks:/vms: batched')
    axis.plot(sizes, [row['noop_host_side_s'] for row in results], 's:', label='no-op, batched, host side only')
    axis.plot(sizes, [row['per_task_noop_s'] for row in results], '^--', label='no-op, one task per guest (host side)')
    axis.set_xlabel('guests per host (2 lab hosts)')
    axis.set_ylabel('wall time (s)')
    axis.set_xticks(sizes)
    axis.grid(True, alpha=0.3)
    axis.legend()
    axis.set_title('playbooks/provision.yml in the lab (%s, %d CPUs)' % (platform.machine(), os.cpu_count()))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--sizes', default='1,10,40,80')
    parser.add_argument('--first-runs', type=int, default=3,
                        help='first runs per size, each on a fresh lab; the median is recorded (odd: a run, not a mean)')
    parser.add_argument('--collections', default=os.environ.get('ANSIBLE_COLLECTIONS_PATH',
                                                                os.path.join(ROOT, '.build')))
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(',')]
    results = []
    with tempfile.TemporaryDirectory(prefix='vmm-fleet-bench-') as workdir:
        os.chmod(workdir, 0o755)
        golden = golden_image(workdir, options.collections)
        for per_host in sizes:
            row = measure(workdir, options.collections, per_host, golden, options.first_runs)
            results.append(row)
            print(json.dumps(row), flush=True)
            write_results(results)
    return report(results)


def _autogroup():
    # with autogroup on, `nice` does not hold other sessions' work back from the benchmark's processes
    try:
        with open('/proc/sys/kernel/sched_autogroup_enabled', encoding='ascii') as flag:
            return flag.read().strip() == '1'
    except OSError:
        return None


def write_results(results):
    """benchmarks/results/fleet_scale.json and .png with the sizes measured so far."""
    smallest = results[0]
    summary = {
        'machine': {'cpus': os.cpu_count(), 'arch': platform.machine(), 'sched_autogroup': _autogroup()},
        'sizes': results,
        'noop_ratio_to_smallest': {str(row['guests_per_host']): round(row['noop_s'] / smallest['noop_s'], 2)
                                   for row in results},
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'fleet_scale.json'), 'w', encoding='utf-8') as out:
        json.dump(summary, out, indent=2)
        out.write('\n')
    plot(results, os.path.join(RESULTS, 'fleet_scale.png'))
    return summary


def report(results):
    summary = write_results(results)
    print('%6s %9s %8s %12s %14s %9s' % ('guests', 'first', 'no-op', 'no-op ratio', 'per-task no-op', 'vmctl/host'))
    for row in results:
        print('%6d %8.1fs %7.1fs %12.2f %13.1fs %9s' % (
            row['guests_per_host'], row['first_run_s'], row['noop_s'],
            summary['noop_ratio_to_smallest'][str(row['guests_per_host'])], row['per_task_noop_s'],
            '/'.join(map(str, row['noop_vmctl_calls_per_host']))))
    bad = [row for row in results if row['noop_changed'] or any(calls != 1 for calls in row['noop_vmctl_calls_per_host'])
           or row['ping_ok'] != row['guests_per_host'] * row['hosts']]
    if bad:
        print('FAIL: a no-op changed something, asked vmctl more than once per host, or a guest did not answer ping')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
