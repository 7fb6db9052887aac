#!/bin/sh
# /usr/bin/mailjail: runs mailjail on the Node.js runtime shipped in the package.
# The V8 flag is a second safety net against catastrophic regex backtracking (see rules/README.md).
exec /usr/lib/mailjail/node/bin/node --enable-experimental-regexp-engine-on-excessive-backtracks \
  /usr/lib/mailjail/dist/src/cli/main.js "$@"
