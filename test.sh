#!/usr/bin/env bash
# Runs the whole test suite (unit, native and interop tests) with JDK 25.
# With VBLK_REQUIRE_NATIVE=true (set by .ci/run under CI=true) a skipped native or interop test fails the run.
set -euo pipefail
cd "$(dirname "$0")"
for c in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-*; do
  if [ -n "$c" ] && [ -x "$c/bin/java" ] && "$c/bin/java" -version 2>&1 | grep -qE 'version "2[5-9]'; then export JAVA_HOME="$c"; break; fi
done
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
mvn -B -ntp verify -Dvblk.requireNative="${VBLK_REQUIRE_NATIVE:-false}" "$@"
