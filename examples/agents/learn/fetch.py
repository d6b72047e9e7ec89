#!/usr/bin/python3
"""Example agent for `enclosure learn`: fetches a page over HTTP (URL in argv[1]) into page.html."""
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
    body = response.read()
with open("page.html", "wb") as f:
    f.write(body)
print(f"fetched {len(body)} bytes")
