#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads crm/settings.py, which checks the environment)
    except ImproperlyConfigured as err:
        # A setting that is missing or wrong: its message says how to fix it; a traceback
        # would only bury it.
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: {err}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
