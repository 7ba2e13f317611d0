"""docs/cli.md is what the commands' --help says (regenerate with scripts/cli_reference.py)."""

from voiceprint import clidoc


def test_cli_reference_is_current():
    assert clidoc.check(), "docs/cli.md is out of date - run scripts/cli_reference.py"


def test_cli_reference_covers_every_command_group():
    text = clidoc.reference()
    for title in ("## `voiceprint enrol`", "## `voiceprint link promote`", "## `voiceprint calls leads`", "## `voiceprint backend fit`"):
        assert title in text
