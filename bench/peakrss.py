#!/usr/bin/env python3
"""Runs a command and prints its wall time and peak RSS (of the child) on stderr as
'wall_s=<s> peak_rss_mb=<MB>'; exits with the command's status."""
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[1:])
wall = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
print(f"wall_s={wall:.2f} peak_rss_mb={rss:.1f}", file=sys.stderr)
sys.exit(rc)
