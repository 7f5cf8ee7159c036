#!/usr/bin/env bash
# The whole pg_streamml test suite, from a fresh machine: installs what is
# missing, builds with -Werror, installs into a private copy of the server
# (tmp_install/, so no system directory is written), then runs the pg_regress
# suite and the TAP suite.  README's "make test" and CI's .ci/run call it.
#
# A subset, for development: STREAMML_REGRESS="20_ml_train 21_ml_serve" runs
# only those pg_regress files (none when set to "-"), STREAMML_PROVE="030
# 031" only the TAP files whose names start so (none when "-").
#
# PostgreSQL refuses to run as root.  Invoked as root, the script copies the
# tree to a scratch directory owned by an unprivileged user (postgres, or
# STREAMML_TEST_USER) and runs itself there as that user.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

if [ -z "${STREAMML_DEPS_DONE:-}" ]; then
	bash test/install-deps.sh || exit 1
fi

# Citus, for the scale-out tests (test/t/060_citus.pl): built once, out of
# the tree, from ../shared/vendor/citus-*.tar.gz when it is there (make
# citus, cached in tmp_citus/), before the tree is copied for the run.
if [ -z "${STREAMML_DEPS_DONE:-}" ] && { [ -z "${STREAMML_PROVE:-}" ] ||
	[[ " ${STREAMML_PROVE} " == *" 06"* ]]; }; then
	if ls ../shared/vendor/citus-*.tar.gz >/dev/null 2>&1 && [ ! -f tmp_citus/stamp ]; then
		echo "run-tests: building Citus from $(ls ../shared/vendor/citus-*.tar.gz | head -n1) (once; cached in tmp_citus/)"
	fi
	make -s citus || exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
	user=${STREAMML_TEST_USER:-postgres}
	scratch=$(mktemp -d /tmp/pg_streamml-test.XXXXXX)
	tar --exclude=./.git --exclude=./tmp_install --exclude=./tmp_check \
		--exclude=./tmp_check_regress --exclude=./tmp_citus/src -cf - . | tar -C "$scratch" -xf -
	chown -R "$user" "$scratch"
	chmod 755 "$scratch"
	echo "run-tests: running as $user in $scratch"
	runuser -u "$user" -- env STREAMML_DEPS_DONE=1 HOME="$scratch" \
		STREAMML_REGRESS="${STREAMML_REGRESS:-}" STREAMML_PROVE="${STREAMML_PROVE:-}" \
		bash "$scratch/test/run-tests.sh"
	rc=$?
	# test artifacts (the demo reports' screenshots) outlive the scratch dir
	if [ -d "$scratch/tmp_check/artifacts" ]; then
		mkdir -p test-artifacts && cp -r "$scratch/tmp_check/artifacts/." test-artifacts/
	fi
	[ $rc -eq 0 ] && [ -z "${STREAMML_KEEP_SCRATCH:-}" ] && rm -rf "$scratch"
	exit $rc
fi

jobs=$(nproc 2>/dev/null || echo 2)
pg_bindir=$(pg_config --bindir)
tmp_bindir="$top/tmp_install$pg_bindir"

step() { printf '\n=== %s ===\n' "$*"; }

step "build (-Werror)"
make -s clean >/dev/null
make -s -j"$jobs" COPT=-Werror || exit 1

step "install into tmp_install"
make -s tmp-install || exit 1

regress_args=()
[ -n "${STREAMML_REGRESS:-}" ] && regress_args=(REGRESS="$STREAMML_REGRESS")
tap_files=(test/t/*.pl)
if [ -n "${STREAMML_PROVE:-}" ]; then
	tap_files=()
	for t in $STREAMML_PROVE; do
		[ "$t" = "-" ] || tap_files+=(test/t/"$t"*.pl)
	done
fi

step "pg_regress suite"
regress_log=$(mktemp)
regress_rc=0
if [ "${STREAMML_REGRESS:-}" != "-" ]; then
	make -s installcheck EXTRA_REGRESS_OPTS="--bindir=$tmp_bindir" "${regress_args[@]}" 2>&1 | tee "$regress_log"
	regress_rc=${PIPESTATUS[0]}
fi
if [ "$regress_rc" -ne 0 ] && [ -f regression.diffs ]; then
	step "regression.diffs"
	cat regression.diffs
fi

step "TAP suite"
# said only when the run has Citus tests, which then skip
if [ ! -f "$top/tmp_install$(pg_config --pkglibdir)/citus.so" ] &&
	[[ " ${tap_files[*]} " == *"/06"[0-9]"_citus"* ]]; then
	echo "citus: skipped: Citus is not installed in tmp_install (it is built, before a run that includes the 06x tests, from ../shared/vendor/citus-*.tar.gz when that is there); the Citus TAP tests skip"
fi
tap_log=$(mktemp)
tap_rc=0
if [ ${#tap_files[@]} -gt 0 ]; then
	make -s prove TEST_BINDIR="$tmp_bindir" PROVE_TESTS="${tap_files[*]}" 2>&1 | tee "$tap_log"
	tap_rc=${PIPESTATUS[0]}
fi
if [ "$tap_rc" -ne 0 ]; then
	for f in tmp_check/log/regress_log_*; do
		[ -f "$f" ] || continue
		step "tail of $f"
		tail -n 60 "$f"
	done
fi

# One closing line for the whole run: regression tests and TAP test files.
r_ok=$(grep -cE '^(ok|test) .*\.\.\. ok|^ok [0-9]+ ' "$regress_log")
r_bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$regress_log")
t_files=${#tap_files[@]}
t_bad=$(sed -n 's/^Failed \([0-9]*\)\/[0-9]* test programs.*/\1/p' "$tap_log")
t_bad=${t_bad:-0}
[ "$tap_rc" -ne 0 ] && [ "$t_bad" -eq 0 ] && t_bad=1
passed=$((r_ok + t_files - t_bad))
failed=$((r_bad + t_bad))
[ "$regress_rc" -ne 0 ] && [ "$r_bad" -eq 0 ] && failed=$((failed + 1))
rm -f "$regress_log" "$tap_log"
echo
echo "pg_streamml: $passed passed, $failed failed"
[ "$regress_rc" -eq 0 ] && [ "$tap_rc" -eq 0 ]
