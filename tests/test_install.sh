#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test_install.sh BUILD_DIR SOURCE_DIR - what a user gets from `make install`.
#
# Installs BUILD_DIR into a temporary prefix and uses only what landed there:
#  (a) a program built with the installed libzbus.pc (pkg-config) creates a
#      channel, publishes and receives one message;
#  (b) the same program built through the installed CMake package
#      (find_package(zbus) + zbus::zbus);
#  (c) the installed zbus.h compiles on its own as C11 and as C++, and the
#      shared library exports nothing but zbus_* symbols.
# The build tree and the source tree are never used for (a)-(c): a header or
# a library found there would hide a broken installation.
#
# Prints each check; exits non-zero at the first failure.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/zbus-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

step() { printf '[check] %s\n' "$*"; }
ok() { printf '[  ok ] %s\n' "$*"; }
fail() {
	printf '[FAIL ] %s\n' "$*" >&2
	exit 1
}
# run LOG CMD...: run quietly, show the log only when it fails.
run() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		return 1
	fi
}

for tool in cmake gcc g++ pkg-config nm timeout; do
	# g++ is part of this machine's toolchain: a missing one is a broken
	# environment, not a reason to skip the C++ check.
	command -v "$tool" >/dev/null || fail "$tool not found in PATH"
done

# ---------------------------------------------------------------------------
step "cmake --install $build --prefix <tmp>"
run "$tmp/install.log" cmake --install "$build" --prefix "$prefix" ||
	fail "cmake --install"
header=$prefix/include/zbus/zbus.h
[[ -f $header ]] || fail "zbus.h not installed at include/zbus/zbus.h"
pc=$(find "$prefix" -path '*/pkgconfig/libzbus.pc' -print -quit)
[[ -n $pc ]] || fail "libzbus.pc not installed under lib*/pkgconfig"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
so=$libdir/libzbus.so
[[ -e $so ]] || fail "libzbus.so not installed next to pkgconfig/ ($libdir)"
# The installed header is the project's, not a stale or generated copy.
cmp -s "$header" "$src/libzbus/include/zbus/zbus.h" ||
	fail "installed zbus.h differs from $src/libzbus/include/zbus/zbus.h"
ok "installed: ${header#"$prefix"/}, ${pc#"$prefix"/}, ${so#"$prefix"/}"

# The one program (a) and (b) build: create, publish, receive.
cat >"$tmp/prog.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <zbus/zbus.h>

#define CHECK(call)                                                     \
	do {                                                            \
		int r_ = (call);                                        \
		if (r_ < 0) {                                           \
			fprintf(stderr, "%s: %s\n", #call,              \
				zbus_strerror(r_));                     \
			return 1;                                       \
		}                                                       \
	} while (0)

int main(void)
{
	static const char text[] = "hello, installed libzbus";
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE };
	struct zbus_channel *ch = NULL;
	struct zbus_pub *pub = NULL;
	struct zbus_sub *sub = NULL;
	char buf[64] = { 0 };
	int n;

	CHECK(zbus_channel_create("install-test", NULL, &ch));
	CHECK(zbus_sub_new(ch, &so, &sub)); /* before the message */
	CHECK(zbus_pub_new(ch, NULL, &pub));
	CHECK(zbus_pub_send(pub, text, sizeof(text)));
	n = zbus_sub_recv(sub, buf, sizeof(buf), NULL, 1000);
	CHECK(n);
	if (n != (int)sizeof(text) || strcmp(buf, text) != 0) {
		fprintf(stderr, "received %d bytes \"%s\"\n", n, buf);
		return 1;
	}
	pub = zbus_pub_free(pub);
	sub = zbus_sub_free(sub);
	ch = zbus_channel_free(ch);
	puts("published and received one message");
	return 0;
}
EOF

# run_prog EXE: run with the installed library, and prove it is the one
# that was loaded (not a copy elsewhere on the system).
run_prog() {
	local exe=$1 loaded
	loaded=$(LD_LIBRARY_PATH=$libdir ldd "$exe" |
		awk '/libzbus\.so/ {print $3}')
	[[ $loaded == "$libdir"/* ]] ||
		fail "$exe loads libzbus from '${loaded:-nowhere}'," \
			"not $libdir"
	LD_LIBRARY_PATH=$libdir timeout 30 "$exe" ||
		fail "$exe failed (exit $?)"
}

# ---------------------------------------------------------------------------
step "(a) pkg-config --cflags --libs libzbus," \
	"PKG_CONFIG_PATH=<tmp>/${pcdir#"$prefix"/}"
export PKG_CONFIG_PATH=$pcdir
flags=$(pkg-config --cflags --libs libzbus) || fail "pkg-config libzbus"
echo "        flags: $flags"
# A .pc that still names the configure-time prefix would send the compiler
# to another installation (or to nothing): it must describe this one.
for var in includedir libdir; do
	val=$(pkg-config --variable="$var" libzbus)
	[[ $val == "$prefix"/* ]] ||
		fail "libzbus.pc: $var=$val is outside the install prefix" \
			"$prefix (the prefix was fixed at configure time;" \
			"cmake --install --prefix does not relocate it)"
done
# shellcheck disable=SC2086 # word splitting of the flags is intended
run "$tmp/a.log" gcc -std=c11 -Wall -Wextra -Werror -o "$tmp/prog_pc" \
	"$tmp/prog.c" $flags || fail "building with pkg-config flags"
run_prog "$tmp/prog_pc"
ok "(a) built with libzbus.pc and ran"

# ---------------------------------------------------------------------------
step "(b) find_package(zbus REQUIRED) + zbus::zbus, CMAKE_PREFIX_PATH=<tmp>"
mkdir "$tmp/consumer"
cp "$tmp/prog.c" "$tmp/consumer/prog.c"
cat >"$tmp/consumer/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(zbus_consumer C)
find_package(zbus REQUIRED)
# Found in the temporary prefix, not in some system-wide copy.
if(NOT zbus_DIR MATCHES "^${EXPECTED_PREFIX}/")
	message(FATAL_ERROR
		"zbus found at ${zbus_DIR}, not in ${EXPECTED_PREFIX}")
endif()
add_executable(prog prog.c)
target_link_libraries(prog PRIVATE zbus::zbus)
EOF
run "$tmp/b-configure.log" cmake -S "$tmp/consumer" -B "$tmp/consumer/build" \
	-DCMAKE_PREFIX_PATH="$prefix" -DEXPECTED_PREFIX="$prefix" \
	-DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON ||
	fail "configuring a project that uses find_package(zbus)"
run "$tmp/b-build.log" cmake --build "$tmp/consumer/build" ||
	fail "building against zbus::zbus"
run_prog "$tmp/consumer/build/prog"
ok "(b) built with the CMake package and ran"

# ---------------------------------------------------------------------------
step "(c) installed zbus.h compiles standalone as C11"
printf '#include <zbus/zbus.h>\n' >"$tmp/hdr.c"
run "$tmp/c.log" gcc -std=c11 -Wall -Wextra -Werror -fsyntax-only \
	-I"$prefix/include" "$tmp/hdr.c" || fail "zbus.h as C11"
ok "(c) zbus.h is self-contained C11"

step "(c) installed zbus.h compiles standalone as C++"
run "$tmp/cxx.log" g++ -Wall -Wextra -Werror -fsyntax-only -x c++ \
	-I"$prefix/include" "$tmp/hdr.c" || fail "zbus.h as C++"
# Syntax is not linkage: a C++ caller must reach the C symbols unmangled.
cat >"$tmp/cxx.cc" <<'EOF'
#include <zbus/zbus.h>
int main() { return zbus_strerror(0) ? 0 : 1; }
EOF
run "$tmp/cxx-link.log" g++ -Wall -Wextra -Werror -I"$prefix/include" \
	-o "$tmp/cxx" "$tmp/cxx.cc" -L"$libdir" -lzbus ||
	fail "a C++ program calling zbus_strerror() does not link" \
		"(missing extern \"C\"?)"
LD_LIBRARY_PATH=$libdir timeout 30 "$tmp/cxx" || fail "C++ program failed"
ok "(c) zbus.h compiles and links as C++"

step "(c) libzbus.so exports only zbus_* symbols"
# nm -D lists "ADDR TYPE NAME[@@VERSION]"; the version node itself
# (ZBUS_0.1, type A) is not a symbol anyone can call.
nm -D --defined-only "$so" >"$tmp/nm.txt" || fail "nm -D $so"
exported=$(awk '$2 != "A" {sub(/@.*/, "", $3); print $3}' "$tmp/nm.txt" |
	sort -u)
[[ -n $exported ]] || fail "libzbus.so exports nothing"
stray=$(grep -v '^zbus_' <<<"$exported" || true)
[[ -z $stray ]] ||
	fail "libzbus.so exports non-zbus_ symbols: $(tr '\n' ' ' <<<"$stray")"
# And every function the header declares is really there.
declared=$(grep '^ZBUS_EXPORT' "$header" | grep -o 'zbus_[a-z0-9_]*(' |
	tr -d '(' | sort -u)
[[ -n $declared ]] || fail "no ZBUS_EXPORT declarations found in zbus.h"
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
[[ -z $missing ]] ||
	fail "declared in zbus.h, not exported: $(tr '\n' ' ' <<<"$missing")"
ok "(c) $(wc -l <<<"$exported") symbols, all zbus_*, all declared ones present"

echo "install checks passed"
