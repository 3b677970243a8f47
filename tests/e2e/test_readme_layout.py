"""The README's layout table matches the tree: every top-level entry of the repository and every
Rust source file of the core and the hosts is named in it (a file by its name in its folder's
row, or by a pattern such as `*_tests.rs`), and every path the table names exists."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def layout_rows() -> list[tuple[str, str]]:
    """(path cell, description cell) of each row of the README's "## Layout" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((cells[0], cells[1]))
    assert rows, "no layout table under ## Layout in README.md"
    return rows


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_every_top_level_entry_is_in_the_table():
    listed = {n.rstrip("/").split("/")[0] for path, _ in layout_rows() for n in names(path)}
    # The files every Rust repository has, which the table does not describe.
    plain = {"Cargo.toml", "Cargo.lock", "Makefile", "README.md", "clippy.toml", "requirements.txt",
             ".gitignore", ".gitattributes"}
    top = {f.split("/")[0] for f in tracked()} - plain
    missing = sorted(top - listed)
    assert not missing, f"top-level entries missing from the README's layout table: {missing}"


def test_every_rust_source_file_of_the_core_and_hosts_is_named():
    rows = layout_rows()
    missing = []
    for f in tracked():
        if not f.endswith(".rs") or not (f.startswith("src/") or f.startswith("hosts/")):
            continue
        if f == "src/lib.rs":
            continue  # the crate root: the `src/` row
        folder, name = f.rsplit("/", 1)
        crate = folder[: -len("/src")] if folder.endswith("/src") else folder
        ok = False
        for path, what in rows:
            dirs = [n.rstrip("/") for n in names(path)]
            if f in dirs:
                ok = True
            elif crate in dirs or folder in dirs:
                ok = any(fnmatch.fnmatch(name, n) for n in names(what) + names(path))
            if ok:
                break
        if not ok:
            missing.append(f)
    assert not missing, f"Rust files missing from the README's layout table: {missing}"


def test_every_path_in_the_table_exists():
    files = tracked()
    for path, _ in layout_rows():
        for n in names(path):
            n = n.rstrip("/")
            assert (ROOT / n).exists() or any(f.startswith(n + "/") for f in files), \
                f"the README's layout table names {n}, which is not in the tree"
