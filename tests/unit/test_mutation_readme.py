"""The README's mutation scores are the ones benchmarks/results/mutation.json recorded, and every measured file is named."""
from __future__ import annotations

import json
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


def test_the_readme_scores_are_the_recorded_ones():
    with open(os.path.join(ROOT, 'benchmarks', 'results', 'mutation.json'), encoding='utf-8') as stream:
        recorded = {os.path.splitext(os.path.basename(path))[0]: entry['score'] for path, entry in json.load(stream)['files'].items()}
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as stream:
        readme = stream.read()
    paragraph = readme[readme.index('Last recorded scores'):]
    paragraph = paragraph[:paragraph.index('A sample flatters')]
    # "name 98.9" where name is a measured file; "(was 85.7" and other figures are history, not the score
    named = {}
    for name, score in re.findall(r'(?<![\w.])([a-z][a-z0-9_]*) ([0-9]+(?:\.[0-9])?)(?![0-9])', paragraph):
        if name in recorded:
            assert name not in named, '%s is named twice in the README' % name
            named[name] = float(score)
    assert {name: recorded[name] for name in named} == named
    assert sorted(recorded) == sorted(named), 'files measured but not in the README: %s' % sorted(set(recorded) - set(named))
