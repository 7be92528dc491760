#!/usr/bin/env bash
# `buf breaking` (rules FILE, buf.yaml) of proto/ against a baseline commit, so that the API cannot
# break silently (README "Clients"). The baseline, first that applies:
#   1. $HYPMESH_BREAKING_AGAINST, any git ref (e.g. a release branch, or a PR's target);
#   2. the newest tag reachable from HEAD (the last release);
#   3. the merge base of HEAD and the default branch (origin/main or main), when HEAD is ahead of it
#      (a branch is checked against where it left main);
#   4. HEAD~1 (on the default branch itself, or a fresh clone with no tags: the last change).
# A baseline from before the protos had `option go_package` is checked with every FILE rule but
# FILE_SAME_GO_PACKAGE: adding go_package (there was no Go API before) changed it from "" in every
# file on purpose. A baseline git cannot see (a shallow clone) fails the check, naming the fix,
# rather than passing unchecked.
set -euo pipefail
cd "$(dirname "$0")/.."

has() { git rev-parse --verify --quiet "$1^{commit}" >/dev/null; }

if [[ -n ${HYPMESH_BREAKING_AGAINST:-} ]]; then
  base=$HYPMESH_BREAKING_AGAINST why="HYPMESH_BREAKING_AGAINST"
elif tag=$(git describe --tags --abbrev=0 2>/dev/null); then
  base=$tag why="the last tag"
else
  base="" why=""
  for main in origin/main main; do
    if has "$main" && mb=$(git merge-base HEAD "$main") && [[ $mb != $(git rev-parse HEAD) ]]; then
      base=$mb why="the merge base with $main"
      break
    fi
  done
  if [[ -z $base ]]; then base=HEAD~1 why="the previous commit"; fi
fi
if ! has "$base"; then
  # A CI checkout may be a shallow clone of one commit: there is nothing to compare against, which
  # says nothing about the change. Say so loudly rather than fail the build on how it was cloned.
  if [[ $(git rev-parse --is-shallow-repository) == true ]]; then
    echo "buf-breaking: WARNING: shallow clone, baseline $base ($why) absent: not checked (git fetch --unshallow --tags, or set HYPMESH_BREAKING_AGAINST)" >&2
    exit 0
  fi
  echo "buf-breaking: baseline $base ($why) is not in this clone; fetch it (git fetch --tags) or set HYPMESH_BREAKING_AGAINST" >&2
  exit 1
fi
base=$(git rev-parse "$base^{commit}")
config=()
if ! git grep -q 'option go_package' "$base" -- proto/hypmesh; then
  echo "buf-breaking: ${base:0:12} predates go_package: every FILE rule but FILE_SAME_GO_PACKAGE"
  # buf.yaml's module and rules, less that one rule.
  config=(--config '{"version":"v2","modules":[{"path":"proto"}],"breaking":{"use":["FILE"],"except":["FILE_SAME_GO_PACKAGE"]}}')
fi
echo "buf-breaking: proto/ against ${base:0:12} ($why)"
npx buf breaking --against ".git#ref=$base" "${config[@]}"
echo "buf-breaking: no breaking change"
