"""The README's config reference stays in step with config.py's declarations."""

from __future__ import annotations

from pathlib import Path

from fc_wsgi.config import reference

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_config_field_is_in_the_readme_reference():
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in README.splitlines()
        if line.startswith("| `")
    }
    missing = [path for path, _, _ in reference() if path not in rows]
    assert not missing, f"README config reference lacks {missing}"


def test_readme_defaults_match_the_declarations():
    for path, default, _ in reference():
        row = next(line for line in README.splitlines() if line.startswith(f"| `{path}` |"))
        assert f"`{default}`" in row, f"{path}: README default differs from {default}"
