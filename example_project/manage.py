#!/usr/bin/env python
"""Django's command-line utility for the example shop."""

import os
import sys
from pathlib import Path


def main() -> None:
    # Put this directory first on sys.path so that `shopsite` and `shop` import from any cwd.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
