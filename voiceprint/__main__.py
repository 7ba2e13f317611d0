"""``python -m voiceprint``: the same as the ``voiceprint`` command."""

from .cli import main

main()
