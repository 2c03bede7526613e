"""Prints one of README.md's Quick start commands: the one-line ```bash block right below the marker
`<!-- quick start: NAME -->` (NAME: serve, test).

    python3 .ci/readme_command.py NAME [README]

.ci/run and tests/e2e/container/newcomer.sh run what it prints, so CI runs the commands a reader copies,
as written. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def command(name: str, readme: str) -> str:
    blocks = re.findall(rf"<!-- quick start: {re.escape(name)} -->\n```bash\n(.*?)```\n", readme, re.DOTALL)
    if len(blocks) != 1:
        raise SystemExit(f"README.md: {len(blocks)} blocks marked <!-- quick start: {name} -->, not 1")
    lines = blocks[0].strip().splitlines()
    if len(lines) != 1:
        raise SystemExit(f"README.md: the quick start {name} command is {len(lines)} lines, not 1")
    return lines[0]


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    readme = Path(argv[1]) if len(argv) == 2 else README
    print(command(argv[0], readme.read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
