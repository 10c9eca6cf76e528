# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""One unattended install: a temporary VM boots the ramdisk from the network and installs onto the disk.

The temporary VM is a disabled vm.conf definition loaded with ``vmctl load``
(vmd ignores ``-B`` for VMs it already knows and vmctl has no MAC option);
its name carries a digest of the definition so a changed definition never
reuses a stale one. The run publishes the files once vmd has given the VM
its id, follows the console, waits for vmd to report the VM's end, removes
the published files again and decides from the transcript.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import select
import subprocess
import tempfile
import time

from ansible_collections.openbsd.vmm.plugins.module_utils.console_follow import (
    CONSOLE_DRAIN_SECONDS, SUCCESS_MARKER, ConsoleFollower, console_tail, failure_in)
from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_publish import SERVER_TOKEN, group_id
from ansible_collections.openbsd.vmm.plugins.module_utils.install_clients import InstallClientsError, table_command
from ansible_collections.openbsd.vmm.plugins.module_utils.install_manifest import disk_identity, read_manifest, write_manifest
from ansible_collections.openbsd.vmm.plugins.module_utils.installer import manifest_matches, manifest_path
from ansible_collections.openbsd.vmm.plugins.module_utils.local_address import (
    DEFAULT_LOCAL_PREFIX, LocalAddressError, vm_priv_addr)
from ansible_collections.openbsd.vmm.plugins.module_utils.site_set import random_password
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import SizeError, scan_scaled
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import Disk, Interface, VmConfError, VmDefinition, parse_config
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import (
    Vmctl, VmctlError, VmNotFound, VmNotRunning, VmStopInProgress, vm_name_problem)


class InstallFailure(Exception):
    """The install cannot run or did not succeed; ``details`` go into the task result."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def disk_in_use(disk):
    """vmd opens disks with an exclusive non-blocking lock: if we cannot take it, a VM holds the disk."""
    with open(disk, 'rb') as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
    # Closing the file dropped the lock taken here.
    return False


def temp_vm_definition(params, bsd_rd):
    """The temporary install VM: disabled, ramdisk kernel, boot device net, local first interface with the MAC."""
    memory = None
    if params.get('memory'):
        try:
            memory = scan_scaled(params['memory'])
        except SizeError as exc:
            raise InstallFailure('memory: %s' % exc)
    disk = os.path.realpath(params['disk'])
    definition = VmDefinition(name='install', enabled=False, memory=memory, boot=os.path.realpath(bsd_rd),
                              boot_device='net', disks=[Disk(disk)],
                              interfaces=[Interface(local=True, lladdr=params['mac'].lower())])
    digest = hashlib.sha256(definition.render().encode('utf-8')).hexdigest()[:8]
    definition.name = '%s-ai-%s' % (params['name'][:63 - 12], digest)
    return definition


def install_server_address(vm_conf, vm_id, isvm=False):
    """The host side of the temporary VM's first (local) interface: the next-server vmd's DHCP gives the installer.

    With ``isvm`` the guest side: the address the installer fetches from.
    """
    try:
        prefix = parse_config(vm_conf).local_prefix or DEFAULT_LOCAL_PREFIX
    except VmConfError as exc:
        raise InstallFailure('vm_conf: %s' % exc)
    try:
        return vm_priv_addr(prefix, vm_id, 0, isvm=isvm)
    except LocalAddressError as exc:
        raise InstallFailure('vm_conf %s: %s. The installer would get no DHCP lease and could not fetch its response '
                             'file; give vm.conf a larger local prefix, or restart vmd so that it numbers VMs from 1 '
                             'again' % (vm_conf, exc))


def force_stop(vmctl, name):
    try:
        vmctl.stop(name, force=True, wait=True)
    except (VmNotRunning, VmNotFound):
        pass
    except VmStopInProgress:
        vmctl.stop(name, force=True, wait=True)


def prepare_vm(vmctl, definition):
    """Register the temporary VM with vmd (vmctl load of a temporary file); return its status record."""
    record = vmctl.find(definition.name)
    if record is not None and record.running:
        # Left running by an interrupted run: it is ours (the name carries the definition's digest).
        force_stop(vmctl, definition.name)
        record = vmctl.find(definition.name)
    if record is None:
        fd, path = tempfile.mkstemp(prefix='vmm-autoinstall-', suffix='.conf')
        try:
            with os.fdopen(fd, 'w') as handle:
                handle.write(definition.render())
            vmctl.load(path)
        finally:
            os.unlink(path)
        record = vmctl.find(definition.name)
    if record is None:
        raise InstallFailure('vmd did not register the temporary VM %s after vmctl load' % definition.name)
    return record


def run_install(module, vmctl, definition, timeout, console_log, secrets):
    """Start the VM, follow its console, wait for it to end; return (succeeded, reason, duration, transcript)."""
    log_handle = None
    if console_log:
        fd = os.open(console_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        log_handle = os.fdopen(fd, 'w')
    name = definition.name
    started = time.monotonic()
    console = waiter = None
    try:
        vmctl.start(name)
        console = ConsoleFollower(vmctl, name, log_handle, secrets)
        # vmctl wait blocks until vmd reports the VM's termination (it must be issued while the VM runs).
        vmctl.calls.append(['vmctl', 'wait', name])
        waiter = subprocess.Popen(  # pylint: disable=ansible-bad-function
            [vmctl.binary, 'wait', name], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=vmctl.environ)
        deadline = started + timeout
        ended, reason = False, None
        wait_fd = waiter.stderr.fileno()
        wait_output = b''
        while True:
            watched = [wait_fd] + ([console.master] if console.open else [])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = 'the install did not finish within install_timeout (%d s)' % timeout
                break
            ready, _w, _x = select.select(watched, [], [], remaining)
            if console.open and console.master in ready:
                console.read_available()
                reason = failure_in(console.text)
                if reason:
                    break
            if wait_fd in ready:
                data = os.read(wait_fd, 4096)
                wait_output += data
                if not data:
                    waiter.wait()
                    ended = True
                    break
        duration = time.monotonic() - started
        if ended and waiter.returncode != 0:
            message = wait_output.decode('utf-8', 'replace')
            # "failed: Invalid argument": the VM was no longer running when wait arrived, i.e. it already ended.
            if 'Invalid argument' not in message and 'vm not found' not in message:
                reason = 'vmctl wait %s failed: %s' % (name, message.strip())
        if not ended:
            force_stop(vmctl, name)
        console.drain(CONSOLE_DRAIN_SECONDS)
        transcript = console.text
        if reason is None:
            reason = failure_in(transcript)
        if reason is None and SUCCESS_MARKER not in transcript:
            reason = 'the VM ended without the installer reporting success (%s not on the console)' % SUCCESS_MARKER
        return reason is None, reason, duration, transcript
    finally:
        if waiter is not None and waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        if waiter is not None:
            waiter.stdout.close()
            waiter.stderr.close()
        if console is not None:
            console.close()
        if log_handle:
            log_handle.close()


def install(module, params, payload, publication):
    """The install run of ``state=installed``: skipped when the manifest matches, else boot, follow, judge."""
    disk = params['disk']
    result = dict(changed=False, response_file=publication.response_path, removed=[], manifest=manifest_path(disk))
    if not os.path.isfile(disk):
        raise InstallFailure('disk %s does not exist: create it first (openbsd.vmm.vmm_disk or vmctl create)' % disk)
    if manifest_matches(read_manifest(disk), disk_identity(disk), payload['inputs_sha256']):
        result['install'] = dict(succeeded=True, skipped=True)
        return result
    result['changed'] = True
    if module.check_mode:
        result['install'] = dict(succeeded=None, skipped=False)
        return result
    bsd_rd = params.get('bsd_rd') or os.path.join(publication.setdir, 'bsd.rd')
    if not os.path.isfile(bsd_rd):
        raise InstallFailure('installer ramdisk %s does not exist' % bsd_rd)
    if disk_in_use(disk):
        raise InstallFailure('disk %s is in use by a running VM (vmd holds its lock); stop that VM first' % disk)
    problem = vm_name_problem(params['name'])
    if problem:
        raise InstallFailure('name %r: %s' % (params['name'], problem))
    # Publishing needs the group; an unknown one must fail before vmd registers the install VM.
    group_id(params.get('file_group'))
    vmctl = Vmctl(module=module)
    result['commands'] = vmctl.calls
    definition = temp_vm_definition(params, bsd_rd)
    secrets = [secret for secret in (random_password(payload),) if secret]
    try:
        record = prepare_vm(vmctl, definition)
        vm_conf = params.get('vm_conf') or '/etc/vm.conf'
        server = None
        if SERVER_TOKEN in payload['response_file']:
            server = install_server_address(vm_conf, record.id)
        client = None
        if params.get('install_clients_table'):
            client = dict(anchor=params.get('pf_anchor'), table=params['install_clients_table'],
                          address=install_server_address(vm_conf, record.id, isvm=True))
        publication.claim(client)
        try:
            if client:
                # Only this VM's address is let through pf's rdr to httpd while its files are there.
                result['commands'].append(table_command(module.run_command, module.get_bin_path('pfctl', required=True),
                                                        client['anchor'], client['table'], 'add', client['address']))
            publication.publish(payload, server=server)
            succeeded, reason, duration, transcript = run_install(
                module, vmctl, definition, params['install_timeout'], params.get('console_log'), secrets)
        finally:
            # The response file holds password hashes: gone as soon as the install has ended.
            result['removed'] = publication.remove()
            try:
                if client:
                    result['commands'].append(table_command(
                        module.run_command, module.get_bin_path('pfctl', required=True),
                        client['anchor'], client['table'], 'delete', client['address']))
                publication.release()
            except InstallClientsError as exc:
                # The record stays: the next run deletes the address again.
                module.warn(str(exc))
    except (VmctlError, InstallClientsError) as exc:
        raise InstallFailure(str(exc), commands=vmctl.calls)
    install_record = dict(succeeded=succeeded, skipped=False, duration=round(duration, 3),
                          console_tail=console_tail(transcript, secrets), vm_name=definition.name, vm_id=record.id,
                          console_log=params.get('console_log'))
    result['install'] = install_record
    if not succeeded:
        raise InstallFailure('%s; VM %s stopped. Console tail:\n%s' % (reason, definition.name,
                                                                       '\n'.join(install_record['console_tail'])),
                             install=install_record, commands=vmctl.calls, removed=result['removed'])
    write_manifest(disk, payload['inputs_sha256'], params.get('hostname') or params['name'], params['mac'].lower(),
                   install_record['duration'], payload.get('password_hashes'))
    return result
