"""The README's walkthrough "From install to a first digest in your inbox", followed literally on a fresh HOME."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
import sys
from pathlib import Path

from conftest import Sink

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SECTION = "## From install to a first digest in your inbox"
CHECKOUT = "/path/to/paper-digest"  # the README's placeholder for where the checkout is
ADDRESS = "you@example.net"


def walkthrough() -> list[str]:
    """The command lines of the section's sh block, in order (comment-only and blank lines left out)."""
    section = README.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"no sh block under {SECTION!r}"
    return [line for line in block[1].splitlines() if line.strip() and not line.lstrip().startswith("#")]


def is_install(line: str) -> bool:
    """The two lines that create the virtualenv and pip-install into it; the test links this venv instead."""
    return line.startswith("python3 -m venv ") or " pip install " in f" {line}"


EDITOR = r'''#!{python}
"""Stands in for $EDITOR: makes the README's edits ([mail] sender, [smtp], ada's address) to the file given."""
import re, sys

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
for old, new in [
    (r'(?m)^sender = "digest@example\.org"$', 'sender = "papers@example.net"'),
    (r'(?m)^host = "localhost"$', 'host = "localhost"'),  # as the README says: no change, but it must be there
    (r"(?m)^port = 587$", "port = {port}"),
    (r'(?m)^security = "starttls"$', 'security = "none"'),
    (r'(?m)^email = "ada@example\.org"$', 'email = "{address}"'),
]:
    text, count = re.subn(old, new, text)
    if count != 1:
        sys.exit(f"editor: {{old}} matched {{count}} times")
open(path, "w", encoding="utf-8").write(text)
'''


def test_walkthrough_puts_a_first_digest_in_the_inbox(tmp_path: Path, sink: Sink) -> None:
    """Every command of the walkthrough, run as written by bash in a fresh HOME (the editor step done by a
    script, the install replaced by a link to this venv), succeeds, and ada's first digest, with papers, arrives."""
    lines = walkthrough()
    install = [line for line in lines if is_install(line)]
    assert len(install) == 2, install
    assert any(line.startswith("digest run ") or line == "digest run" for line in lines)

    home = tmp_path / "home"
    venv_bin = home / ".local" / "share" / "paper-digest" / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "digest").symlink_to(Path(sys.prefix) / "bin" / "digest")
    checkout = tmp_path / "checkout"  # a checkout as far as the walkthrough looks: its sample dumps
    (checkout / "tests").mkdir(parents=True)
    (checkout / "tests" / "fixtures").symlink_to(REPO / "tests" / "fixtures")
    editor = tmp_path / "editor"
    editor.write_text(EDITOR.format(python=sys.executable, port=sink.port, address=ADDRESS), encoding="utf-8")
    editor.chmod(0o755)

    script = "\n".join(line.replace(CHECKOUT, str(checkout)) for line in lines if not is_install(line))
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "EDITOR": str(editor), "BROWSER": "true",
        "TMPDIR": str(tmp_path),
    }  # fmt: skip
    done = subprocess.run(
        ["bash", "-e", "-x", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"walkthrough failed:\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}"
    print(done.stdout, done.stderr, sep="\n")  # shown with -s or on failure

    to_ada = [raw for _, rcpts, raw in sink.messages if ADDRESS in rcpts]
    assert len(to_ada) == 1, f"ada got {len(to_ada)} messages; run output:\n{done.stdout[-3000:]}"
    message = email.message_from_bytes(to_ada[0], policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    papers = [line for line in body.get_content().splitlines() if line.startswith("Why: ")]  # one per paper
    assert papers, "the first digest holds no paper"
