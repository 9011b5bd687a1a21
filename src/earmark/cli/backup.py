"""The ``backup`` and ``restore`` commands: snapshots of the project's database."""

from __future__ import annotations

import argparse

from earmark.cli.common import PROJECT_HELP, add_command, plural


def cmd_backup(args: argparse.Namespace) -> int:
    from earmark.store.backup import backup_dir, describe, snapshots, take
    from earmark.store.project import database_file, open_project

    project = open_project(args.project)
    if database_file(project.root, project.config) is None:
        print(f"{args.project}: the database is on a server; back it up with the server's own "
              "tools (pg_dump)")
        return 0
    taken = take(project, "backup")
    print(f"took snapshot {taken.name}" if taken else
          "the database is unchanged since the newest snapshot; none taken" if project.config.backup.keep
          else "backup.keep is 0 in earmark.json: no snapshot taken")
    found = snapshots(project.root)
    keep = project.config.backup.keep
    print(f"{plural(len(found), 'snapshot')} in {backup_dir(project.root)}, newest first "
          + (f"(the newest {keep} are kept):" if keep else "(taken before; none are removed while "
             "snapshots are off):"))
    for snap in found:
        print(f"  {describe(snap)}")
    if found:
        print(f"put one back with: earmark restore {args.project} [--snapshot NAME]")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from earmark.store.backup import UNRESTORED_FILE, describe, restore

    r = restore(args.project, args.snapshot, force=args.force)
    print(f"restored {describe(r.snapshot, r.held)}")
    if r.kept.is_dir():
        print(f"the replaced database is kept in {r.kept}")
    else:
        print("there was no database file to keep (it was gone)")
    print(f"corrections saved after the snapshot and copied back: {r.salvaged}")
    if r.unrestored:
        print(f"{plural(r.unrestored, 'correction')} of clips imported after the snapshot are in "
              f"{r.kept / UNRESTORED_FILE}: import their files again (`earmark import`), then "
              "enter them in the review app")
    if r.salvage_problem:
        print(f"  warning: the replaced file could not be read to the end ({r.salvage_problem}); "
              "corrections on its damaged pages are lost")
    print(f"next: earmark status {args.project}   (then `earmark rank {args.project}` transcribes "
          "the clips the snapshot holds no transcript of)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``backup`` and ``restore``."""
    s = add_command(sub, "backup", cmd_backup, help="snapshot the project database now; list the snapshots",
                    description="Copy the project's SQLite database into PROJECT/backups and list "
                                "the snapshots there. earmark takes one by itself before import, "
                                "rank, finetune, round and review, and every few minutes while "
                                "annotators save (backup.keep and backup.review_minutes in "
                                "earmark.json); each is checked before it is kept.",
                    epilog="example:\n  earmark backup myproj")
    s.add_argument("project", help=PROJECT_HELP)

    s = add_command(sub, "restore", cmd_restore, help="put a snapshot back in place of a damaged database",
                    description="Replace the project's database by a snapshot (the newest sound "
                                "one unless --snapshot names another). The replaced file is kept "
                                "in PROJECT/backups, and every correction saved after the snapshot "
                                "that can still be read from it is copied back. Stop the review "
                                "app first: a restore is refused while another process has the "
                                "database open.",
                    epilog="examples:\n  earmark restore myproj\n"
                           "  earmark restore myproj --snapshot earmark-20261206-223000.000_rank.db --force")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--snapshot", help="file name of the snapshot (`earmark backup` lists them)")
    s.add_argument("--force", action="store_true",
                   help="restore even though the current database reads fine")
