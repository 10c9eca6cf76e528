# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way the module tests run a module: main() with its arguments, its JSON result."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args


def run_main(module, capsys, check_mode=False, diff=False, **args):
    """module.main() with these arguments (and check/diff mode), which exits as a module does; what it printed, parsed."""
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)
