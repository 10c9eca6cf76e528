# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attributes shared by the collection's modules (merged into each module's own ``attributes``)."""

from __future__ import annotations


class ModuleDocFragment:

    # The *_info modules: they read the host and change nothing.
    INFO_MODULE = r'''
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: openbsd
'''
