#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vmm_autoinstall
short_description: Unattended OpenBSD installs onto vmd(8) guest disks
version_added: 0.1.0
description:
  - Installs OpenBSD onto a VM disk with autoinstall(8), without typing at the console and without fixed waits.
  - The response file is rendered on the controller (Jinja2), passwords are hashed there with bcrypt through the
    passlib API of libpass, and every line is checked against the installer's questions and matching rules
    (case-insensitive, word-bounded, first match consumed) before anything is published.
  - O(state=published) writes C(<mac>-install.conf) (root:O(file_group) 0640), the disklabel template and the site set into
    O(docroot); O(state=installed) also boots a temporary VM with the ramdisk from the network, follows its console,
    waits for vmd to report that the VM terminated, and decides from the console transcript whether the install
    succeeded; O(state=absent) removes what was published.
  - The temporary VM is a C(disable)d vm.conf definition (C(boot) the ramdisk, C(boot device net), a C(local
    interface) with O(mac) first, the disk, the memory) loaded with C(vmctl load) and started by name, because vmd
    ignores C(-B) for VMs it already knows and vmctl has no option for a MAC address. Its name is
    C(<name>-ai-<8 hex digits of the definition>), so a changed definition never reuses a stale one. vmd keeps a loaded
    VM registered as stopped until the next C(vmctl reload); the module reuses it on the next run with the same
    definition.
  - A disk that already holds a completed install from the same inputs is not reinstalled; the module keeps a
    manifest C(<disk>.autoinstall.json) (mode 0600) keyed by the disk's identity and the SHA-256 of the inputs.
author:
  - openbsd.vmm contributors (@openbsd-vmm)
options:
  state:
    description:
      - V(published) writes the response file, disklabel template and site set into O(docroot).
      - V(installed) publishes, runs the install, and removes the published files again as soon as it ends.
      - V(absent) removes the published files.
    type: str
    default: installed
    choices: [published, installed, absent]
  name:
    description: Name of the VM being installed (the temporary VM's name is derived from it).
    type: str
    required: true
  mac:
    description:
      - MAC address of the VM's first interface; the installer fetches C(<mac>-install.conf).
    type: str
    required: true
  hostname:
    description: Short host name of the installed system. Defaults to O(name).
    type: str
  root_password:
    description:
      - Root password. Plain text is hashed on the controller (bcrypt C($2b$)); an already encrypted bcrypt string
        is used as it is; thirteen asterisks disable password logins.
      - V(random) generates a password that is never shown; it is delivered as a comment line starting with
        C(# root password) in C(/root/.ssh/authorized_keys) inside the site set.
      - Required unless O(state=absent).
    type: str
  bcrypt_rounds:
    description: bcrypt cost (log2 rounds, two digits in the hash).
    type: int
    default: 10
  root_ssh_key:
    description: OpenSSH public key line for root.
    type: str
  allow_root_ssh:
    description: Answer to C(Allow root ssh login?). Defaults to V(prohibit-password) when O(root_ssh_key) is given.
    type: str
    choices: ['yes', 'no', prohibit-password]
  sshd:
    description: Start sshd(8) by default.
    type: bool
    default: true
  users:
    description:
      - Users to create. The installer sets up the first one; the others are created by C(install.site) in the
        site set (useradd with the bcrypt hash, group wheel, shell /bin/ksh).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Login name (C([a-z][-a-z0-9_]*), at most 31 characters).
        type: str
        required: true
      fullname:
        description: Full name. Defaults to the login name.
        type: str
      password:
        description: Password, plain (hashed on the controller) or bcrypt-encrypted.
        type: str
        required: true
      ssh_keys:
        description: OpenSSH public key lines for the user.
        type: list
        elements: str
        default: []
  timezone:
    description: Time zone (C(UTC), C(Europe/Berlin)); a region alone would make the installer ask a sub-timezone.
    type: str
    default: UTC
  sets:
    description:
      - Set selection tokens in the installer's syntax (C(-game*), C(-x*), C(+comp*), C(-all)). A selection without
        C(bsd) or C(baseXY.tgz) is refused. The site set is added automatically.
    type: list
    elements: str
    default: []
  network:
    description: Network of the installed system; the defaults configure the first interface with DHCP/SLAAC.
    type: dict
    default: {}
    suboptions:
      interface:
        description: Interface to configure.
        type: str
        default: vio0
      ipv4:
        description: V(autoconf) (DHCP), V(none), or an address with prefix length (C(192.0.2.10/24)).
        type: str
        default: autoconf
      ipv4_gateway:
        description: Default IPv4 route for a static address (V(none) for none).
        type: str
      ipv6:
        description: V(autoconf), V(none), or an address with prefix length (C(2001:db8::10/64)).
        type: str
        default: autoconf
      ipv6_gateway:
        description: IPv6 default router for a static address.
        type: str
      domain:
        description: DNS domain name.
        type: str
      nameservers:
        description: DNS name servers.
        type: list
        elements: str
        default: []
  disklabel:
    description:
      - V(auto) for the installer's automatic layout, or a disklabel(8) auto-allocation template, either as a list of
        dicts with C(mount) (a mount point or C(swap)), C(size) (C(1G), C(150M-1G), C(2G-*)) and optional C(percent),
        or as template text. A template is published as C(<mac>-disklabel) and given to the installer by URL.
    type: raw
    default: auto
  site:
    description: Files for the site set C(siteXY-<hostname>.tgz) (or C(siteXY.tgz)), extracted last into the new root.
    type: dict
    suboptions:
      files:
        description: Files to put into the site set.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description:
              - Path inside the new root; a leading C(/) is dropped. Empty, C(.) and C(..) components, control characters,
                C(install.site) and C(install.site.user) are refused (use O(site.install_site) for the script).
            type: str
            required: true
          content:
            description: File content.
            type: str
            required: true
          mode:
            description: Octal file mode.
            type: str
            default: '0644'
      install_site:
        description: Script run chrooted at the end of the install (C(/install.site)).
        type: str
      per_host:
        description: Name the set C(siteXY-<hostname>.tgz) (preselected by the installer) instead of C(siteXY.tgz).
        type: bool
        default: true
  answers:
    description:
      - Extra C(question = answer) pairs, written first. A key that matches no installer question is an error that
        lists the nearest questions.
      - The values are treated as secrets (they may be passphrases) and the diff shows them masked.
    type: dict
    default: {}
  install_server:
    description:
      - Host name, address or C(http://) URL the guest uses for the sets and the disklabel template.
      - Defaults to the host side of the temporary VM's local interface, the DHCP next-server vmd gives the installer,
        computed as vmd does (C(priv.c) C(vm_priv_addr)) from the VM's id and the C(local prefix) of O(vm_conf)
        (C(100.64.0.0/10) when absent), for example C(http://100.64.4.2) for VM id 4 and C(http://100.65.0.2) for
        VM id 256. It is filled in when vmd has registered the VM, so O(state=published) requires it. The task fails
        before anything is published when the VM id leaves the prefix (vmd would give the VM no address).
    type: str
  docroot:
    description: Document root of the install server's HTTP daemon.
    type: path
    default: /var/www/htdocs
  file_group:
    description:
      - Group given to the published files. The response file and the site set are mode 0640 (root and this group
        may read them, nobody else) because they hold password hashes; the disklabel template is 0644. The HTTP
        daemon must read them through this group, so it is V(www) for httpd(8), whose server processes run as user www.
      - OpenBSD's docroot C(/var/www/htdocs) is C(root:daemon) 0755 and new files take the directory's group, so
        without the right group httpd answers 403 and the installer finds no response file.
      - A group that does not exist on the install server is an error naming this option.
    type: str
    default: www
  disk:
    description: Disk image to install onto (required for O(state=installed)).
    type: path
  memory:
    description: Memory of the temporary VM (scan_scaled syntax, e.g. C(1G)), from 1M to 128G; vmd's default when omitted.
    type: str
  bsd_rd:
    description: Installer ramdisk kernel. Defaults to C(<docroot>/pub/OpenBSD/<release>/<arch>/bsd.rd).
    type: path
  release:
    description: OpenBSD release of the sets (C(7.8)).
    type: str
    default: '7.8'
  arch:
    description: Architecture of the sets. vmm(4) runs C(amd64) and C(i386) guests; any other value is refused.
    type: str
    default: amd64
  install_timeout:
    description: Seconds the install may take before the VM is force-stopped and the task fails. Must be positive.
    type: int
    default: 1800
  console_log:
    description: File that receives the console transcript of the install (mode 0600, password hashes redacted).
    type: path
  vm_conf:
    description: vmd's configuration file, read for its C(local prefix) (see O(install_server)).
    type: path
    default: /etc/vm.conf
  install_clients_table:
    description:
      - pf table (in O(pf_anchor)) that lets the installing VM, and only it, reach the install server; the
        vmm_host role's rdr rule to httpd takes its C(from) addresses from C(<vmm_install_clients>). For as long as the
        install runs, the temporary VM's guest address (vmd's C(vm_priv_addr), O(vm_conf)'s C(local prefix)) is in
        the table (C(pfctl -a ANCHOR -t TABLE -T add)); it is deleted when the install ends, also on failure, and a
        killed run's address is deleted by the next run.
      - Other VMs cannot fetch the site set (random root password) or the response file (password hashes) during
        the install. The installer fetches C(<mac>-install.conf) by a fixed name, so secret file names would not
        protect the response file; the VM's address is vmd's to give.
      - An empty string turns this off (for install servers not behind the vmm_host role's pf rules).
    type: str
    default: vmm_install_clients
  pf_anchor:
    description: pf anchor holding O(install_clients_table) (the vmm_host role's C(vmm_host_pf_anchor)).
    type: str
    default: openbsd-vmm
notes:
  - The response file is removed from O(docroot) as soon as the install ends (it holds password hashes); the site set
    and disklabel template are removed with it. An install run records what it publishes, with its process id, in
    C(<docroot>.vmm_autoinstall/) (outside what httpd serves); when a run is killed, the next vmm_autoinstall run on the
    host removes the files whose process is gone.
  - Secrets never travel in the module's arguments (which Ansible writes into the AnsiballZ file on the host); the
    rendered files go as a file into the task's remote temporary directory, deleted as soon as the module read it.
  - Only the site set is accepted unverified (the response file answers the site set's own checksum and
    unverified-set questions, by file name). A disk too small for the installer's prefetch area (under about 2G with the auto layout)
    makes the installer ask C(Cannot determine prefetch area. Continue without verification?); answer it through
    O(answers) if unverified sets are acceptable.
  - Runs on the vmd host as root (C(vmctl load) is refused to other users). The controller needs Jinja2 and libpass (passlib API) with bcrypt.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    description: Reports what would be published or whether an install would run, without doing it.
    support: full
  diff_mode:
    description: Shows the response file change, with password hashes redacted.
    support: full
  platform:
    platforms: openbsd
  action_group:
    support: full
    membership: [openbsd.vmm.vmm]
  action:
    support: full
    details: Renders and hashes on the controller; the module publishes and installs on the vmd host.
  async:
    support: none
  bypass_host_loop:
    support: none
"""

EXAMPLES = r"""
- name: Install OpenBSD 7.8 onto web1's disk
  openbsd.vmm.vmm_autoinstall:
    name: web1
    mac: "fe:e1:bb:d1:00:01"
    disk: /var/vmm/web1.qcow2
    memory: 1G
    root_password: random
    root_ssh_key: "ssh-ed25519 AAAAC3Nz... admin@example"
    users:
      - name: alice
        password: "{{ vault_alice_password }}"
        ssh_keys: ["ssh-ed25519 AAAAC3Nz... alice@example"]
    sets: ["-game*", "-x*"]
    console_log: /var/log/vmm/web1-install.log

- name: Only publish a response file with a static network and a custom disklabel
  openbsd.vmm.vmm_autoinstall:
    state: published
    name: db1
    mac: "fe:e1:bb:d1:00:02"
    root_password: "{{ vault_root_password }}"
    install_server: 192.0.2.1
    network:
      ipv4: 192.0.2.20/24
      ipv4_gateway: 192.0.2.1
      ipv6: 2001:db8::20/64
      ipv6_gateway: 2001:db8::1
      domain: example.com
      nameservers: [192.0.2.53]
    disklabel:
      - {mount: /, size: 2G-4G, percent: 30}
      - {mount: swap, size: 512M}
      - {mount: /var, size: 1G-*, percent: 70}
"""

RETURN = r"""
response_file:
  description: Path of the response file in the docroot.
  returned: always
  type: str
  sample: /var/www/htdocs/fe:e1:bb:d1:00:01-install.conf
published:
  description: Files written or found up to date in the docroot (response file, disklabel template, site set).
  returned: when state is published
  type: list
  elements: str
removed:
  description: Files removed from the docroot.
  returned: always
  type: list
  elements: str
install:
  description: The install run.
  returned: when state is installed
  type: dict
  contains:
    succeeded:
      description: Whether the installer reported success.
      type: bool
    skipped:
      description: True when the manifest shows the disk already holds this install.
      type: bool
    duration:
      description: Seconds from starting the VM to its termination (or to the failure).
      type: float
    console_tail:
      description: Last lines of the console (password hashes redacted).
      type: list
      elements: str
    vm_name:
      description: Name of the temporary VM.
      type: str
    vm_id:
      description: vmd's id of the temporary VM.
      type: int
    console_log:
      description: Path of the console transcript, if kept.
      type: str
manifest:
  description: Path of the manifest beside the disk.
  returned: when state is installed
  type: str
commands:
  description: Commands run (vmctl, and pfctl for O(install_clients_table)).
  returned: always
  type: list
  elements: list
stale_removed:
  description:
    - Files an earlier install left in O(docroot) when it was killed (its publishing process is gone), removed by
      this run. Every install run records what it publishes in C(<docroot>.vmm_autoinstall/<mac>.json) first.
  returned: always
  type: list
  elements: str
rendered:
  description: What the controller rendered (no secrets).
  returned: when state is not absent
  type: dict
  contains:
    hostname:
      description: Host name in the response file.
      type: str
    site_set:
      description: File name of the site set, if any.
      type: str
    inputs_sha256:
      description: Digest of the inputs kept in the manifest.
      type: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils.atomic_file import remove_file
from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_publish import Publication, PublishError, remove_stale
from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_spec import module_argument_spec
from ansible_collections.openbsd.vmm.plugins.module_utils.install_clients import table_command
from ansible_collections.openbsd.vmm.plugins.module_utils.install_manifest import disk_identity, read_manifest
from ansible_collections.openbsd.vmm.plugins.module_utils.install_run import InstallFailure, install
from ansible_collections.openbsd.vmm.plugins.module_utils.secret_seal import seal
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import VmctlError


def inspect(params, payload, publication):
    """What is already published and installed (phase inspect of the action plugin), sealed with its one-time key.

    It holds password hashes and the random root password of a published site set: a module result is printed
    in clear by ANSIBLE_DEBUG and kept by callbacks, so only the action plugin can read it.
    """
    existing = publication.existing()
    if params.get('disk'):
        existing['manifest'] = read_manifest(params['disk'])
        existing['disk_identity'] = disk_identity(params['disk'])
    return dict(changed=False, existing_sealed=seal(payload['seal_key'], json.dumps(existing)))


def read_payload(path):
    """The payload the action plugin transferred as a file; removed at once, so no kill leaves it behind."""
    try:
        with open(path) as handle:
            text = handle.read()
    finally:
        remove_file(path)
    return json.loads(text)


def remove(module, publication):
    removed = publication.remove(check_mode=module.check_mode)
    return dict(changed=bool(removed), removed=removed, response_file=publication.response_path,
                diff=dict(before='\n'.join(removed) + ('\n' if removed else ''), after=''))


def publish(module, payload, publication):
    changed, paths, diff = publication.publish(payload, check_mode=module.check_mode)
    return dict(changed=bool(changed), published=paths, removed=[], response_file=publication.response_path, diff=diff)


def main():
    module = AnsibleModule(
        argument_spec=module_argument_spec(),
        required_if=[('state', 'installed', ('disk',))],
        supports_check_mode=True,
    )
    params = module.params
    if not params.get('payload'):
        module.fail_json(msg='vmm_autoinstall runs through its action plugin (openbsd.vmm.vmm_autoinstall); '
                             'payload is set by it')
    try:
        payload = read_payload(params['payload'])
    except (OSError, ValueError) as exc:
        module.fail_json(msg='payload %s (the file the action plugin transferred) cannot be read: %s'
                             % (params['payload'], exc))
    phase = payload.get('phase')
    response_path = os.path.join(params['docroot'], '%s-install.conf' % params['mac'].lower())
    try:
        # Whatever a killed install left in the docroot goes first, whichever task runs now.
        stale = remove_stale(params['docroot'], check_mode=module.check_mode, delete_client=lambda client: table_command(
            module.run_command, module.get_bin_path('pfctl', required=True), client['anchor'], client['table'], 'delete',
            client['address']))
        publication = Publication(params, payload)
        if phase == 'inspect':
            result = inspect(params, payload, publication)
        elif phase == 'absent':
            result = remove(module, publication)
        elif params['state'] == 'published':
            result = publish(module, payload, publication)
        else:
            result = install(module, params, payload, publication)
    except InstallFailure as exc:
        module.fail_json(msg=str(exc), response_file=response_path, **exc.details)
    except (PublishError, VmctlError) as exc:
        module.fail_json(msg=str(exc), response_file=response_path)
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (getattr(exc, 'filename', None) or 'file operation', exc.strerror or exc),
                         response_file=response_path)
    result['stale_removed'] = stale
    module.exit_json(**result)


if __name__ == '__main__':
    main()
