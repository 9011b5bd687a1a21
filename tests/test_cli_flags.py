"""The command line's options are drawn from the config dataclasses' field metadata."""

from __future__ import annotations

import pytest

from earmark.cli.flags import given, overrides
from earmark.cli.main import build_parser
from earmark.config import (AudioConfig, BackupConfig, DecodeConfig, FinetuneConfig, ProjectConfig, ReviewConfig,
                            SelectionConfig, flagged_fields)
from earmark.study_config import SimulateConfig

# the command whose options set each config class
COMMANDS = {DecodeConfig: ["rank", "p"], SelectionConfig: ["rank", "p"], FinetuneConfig: ["finetune", "p"],
            SimulateConfig: ["simulate", "--manifest", "m.jsonl"]}


def options(argv: list[str]) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[argv[0]]
    return {s for a in sub._actions for s in a.option_strings}


@pytest.mark.parametrize("cls", list(COMMANDS), ids=lambda c: c.__name__)
def test_every_flagged_field_is_an_option_of_its_command(cls):
    flags = {f.metadata["flag"] for f in flagged_fields(cls)}
    assert flags and flags <= options(COMMANDS[cls])


@pytest.mark.parametrize("cls", list(COMMANDS), ids=lambda c: c.__name__)
def test_no_option_given_leaves_the_config_as_it_was(cls):
    base = cls()
    args = build_parser().parse_args(COMMANDS[cls])
    assert given(args, cls) == {} and overrides(args, base) == base


def test_switches_lists_and_renamed_flags_reach_their_fields():
    args = build_parser().parse_args(["rank", "p", "--no-pack", "--batch-size", "3", "--strategy", "entropy"])
    assert overrides(args, DecodeConfig()).pack is False and overrides(args, DecodeConfig()).batch_size == 3
    assert overrides(args, SelectionConfig()).strategy == "entropy"
    args = build_parser().parse_args(["simulate", "--manifest", "m", "--strategies", "random, entropy",
                                      "--budget", "1.5"])
    cfg = overrides(args, SimulateConfig())
    assert cfg.strategies == ("random", "entropy") and cfg.budget_minutes == 1.5


def test_help_shows_the_fields_defaults_without_restating_them():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["finetune"]
    helps = {s: a.help for a in sub._actions for s in a.option_strings}
    assert "(default 10;" in helps["--epochs"] and "default 5e-5" in helps["--lr"]
    assert all("{default}" not in (h or "") for h in helps.values())


def test_an_option_out_of_its_bounds_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["finetune", "p", "--interpolate", "0"])
    assert stop.value.code == 2 and "must be above 0 (got 0)" in capsys.readouterr().err


@pytest.mark.parametrize("cls", [AudioConfig, DecodeConfig, SelectionConfig, ReviewConfig, FinetuneConfig,
                                 SimulateConfig, BackupConfig, ProjectConfig], ids=lambda c: c.__name__)
def test_each_config_checks_itself_and_its_defaults_pass(cls):
    assert cls().problems() == []


def test_a_project_config_names_each_bad_field_with_its_section():
    bad = ProjectConfig(audio=AudioConfig(max_clip_seconds=0), backup=BackupConfig(keep=-1))
    assert [p.split(" ")[0] for p in bad.problems()] == ["audio.max_clip_seconds", "audio.min_clip_seconds",
                                                         "audio.split_search_seconds", "backup.keep"]
