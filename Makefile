# carepost - email gateway for a patient portal
#
#   make                 build lib, carepostd, carepostctl, unit tests
#   make check           unit tests (cmocka) + integration tests (real servers)
#   make check SANITIZE=1  the same, built with -fsanitize=address,undefined
#   make valgrind        unit tests under valgrind (errors and leaks fail)
#   make bench           throughput and memory against yardsticks
#   make fuzz            each libFuzzer target for FUZZ_SECONDS (clang)
#   make deps            apt-get every build, test and bench package (root)
#   make install         PREFIX=/usr/local DESTDIR=
#   make demo            the README's demo against local servers

PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
SBINDIR	?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR	?= $(PREFIX)/share
MANDIR	?= $(DATADIR)/man
SYSCONFDIR ?= /etc
UNITDIR	?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d

PKGS	= libetpan libesmtp-1.0 gpgme lmdb libsystemd jansson libgcrypt openssl \
	  libseccomp
CC	?= cc
WARN	= -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
	  -Wmissing-prototypes -Wno-unused-parameter
OPT	?= -O2 -g
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
# libetpan's .pc carries a dpkg "no-pie" link spec that breaks PIE links.
PKG_LIBS := $(filter-out -specs=%,$(shell pkg-config --libs $(PKGS)))
CMOCKA_LIBS := $(shell pkg-config --libs cmocka)

ifeq ($(SANITIZE),1)
BUILD	?= build-san
SAN	= -fsanitize=address,undefined -fno-omit-frame-pointer \
	  -fno-sanitize-recover=undefined
else
BUILD	?= build
SAN	=
endif

CPPFLAGS += -D_GNU_SOURCE -Ilib -DCAREPOST_DATADIR='"$(DATADIR)/carepost"' \
	    -DCAREPOST_LIBEXECDIR='"$(LIBEXECDIR)/carepost"'
CFLAGS	+= -std=gnu11 $(OPT) $(WARN) $(SAN) -fstack-protector-strong \
	   -D_FORTIFY_SOURCE=2 $(PKG_CFLAGS)
LDFLAGS	+= $(SAN) -Wl,-z,relro,-z,now

LIB_SRCS  := $(sort $(wildcard lib/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
PROGS	  := $(BUILD)/carepostd $(BUILD)/carepostctl $(BUILD)/carepost-pgp \
	     $(BUILD)/carepost-parse

all: $(PROGS) $(UNIT_BINS)

$(BUILD)/%.o: %.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Unit tests also depend on the fixture headers they share.
$(BUILD)/tests/unit/%.o: tests/unit/%.c $(wildcard lib/*.h tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libcarepost.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/carepostd: $(BUILD)/daemon/carepostd.o $(BUILD)/libcarepost.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread

$(BUILD)/carepostctl: $(BUILD)/daemon/carepostctl.o $(BUILD)/libcarepost.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread

# The gpg helper: only the libraries it uses, so that it forks cheaply.
$(BUILD)/carepost-pgp: $(BUILD)/daemon/carepost-pgp.o $(BUILD)/libcarepost.a
	$(CC) $(LDFLAGS) -Wl,--as-needed -o $@ $^ $(PKG_LIBS) -lpthread

# The parse helper: confined (lib/sandbox), only what parsing needs.
# libetpan's parser linked in (Debian's libetpan.a), not its shared
# library: that one maps GnuTLS, Berkeley DB and SASL, which parsing never
# calls, and every mapping is paid again by each child's fork and exit.
$(BUILD)/carepost-parse: $(BUILD)/daemon/carepost-parse.o $(BUILD)/libcarepost.a
	$(CC) $(LDFLAGS) -Wl,--as-needed -o $@ $^ -Wl,-Bstatic -letpan -Wl,-Bdynamic \
		$(PKG_LIBS) -lpthread

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libcarepost.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS) -lpthread

check: all
	BUILD=$(BUILD) tests/run

check-unit: all
	BUILD=$(BUILD) tests/run unit

valgrind: all
	BUILD=$(BUILD) VALGRIND=1 tests/run unit

bench: all
	BUILD=$(BUILD) bench/run
	BUILD=$(BUILD) bench/history
	BUILD=$(BUILD) bench/wake
	BUILD=$(BUILD) bench/keyring

# libFuzzer targets: clang, every lib object built with the fuzzer's
# coverage and ASan/UBSan; each fuzz/fuzz_NAME.c becomes build-fuzz/fuzz_NAME.
FUZZ_CC	  = clang
FUZZ_SAN  = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -std=gnu11 -O1 -g $(WARN) -Wno-missing-prototypes \
	      $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(PKG_CFLAGS)
FUZZ_SRCS := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=build-fuzz/%)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=build-fuzz/%.o)

build-fuzz/%.o: %.c $(wildcard lib/*.h fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

build-fuzz/libcarepost.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

build-fuzz/fuzz_%: build-fuzz/fuzz/fuzz_%.o build-fuzz/libcarepost.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lpthread

fuzz-build: $(FUZZ_BINS)

FUZZ_SECONDS ?= 10
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run

demo: all
	BUILD=$(BUILD) tests/demo

DEB_PKGS = build-essential pkg-config clang libclang-rt-14-dev \
	libetpan-dev libesmtp-dev libgpgme-dev liblmdb-dev lmdb-utils \
	libsystemd-dev libjansson-dev libgcrypt20-dev libcmocka-dev libssl-dev \
	libseccomp-dev \
	gnupg gpg-agent dovecot-imapd postfix isync python3 python3-lmdb valgrind \
	opendkim opendkim-tools python3-dkim python3-icalendar \
	man-db groff-base systemd

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $(DEB_PKGS)

# Paths written into installed files (unit, example config, man pages) as
# /usr/local/... are rewritten to the PREFIX of this install. Build and
# install with the same PREFIX: the default template directory is compiled
# into the programs.
INSTALL_PATHS = sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' \
	-e 's|/usr/local/bin/|$(BINDIR)/|g' \
	-e 's|/usr/local/share/|$(DATADIR)/|g' \
	-e 's|/usr/local/libexec/|$(LIBEXECDIR)/|g'
MAN_PAGES := man/carepostctl.1 man/carepost.conf.5 man/carepostd.8
TEMPLATE_FILES := $(sort $(wildcard templates/*/*.mustache))
TEMPLATE_LOCALES := $(sort $(patsubst templates/%/,%,$(dir $(TEMPLATE_FILES))))

install: $(PROGS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/carepost \
		$(DESTDIR)$(DATADIR)/carepost/templates $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
		$(DESTDIR)$(DATADIR)/doc/carepost
	install -m 0755 $(BUILD)/carepostd $(DESTDIR)$(SBINDIR)/carepostd
	install -d $(DESTDIR)$(LIBEXECDIR)/carepost
	install -m 0755 $(BUILD)/carepost-pgp $(DESTDIR)$(LIBEXECDIR)/carepost/carepost-pgp
	install -m 0755 $(BUILD)/carepost-parse $(DESTDIR)$(LIBEXECDIR)/carepost/carepost-parse
	install -m 0755 $(BUILD)/carepostctl $(DESTDIR)$(BINDIR)/carepostctl
	for m in $(MAN_PAGES); do \
		s=$${m##*.}; \
		$(INSTALL_PATHS) $$m >$(DESTDIR)$(MANDIR)/man$$s/$${m#man/} && \
		chmod 0644 $(DESTDIR)$(MANDIR)/man$$s/$${m#man/} || exit 1; \
	done
	$(INSTALL_PATHS) config/carepost.conf \
		>$(DESTDIR)$(SYSCONFDIR)/carepost/carepost.conf.example
	chmod 0644 $(DESTDIR)$(SYSCONFDIR)/carepost/carepost.conf.example
	install -m 0644 config/gpg.conf $(DESTDIR)$(DATADIR)/carepost/gpg.conf
	install -m 0644 config/opendkim.conf $(DESTDIR)$(DATADIR)/carepost/opendkim.conf
	for l in $(TEMPLATE_LOCALES); do \
		install -d $(DESTDIR)$(DATADIR)/carepost/templates/$$l && \
		install -m 0644 templates/$$l/*.mustache \
			$(DESTDIR)$(DATADIR)/carepost/templates/$$l/ || exit 1; \
	done
	$(INSTALL_PATHS) systemd/carepost.service >$(DESTDIR)$(UNITDIR)/carepost.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/carepost.service
	$(INSTALL_PATHS) systemd/carepost-scrub.service \
		>$(DESTDIR)$(UNITDIR)/carepost-scrub.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/carepost-scrub.service
	install -m 0644 systemd/carepost-scrub.timer $(DESTDIR)$(UNITDIR)/
	install -m 0644 systemd/carepost.sysusers $(DESTDIR)$(SYSUSERSDIR)/carepost.conf
	$(INSTALL_PATHS) systemd/carepost.tmpfiles >$(DESTDIR)$(TMPFILESDIR)/carepost.conf
	chmod 0644 $(DESTDIR)$(TMPFILESDIR)/carepost.conf
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DATADIR)/doc/carepost/

clean:
	rm -rf build build-san build-fuzz

.PHONY: all check check-unit valgrind bench fuzz fuzz-build demo deps install clean
.SECONDARY:
