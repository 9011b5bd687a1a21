"""Every command with hostile arguments: one line on stderr and exit 2, never a traceback.

The command lines live in :mod:`hostile` (the reliability benchmark runs the same ones).
The commands run in this process through ``earmark.cli.main.main``; none reaches a model,
since each is refused before any model work.
"""

from __future__ import annotations

import pytest

from hostile import hostile_commands, run_cli


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from earmark.store.project import init_project

    tmp = tmp_path_factory.mktemp("hostile_cli")
    project = init_project(tmp / "proj")
    project.store.dispose()
    return hostile_commands(tmp, project.root)


def test_the_case_list_reaches_every_command(cases):
    from earmark.cli.main import build_parser

    commands = {c for c in build_parser()._subparsers._group_actions[0].choices}
    tried = {argv[0] for argv in cases}
    assert commands <= tried, commands - tried


def test_every_hostile_command_line_is_one_clear_line(cases):
    failures = []
    for argv in cases:
        r = run_cli(argv)
        if not r.clear_error:
            failures.append(f"{argv}: exit {r.code}, stderr {r.err!r}{r.crashed[-600:]}")
    assert not failures, "\n".join(failures)
