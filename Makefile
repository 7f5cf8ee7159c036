# pg_streamml — build, install and test with PGXS.
#
#   make                 build the extension and the dev Kafka broker
#   make install         install into the server found by pg_config
#   make installcheck    pg_regress suite on a throw-away instance (library preloaded)
#   make prove           TAP suite (workers, dev broker, restarts, crashes)
#   make test            everything, from a fresh machine: deps, -Werror build, both suites
#   make demo            the end-to-end demo on a throw-away server (seed 004;
#                        DEMO=games or DEMO=classify for the other seeds)
#   make bench           the benchmarks under test/bench (by hand, never in CI)
#   make citus           Citus for the scale-out tests, from ../shared/vendor (cached)

EXTENSION  = pg_streamml
EXTVERSION = 0.1.0
MODULE_big = pg_streamml

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

# The install script is assembled from one SQL fragment per area, each kept
# next to the C it declares: first the common part, then the areas in order.
SQL_PARTS = src/pg_streamml.sql $(sort $(wildcard src/*/*.sql))
DATA_built = $(EXTENSION)--$(EXTVERSION).sql

OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))
# -Wextra, less the noise of PostgreSQL's own headers and conventions: unused
# fmgr parameters, and sign comparisons inside macros such as ARR_DATA_PTR.
PG_CPPFLAGS = -I$(srcdir)/src -Wextra -Wno-unused-parameter -Wno-sign-compare
SHLIB_LINK = -lrdkafka -lxgboost -lm

# pg_regress: every file in sql/, on a temporary instance that preloads the
# library (and pg_cron), so "make installcheck" never touches a live server.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=tmp_check_regress \
	--temp-config=$(srcdir)/test/regress.conf

# As root (PostgreSQL refuses to run as root), installcheck and prove go
# through test/run-tests.sh, below, instead of PGXS's own recipes.
AS_ROOT := $(filter 0,$(shell id -u))
ifneq ($(AS_ROOT),)
NO_INSTALLCHECK = 1
endif

BROKER = test/broker/streamml-dev-broker
EXTRA_CLEAN = $(BROKER) tmp_check tmp_check_regress tmp_install results \
	regression.diffs regression.out log

ifeq ($(PGXS),)
# No server headers yet (a fresh machine): the targets that test or demo
# install the dependencies, then run again with PGXS available.  Building
# and installing into a server never installs packages behind your back.
.DEFAULT_GOAL := test
installcheck prove test demo bench citus:
	bash test/install-deps.sh
	$(MAKE) $@
all install:
	@echo "pg_config (PostgreSQL's server headers) was not found: install postgresql-server-dev-15 (and librdkafka-dev, libxgboost-dev), or set PG_CONFIG." >&2
	@echo "'make test' and 'make demo' install what they need themselves." >&2
	@false
else
include $(PGXS)

all: $(BROKER)

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

$(OBJS): $(wildcard src/*.h src/*/*.h)

# The dev Kafka broker: librdkafka's mock cluster behind a small CLI.
$(BROKER): test/broker/dev_broker.c
	$(CC) $(CFLAGS) $(COPT) -Wextra -o $@ $< -lrdkafka

# A private copy of the server with the extension installed into it, so the
# test suites need no write access to system directories.  PostgreSQL finds
# its share and lib directories relative to its binaries, so the copy works.
TMP_INSTALL = $(CURDIR)/tmp_install
tmp-install: all
	rm -rf '$(TMP_INSTALL)'
	for d in '$(bindir)' '$(pkglibdir)' '$(datadir)'; do \
		mkdir -p "$(TMP_INSTALL)$$(dirname $$d)" && \
		cp -a "$$d" "$(TMP_INSTALL)$$d"; done
	$(MAKE) install DESTDIR='$(TMP_INSTALL)' >/dev/null
	if [ -f '$(CITUS_DIR)/stamp' ]; then cp -a '$(CITUS_DIR)/install/.' '$(TMP_INSTALL)/'; fi

# Citus, for the scale-out tests (test/t/060_citus.pl).  It is not in
# Debian: the tests build it out of the tree from the vendored source
# (../shared/vendor, beside the repository) and install it into
# $(CITUS_DIR)/install, which tmp-install copies into the private server.
# Built once: the stamp keeps it until the tarball changes.  Without the
# tarball there is nothing to do (tmp-install copies an installed Citus
# with the server's lib directory, if there is one).
CITUS_TARBALL ?= $(firstword $(wildcard $(CURDIR)/../shared/vendor/citus-*.tar.gz))
CITUS_DIR = $(CURDIR)/tmp_citus
CITUS_MAKE = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(MAKE)
citus: $(if $(CITUS_TARBALL),$(CITUS_DIR)/stamp)
$(CITUS_DIR)/stamp: $(CITUS_TARBALL)
	rm -rf '$(CITUS_DIR)' && mkdir -p '$(CITUS_DIR)/src'
	tar xzf '$(CITUS_TARBALL)' -C '$(CITUS_DIR)/src' --strip-components=1
	cd '$(CITUS_DIR)/src' && ./configure --without-libcurl PG_CONFIG='$(PG_CONFIG)' >../build.log 2>&1 && \
		$(CITUS_MAKE) -j$$(nproc) with_llvm=no >>../build.log 2>&1 && \
		$(CITUS_MAKE) install with_llvm=no DESTDIR='$(CITUS_DIR)/install' >>../build.log 2>&1 || \
		{ tail -n 40 ../build.log; exit 1; }
	rm -rf '$(CITUS_DIR)/src'
	touch '$@'

# PostgreSQL refuses to run as root: as root, installcheck and prove run
# through test/run-tests.sh, which runs them as an unprivileged user in a
# scratch copy of the tree (as "make test" does).
ifneq ($(AS_ROOT),)
installcheck:
	STREAMML_PROVE=- $(if $(filter command line,$(origin REGRESS)),STREAMML_REGRESS='$(REGRESS)') \
		bash test/run-tests.sh
prove:
	STREAMML_REGRESS=- STREAMML_PROVE='$(if $(PROVE_TESTS),$(patsubst test/t/%.pl,%,$(PROVE_TESTS)))' \
		bash test/run-tests.sh
else
# TAP tests (PostgreSQL::Test::Cluster from the PGXS package), against the
# server in TEST_BINDIR (the installed one unless run-tests.sh says otherwise).
TEST_BINDIR ?= $(bindir)
prove: $(BROKER)
	rm -rf tmp_check && mkdir -p tmp_check
	TESTDIR='$(CURDIR)' PATH="$(TEST_BINDIR):$$PATH" PGPORT='6$(DEF_PGPORT)' \
	PG_REGRESS='$(top_builddir)/src/test/regress/pg_regress' \
	STREAMML_BROKER='$(CURDIR)/$(BROKER)' \
	$(PROVE) $(PG_PROVE_FLAGS) -I test/perl $(PROVE_FLAGS) \
		$(if $(PROVE_TESTS),$(PROVE_TESTS),test/t/*.pl)
endif

test:
	bash test/run-tests.sh

demo:
	bash test/demo.sh $(DEMO)

bench: all
	bash test/bench/run.sh

.PHONY: tmp-install citus prove test demo bench
endif
