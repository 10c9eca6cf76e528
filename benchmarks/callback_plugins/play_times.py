# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""Benchmarks only: the wall time of each play of a run, as JSON [[play, seconds], ...] in $PLAY_TIMES_FILE."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'play_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append([play.get_name(), time.monotonic()])

    def v2_playbook_on_stats(self, stats):
        now = time.monotonic()
        ends = [started for _name, started in self.plays[1:]] + [now]
        times = [[name, round(end - started, 2)] for (name, started), end in zip(self.plays, ends)]
        path = os.environ.get('PLAY_TIMES_FILE')
        if path:
            with open(path, 'w', encoding='utf-8') as out:
                json.dump(times, out)
