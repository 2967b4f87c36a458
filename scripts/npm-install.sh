#!/usr/bin/env bash
# Installs the npm packages of a test-harness folder (one with package.json,
# e.g. tests/interop/hemera): `npm ci` when it has a package-lock.json,
# `npm install` otherwise. Does nothing when node_modules is already up to
# date with the lockfile, so it is cheap to run before every test run.
#
#   scripts/npm-install.sh <dir>
#
# Concurrent runs on one folder (two build trees testing at once) take turns
# through a lock on the folder itself. NPM overrides the npm command.
set -euo pipefail

dir=${1:?usage: scripts/npm-install.sh <dir with package.json>}
npm=${NPM:-npm}
cd "$dir"
[[ -f package.json ]] || { echo "npm-install.sh: no package.json in $dir" >&2; exit 2; }

# npm writes node_modules/.package-lock.json last, after a complete install.
up_to_date() {
  local stamp=node_modules/.package-lock.json
  [[ -f $stamp ]] || return 1
  [[ ! package.json -nt $stamp ]] || return 1
  [[ ! -f package-lock.json || ! package-lock.json -nt $stamp ]] || return 1
}

up_to_date && exit 0

install() {
  up_to_date && return 0  # another run finished it while we waited
  if [[ -f package-lock.json ]]; then
    echo "npm-install.sh: npm ci in $dir" >&2
    "$npm" ci --no-audit --no-fund --loglevel=error
  else
    echo "npm-install.sh: npm install in $dir (no package-lock.json)" >&2
    "$npm" install --no-audit --no-fund --loglevel=error
  fi
  # npm ci keeps the files' own timestamps; mark the install as newer than
  # the lockfile so the next run sees it up to date.
  touch node_modules/.package-lock.json
}

exec 9<.
flock 9
install
