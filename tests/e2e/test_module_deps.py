"""No two modules of a crate import each other (the core, the wasm host, the native host): each
concern depends on the ones below it. A module's references are its `crate::x` and `super::x`
paths outside its test module (`#[cfg(test)] mod ...`, which may use anything)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRATES = ["src", "hosts/wasm/src", "hosts/dynamic-module/src"]


def modules(root: Path) -> dict[str, str]:
    """Module path ("engine::host", "" for the crate root) -> its source without test modules."""
    out = {}
    for p in sorted(root.rglob("*.rs")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        text = p.read_text()
        m = re.search(r"#\[cfg\(test\)\]\s*(#\[[^\]]*\]\s*)*mod \w+\s*\{", text)
        out["::".join(parts)] = text[: m.start()] if m else text
    return out


def references(name: str, text: str, known: set[str]) -> set[str]:
    """The other modules of the crate that module `name` refers to."""
    paths = set(re.findall(r"crate::((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)*)", text))
    parent = name.rsplit("::", 1)[0] if "::" in name else ""
    for p in re.findall(r"super::((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)*)", text):
        paths.add(f"{parent}::{p}" if parent else p)
    found = set()
    for path in paths:
        parts = path.split("::")
        # The longest prefix that is a module: `crate::engine::host::Host` -> engine::host.
        for i in range(len(parts), 0, -1):
            cand = "::".join(parts[:i])
            if cand in known:
                if cand != name:
                    found.add(cand)
                break
    return found


@pytest.mark.parametrize("crate", CRATES)
def test_no_two_modules_import_each_other(crate):
    mods = modules(ROOT / crate)
    assert len(mods) > 3, f"no modules found under {crate}"
    known = set(mods) - {""}
    refs = {name: references(name, text, known) for name, text in mods.items()}
    mutual = sorted((a, b) for a in refs for b in refs[a] if a < b and a in refs.get(b, set()))
    assert not mutual, f"modules of {crate} that import each other: {mutual}"


def test_the_check_sees_a_cycle(tmp_path):
    (tmp_path / "lib.rs").write_text("mod a;\nmod b;\n")
    (tmp_path / "a.rs").write_text("use crate::b::B;\n")
    (tmp_path / "b.rs").write_text("pub struct B;\nfn f() { crate::a::g(); }\n"
                                   "#[cfg(test)]\nmod tests { use crate::c; }\n")
    mods = modules(tmp_path)
    known = set(mods) - {""}
    assert references("a", mods["a"], known) == {"b"}
    assert references("b", mods["b"], known) == {"a"}
