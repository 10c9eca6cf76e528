# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Only the installing VM may fetch its files: a pf table of install clients.

The site set carries the random root password and the response file password hashes, and both
sit in httpd's docroot while the install runs. The vmm_host role's rdr rule sends port 80 to
httpd only from the addresses in the table ``<vmm_install_clients>`` of its anchor; an install
adds its temporary VM's guest address (vmd's formula, local_address.vm_priv_addr with isvm) for
as long as it runs and deletes it afterwards, also on failure; a run killed with -9 leaves the
address in its publication record, and the next run removes it (autoinstall_publish.remove_stale).

Why pf and not unguessable file names: the installer fetches ``<mac>-install.conf`` by a fixed
name (install.sub), and the address a VM sends from is vmd's to give (a VM cannot choose another
on its tap without being dropped by vmd's DHCP-less local interface) -- see the module's notes.
``pfctl -T add`` creates the table if the anchor has none (pfctl_table.c), so hosts whose anchor
predates the table still install; they just do not restrict the fetch.
"""

from __future__ import annotations


class InstallClientsError(ValueError):
    """pfctl refused to change the table."""


def table_command(run_command, pfctl, anchor, table, operation, address):
    """``pfctl -a ANCHOR -t TABLE -T add|delete ADDRESS``; raise InstallClientsError on failure."""
    argv = [pfctl] + (['-a', anchor] if anchor else []) + ['-t', table, '-T', operation, address]
    rc, out, err = run_command(argv)
    if rc != 0:
        raise InstallClientsError('%s failed (install_clients_table): %s' % (' '.join(argv), (err or out).strip()))
    return argv
