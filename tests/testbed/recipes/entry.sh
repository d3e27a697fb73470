#!/bin/sh
# hpcbridge testbed busybox image: the ENTRYPOINT. Prints its arguments and where it runs.
echo "entrypoint args: $*"
echo "greeting: $GREETING"
echo "pwd: $(pwd)"
