#!/usr/bin/env python3
"""A fake `flyctl`: appends its argv (and whether FLY_API_TOKEN reached it) to $FAKE_FLYCTL_LOG as
one JSON line, and exits 1 when its arguments mention $FAKE_FLYCTL_FAIL (e.g. an app name)."""

import json
import os
import sys

with open(os.environ["FAKE_FLYCTL_LOG"], "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[1:], "token": bool(os.environ.get("FLY_API_TOKEN"))}) + "\n")
fail = os.environ.get("FAKE_FLYCTL_FAIL")
if fail and any(fail in a for a in sys.argv[1:]):
    print("Error: failed to update machine: deployment failed health checks", file=sys.stderr)
    sys.exit(1)
print("Visit your newly deployed app")
