"""`face-service people cluster|list|name|merge|split|not-this-person|delete`: a collection's faces
grouped into people (docs/api.md, "People"), locally or over HTTP (`--url`, app/cli_remote.py), each verb printing
the HTTP API's JSON, one line per record.

`people cluster` over HTTP starts the service's background re-cluster and prints the job; `--wait`
polls it, showing each stage and its progress on stderr, until it is done (exit 1 when it failed).
Here, without a service, the re-cluster runs in this process and is done when the command returns,
its progress shown the same way; it is recorded in the store as the service's are (domain/use_cases/
cluster_jobs.py), so when one already runs on the same database (a replica's) that job is printed,
or followed to its end with `--wait`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

POLL_S = 0.5  # between two status requests of `people cluster --wait`
FINISHED = ("done", "failed")


def add_commands(commands: Any, remote: argparse.ArgumentParser) -> None:
    people = commands.add_parser(
        "people", help="group a collection's faces into people, list, name, correct and forget them"
    )
    verbs = people.add_subparsers(
        dest="verb", required=True, metavar="{cluster,list,name,merge,split,not-this-person,delete}"
    )
    cluster = verbs.add_parser(
        "cluster",
        parents=[remote],
        help="re-cluster the collection's faces into people; prints the job",
        description="Over --url the service re-clusters in the background: the job is printed as it starts, "
        "or, with --wait, once done (its progress on stderr). Without a service it runs here, to the end.",
    )
    cluster.add_argument("collection", help="the collection whose faces to group")
    cluster.add_argument(
        "--wait", action="store_true", help="poll the re-cluster, showing its progress, until it is done"
    )
    list_ = verbs.add_parser("list", parents=[remote], help="the collection's people, as JSON lines")
    list_.add_argument("collection", help="the collection whose people to list")
    name = verbs.add_parser("name", parents=[remote], help="name a person: its unlabelled faces become the subject's")
    name.add_argument("collection", help="the collection the person is in")
    name.add_argument("person_id", help="the person's id (32 hex characters, as `people list` prints)")
    name.add_argument("external_id", help="the subject's id (created when new)")
    merge = verbs.add_parser("merge", parents=[remote], help="merge another person into this one (the other goes)")
    merge.add_argument("collection", help="the collection the people are in")
    merge.add_argument("person_id", help="the person kept")
    merge.add_argument("other_person_id", help="the person whose faces join it")
    split = verbs.add_parser(
        "split", parents=[remote], help="split faces out of a person into a new person; prints the new one"
    )
    split.add_argument("collection", help="the collection the person is in")
    split.add_argument("person_id", help="the person")
    split.add_argument("face_ids", nargs="+", metavar="face_id", help="the person's faces that leave it together")
    refuse = verbs.add_parser(
        "not-this-person",
        parents=[remote],
        help="a face is not this person: it leaves it, and stays apart from its faces in later re-clusters",
    )
    refuse.add_argument("collection", help="the collection the person is in")
    refuse.add_argument("person_id", help="the person")
    refuse.add_argument("face_id", help="the face that is not this person")
    forget = verbs.add_parser(
        "delete",
        parents=[remote],
        help="forget a person and every face of it (its photos stay, with their other faces)",
        description="The person's faces are deleted from the store, both searches and the export, durably; "
        "a subject left with no face goes. Indexing one of its photos again from the same bytes does not bring "
        "them back (delete the photo to index it anew).",
    )
    forget.add_argument("collection", help="the collection the person is in")
    forget.add_argument("person_id", help="the person to forget")


class ProgressLines:
    """A re-cluster's progress on stderr: one line each time its stage or progress changes."""

    def __init__(self) -> None:
        self._last: tuple[str, int] | None = None

    def __call__(self, stage: str, done: float) -> None:
        shown = (stage, round(done * 100))
        if shown != self._last:
            self._last = shown
            print(f"clustering: {stage} {shown[1]}%", file=sys.stderr, flush=True)


def wait_for(
    job: dict[str, Any],
    status: Callable[[], dict[str, Any]],
    progress: Callable[[str, float], None],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll `status` until the job is done or failed, showing each change; the last status."""
    progress(job["stage"], job["progress"])
    while job["state"] not in FINISHED:
        sleep(POLL_S)
        job = status()
        progress(job["stage"], job["progress"])
    return job
