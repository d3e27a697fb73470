#!/bin/sh
# Prints each argument in brackets, then what the build left behind.
for arg in "$@"; do printf '[%s]\n' "$arg"; done
cat /opt/app/greeting /opt/app/joined
ls /opt/data
ls -A /opt/app/etc
echo "LEGACY=$LEGACY"
