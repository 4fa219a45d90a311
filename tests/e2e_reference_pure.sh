#!/usr/bin/env bash
# Link-level purity check for reference/.
#
# The reference components are sans-I/O state machines: they never read a
# clock, never draw randomness, never touch a file, a socket, a thread or
# the process environment; time arrives as `now` and effects leave as
# values. The compiler cannot enforce that, but the linker can see it: any
# such call leaves an undefined symbol in the object file. This test runs
# `nm -u` over every compiled reference object ($BUILD/obj/reference/*.o)
# and fails on any symbol of the list below, printing the object and the
# symbol.
#
# It also follows calls the way a static link does: an undefined symbol
# that another object of the library defines (proto/, the generated
# protobuf code, another reference module) pulls that object in, and its
# own undefined symbols are checked in turn, so a reference module cannot
# reach a clock through a helper one layer down. A symbol defined in a
# higher layer (sim/, conformance/, tools/) is reported too: layers only
# call downwards. External libraries (libc, OpenSSL, protobuf-c, cJSON,
# libyaml) are judged by the entry points named below, not followed.
#
# Before that, a self-test compiles small probes in a temporary directory
# and checks that a probe calling time(), rand(), fopen() and
# pthread_once() is caught, that a call reaching clock_gettime() through
# another object is caught (while that object's own pthread_once is
# tolerated), that a call into a higher layer is caught, and that a clean
# probe passes: every run proves the check can fail.
#
# Usage (tests/run.sh sets the environment):
#   TEST_BIN_DIR=build/tests bash tests/e2e_reference_pure.sh
#   bash tests/e2e_reference_pure.sh --self-test       (the self-test only)
#   bash tests/e2e_reference_pure.sh --check FILE.o... (check given objects)
# The build directory is the parent of $TEST_BIN_DIR, else of $CAPSIM,
# else $BUILD, else ./build.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

# Forbidden entry points, by category. Exact names first, then prefixes
# (a trailing *). What is allowed is what a pure computation needs:
# memory (malloc, free, memcpy), strings, formatting into memory
# (snprintf), sorting, and the pure parts of OpenSSL, protobuf-c, cJSON
# and libyaml; assert()'s __assert_fail for true invariants.
#   clock      any reading of wall or monotonic time, timers, time zones
#   sleep      anything that waits or blocks
#   random     libc, kernel and OpenSSL random sources, and the OpenSSL
#              operations that draw from them (key generation, randomised
#              signatures and padding); signing is deterministic in proto/
#   process    process identity, environment, signals, exit/abort, spawning,
#              dynamic loading, locale changes, raw system calls
#   file       stdio and POSIX file descriptors, directories, terminals,
#              syslog, memory mapping, file-backed OpenSSL/libyaml helpers
#   network    sockets and name resolution
#   thread     threads, locks, semaphores, once-flags
#   transport  libuv and the NATS client
# The `lower` line names what is tolerated below reference/ only: proto/
# builds its constant decoder tables once under pthread_once, which reads
# no clock, draws nothing and does no I/O. A reference object may not call
# it itself.
forbidden_list() {
    cat <<'EOF'
clock time clock clock_gettime __clock_gettime clock_getres clock_settime clock_getcpuclockid
clock gettimeofday settimeofday ftime times timespec_get timespec_getres stime adjtime adjtimex
clock ntp_gettime ntp_adjtime localtime localtime_r mktime timelocal tzset ctime ctime_r getdate
clock alarm ualarm getitimer setitimer sched_getcpu
clock clock_* timer_* timerfd_*
sleep sleep usleep nanosleep clock_nanosleep pause sched_yield select pselect poll ppoll
sleep __poll_chk __ppoll_chk sigsuspend sigwait sigwaitinfo sigtimedwait
sleep wait waitpid wait3 wait4 waitid epoll_*
random rand rand_r srand random srandom random_r srandom_r initstate setstate initstate_r setstate_r
random drand48 erand48 lrand48 nrand48 mrand48 jrand48 srand48 seed48 lcong48 drand48_r erand48_r
random lrand48_r nrand48_r mrand48_r jrand48_r srand48_r seed48_r lcong48_r
random arc4random arc4random_buf arc4random_uniform getrandom getentropy
random uuid_generate uuid_generate_random uuid_generate_time uuid_generate_time_safe
random BN_rand BN_rand_ex BN_rand_range BN_rand_range_ex BN_priv_rand BN_priv_rand_ex
random BN_priv_rand_range BN_priv_rand_range_ex BN_pseudo_rand BN_pseudo_rand_range
random BN_generate_prime_ex BN_generate_prime_ex2 EC_KEY_generate_key RSA_generate_key_ex
random DH_generate_key EVP_PKEY_keygen EVP_PKEY_generate EVP_PKEY_Q_keygen EVP_PKEY_paramgen
random ECDSA_sign ECDSA_sign_ex ECDSA_do_sign ECDSA_do_sign_ex ECDSA_sign_setup EVP_PKEY_sign
random EVP_DigestSign EVP_DigestSignFinal EVP_SignFinal EVP_SignFinal_ex EVP_PKEY_encrypt
random EVP_SealInit RAND_* EVP_RAND*
process getpid getppid gettid getuid geteuid getgid getegid getpgid getpgrp getsid getlogin
process getlogin_r __getlogin_r_chk gethostname __gethostname_chk getdomainname uname getenv
process secure_getenv setenv unsetenv putenv clearenv sysconf get_nprocs get_nprocs_conf
process getrusage getrlimit setrlimit prlimit fork vfork execv execve execvp execvpe execl execle
process execlp fexecve posix_spawn posix_spawnp system popen pclose kill raise signal sigaction
process exit _exit _Exit quick_exit abort atexit at_quick_exit on_exit dlopen dlsym dlclose
process setlocale syscall
file fopen fopen64 freopen freopen64 fdopen fclose fcloseall fflush fflush_unlocked fread
file fread_unlocked __fread_chk __fread_unlocked_chk fwrite fwrite_unlocked fgets fgets_unlocked
file __fgets_chk __fgets_unlocked_chk fgetc fgetc_unlocked getc getc_unlocked _IO_getc getchar
file getchar_unlocked gets ungetc fputs fputs_unlocked fputc fputc_unlocked putc putc_unlocked
file _IO_putc putchar putchar_unlocked puts printf __printf_chk fprintf __fprintf_chk vprintf
file __vprintf_chk vfprintf __vfprintf_chk dprintf __dprintf_chk vdprintf __vdprintf_chk scanf
file fscanf vscanf vfscanf __isoc99_scanf __isoc99_fscanf __isoc99_vscanf __isoc99_vfscanf
file __isoc23_scanf __isoc23_fscanf __isoc23_vscanf __isoc23_vfscanf perror psignal fseek
file fseeko fseeko64 ftell ftello ftello64 rewind fgetpos fgetpos64 fsetpos fsetpos64 feof ferror
file clearerr fileno setvbuf setbuf setbuffer setlinebuf tmpfile tmpfile64 tmpnam tmpnam_r tempnam
file mkstemp mkstemp64 mkstemps mkostemp mkostemps mkdtemp getline getdelim err errx warn warnx
file verr verrx vwarn vwarnx error error_at_line wprintf fwprintf vwprintf vfwprintf fputws
file fgetws putwchar getwchar fputwc fgetwc stdin stdout stderr
file open open64 __open_2 __open64_2 openat openat64 __openat_2 __openat64_2 creat creat64 close
file read __read_chk write pread pread64 __pread_chk __pread64_chk pwrite pwrite64 readv writev
file preadv pwritev lseek lseek64 fsync fdatasync sync syncfs truncate ftruncate opendir
file fdopendir readdir readdir64 readdir_r closedir scandir stat stat64 fstat fstat64 lstat
file lstat64 fstatat fstatat64 __xstat __xstat64 __fxstat __fxstat64 __lxstat __lxstat64 statx
file access faccessat realpath __realpath_chk readlink __readlink_chk chdir fchdir getcwd
file __getcwd_chk mkdir mkdirat rmdir unlink unlinkat remove rename renameat link symlink chmod
file fchmod chown fchown mmap mmap64 munmap msync ioctl fcntl fcntl64 flock lockf dup dup2 dup3
file pipe pipe2 mkfifo isatty ttyname ttyname_r tcgetattr tcsetattr syslog __syslog_chk vsyslog
file __vsyslog_chk openlog closelog sendfile splice tee eventfd signalfd memfd_create shm_open
file shm_unlink mq_open inotify_* BIO_new_file BIO_new_fp BIO_new_fd BIO_new_socket
file BIO_new_connect BIO_new_accept BIO_s_file BIO_s_fd BIO_s_socket BIO_s_connect BIO_s_accept
file BIO_read_filename ERR_print_errors_fp PEM_read_PrivateKey PEM_read_PUBKEY
file PEM_write_PrivateKey PEM_write_PUBKEY CONF_modules_load_file OPENSSL_config
file yaml_parser_set_input_file yaml_emitter_set_output_file
network socket socketpair connect bind listen accept accept4 send sendto sendmsg sendmmsg recv
network __recv_chk recvfrom __recvfrom_chk recvmsg recvmmsg shutdown getsockopt setsockopt
network getpeername getsockname getaddrinfo freeaddrinfo getnameinfo gethostbyname
network gethostbyname2 gethostbyname_r gethostbyaddr res_init res_query res_search getifaddrs
network if_nametoindex curl_*
thread call_once pthread_* thrd_* mtx_* cnd_* tss_* sem_*
transport uv_* nats* js_* jsCtx_*
lower pthread_once call_once
EOF
}

# Reads "nm -A -P" lines of the form "FILE: SYMBOL TYPE ..." from the files
# named in argv: roots (checked), lib (followed), upper (higher layers).
# Prints one line per offence and exits 1 if there was any.
# shellcheck disable=SC2016 # an awk program: its $fields are awk's
report_awk='
function is_forbidden(sym,    p) {
    if (sym in exact) return exact[sym]
    for (p in prefix) if (index(sym, p) == 1) return prefix[p]
    return ""
}
function strip(f) { sub(/:$/, "", f); return f }
FILENAME == rules && $1 == "lower" {
    for (i = 2; i <= NF; i++) lower_ok[$i] = 1
    next
}
FILENAME == rules {
    for (i = 2; i <= NF; i++) {
        if ($i ~ /\*$/) { p = $i; sub(/\*$/, "", p); prefix[p] = $1 } else exact[$i] = $1
    }
    next
}
FILENAME == roots_u { o = strip($1); nu[o]++; und[o, nu[o]] = $2; next }
FILENAME == lib_u { o = strip($1); nu[o]++; und[o, nu[o]] = $2; next }
FILENAME == lib_d { if (!($2 in def)) def[$2] = strip($1); next }
FILENAME == upper_d { if (!($2 in updef)) updef[$2] = strip($1); next }
FILENAME == root_list { roots[++nroots] = $0; isroot[$0] = 1; next }
END {
    bad = 0
    for (r = 1; r <= nroots; r++) {
        root = roots[r]
        split("", seen); split("", via)
        head = 1; tail = 1; queue[1] = root; seen[root] = 1; via[root] = ""
        while (head <= tail) {
            o = queue[head++]
            for (k = 1; k <= nu[o]; k++) {
                s = und[o, k]
                path = (o == root) ? root : root " -> " via[o]
                cat = is_forbidden(s)
                if (cat != "" && !(o in isroot) && (s in lower_ok))
                    cat = ""
                if (cat != "") {
                    printf "%s: %s (%s)\n", path, s, cat
                    bad = 1
                } else if (s in updef) {
                    printf "%s: %s (layering: defined in %s)\n", path, s, updef[s]
                    bad = 1
                } else if ((s in def) && !(def[s] in seen)) {
                    d = def[s]; seen[d] = 1
                    via[d] = (via[o] == "" ? "" : via[o] " -> ") d
                    queue[++tail] = d
                }
            }
        }
    }
    exit bad
}'

# check ROOT_OBJECTS... -- LIB_OBJECTS... -- UPPER_OBJECTS...
# Prints each offence; returns 0 when the roots are pure.
check() {
    local tmp roots=() lib=() upper=() part=0 rc
    for a in "$@"; do
        if [ "$a" = "--" ]; then part=$((part + 1)); continue; fi
        case $part in
            0) roots+=("$a") ;;
            1) lib+=("$a") ;;
            *) upper+=("$a") ;;
        esac
    done
    tmp=$(mktemp -d) || return 2
    forbidden_list >"$tmp/rules"
    printf '%s\n' "${roots[@]}" >"$tmp/roots"
    : >"$tmp/roots.u"; : >"$tmp/lib.u"; : >"$tmp/lib.d"; : >"$tmp/upper.d"
    nm -A -P -u "${roots[@]}" >"$tmp/roots.u" || { rm -rf "$tmp"; return 2; }
    if [ "${#lib[@]}" -gt 0 ]; then
        nm -A -P -u "${lib[@]}" >"$tmp/lib.u" 2>/dev/null
        nm -A -P -g --defined-only "${lib[@]}" "${roots[@]}" >"$tmp/lib.d" 2>/dev/null
    fi
    if [ "${#upper[@]}" -gt 0 ]; then
        nm -A -P -g --defined-only "${upper[@]}" >"$tmp/upper.d" 2>/dev/null
    fi
    awk -v rules="$tmp/rules" -v roots_u="$tmp/roots.u" -v lib_u="$tmp/lib.u" \
        -v lib_d="$tmp/lib.d" -v upper_d="$tmp/upper.d" -v root_list="$tmp/roots" \
        "$report_awk" "$tmp/rules" "$tmp/roots.u" "$tmp/lib.u" "$tmp/lib.d" "$tmp/upper.d" \
        "$tmp/roots"
    rc=$?
    rm -rf "$tmp"
    return $rc
}

fail() { printf 'FAIL: %s\n' "$*"; exit 1; }

compiler() {
    local c
    for c in "${CC:-}" cc gcc clang; do
        [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && { echo "$c"; return 0; }
    done
    return 1
}

# Compiles probes and checks that the check catches what it must and
# passes what it must.
self_test() {
    local cc dir out rc
    cc=$(compiler) || fail "self-test: no C compiler found"
    dir=$(mktemp -d) || fail "self-test: no temporary directory"
    cat >"$dir/impure.c" <<'EOF'
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void init(void) {}
int probe_now(void) { return (int)time(NULL) + rand() + pthread_once(&once, init); }
void probe_log(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}
EOF
    cat >"$dir/helper.c" <<'EOF'
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <time.h>
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void init(void) {}
long probe_helper_ticks(void)
{
    struct timespec ts;
    pthread_once(&once, init);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_nsec;
}
EOF
    cat >"$dir/indirect.c" <<'EOF'
long probe_helper_ticks(void);
long probe_indirect(void) { return probe_helper_ticks() + 1; }
EOF
    cat >"$dir/upper.c" <<'EOF'
int probe_upper_layer(int x) { return x * 2; }
EOF
    cat >"$dir/layered.c" <<'EOF'
int probe_upper_layer(int x);
int probe_layered(int x) { return probe_upper_layer(x) + 1; }
EOF
    cat >"$dir/pure.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int probe_pure(char *out, size_t n, const char *in)
{
    char *copy = malloc(strlen(in) + 1);
    if (!copy)
        return -1;
    memcpy(copy, in, strlen(in) + 1);
    int w = snprintf(out, n, "%s", copy);
    free(copy);
    return w;
}
EOF
    local f
    for f in impure helper indirect upper layered pure; do
        "$cc" -std=c11 -O2 -c "$dir/$f.c" -o "$dir/$f.o" 2>"$dir/cc.log" ||
            { cat "$dir/cc.log"; rm -rf "$dir"; fail "self-test: cannot compile the $f probe"; }
    done

    out=$(check "$dir/impure.o" -- "$dir/pure.o"); rc=$?
    [ "$rc" -eq 1 ] || { rm -rf "$dir"; fail "self-test: a probe calling time() passed"; }
    for s in time rand fopen fclose pthread_once; do
        printf '%s\n' "$out" | grep -q "^$dir/impure.o: $s (" ||
            { printf '%s\n' "$out"; rm -rf "$dir"; fail "self-test: $s was not reported"; }
    done

    out=$(check "$dir/indirect.o" -- "$dir/helper.o"); rc=$?
    [ "$rc" -eq 1 ] || { rm -rf "$dir"; fail "self-test: clock_gettime() through a helper passed"; }
    printf '%s\n' "$out" | grep -q "^$dir/indirect.o -> $dir/helper.o: clock_gettime (clock)" ||
        { printf '%s\n' "$out"; rm -rf "$dir"; fail "self-test: the indirect clock was not traced"; }
    printf '%s\n' "$out" | grep -q "pthread_once" &&
        { printf '%s\n' "$out"; rm -rf "$dir"; fail "self-test: pthread_once below the roots was reported"; }

    out=$(check "$dir/layered.o" -- "$dir/pure.o" -- "$dir/upper.o"); rc=$?
    [ "$rc" -eq 1 ] || { rm -rf "$dir"; fail "self-test: a call into a higher layer passed"; }
    printf '%s\n' "$out" | grep -q "^$dir/layered.o: probe_upper_layer (layering" ||
        { printf '%s\n' "$out"; rm -rf "$dir"; fail "self-test: the layering offence was not named"; }

    out=$(check "$dir/pure.o" "$dir/indirect.o" -- "$dir/pure.o"); rc=$?
    [ "$rc" -eq 0 ] || { printf '%s\n' "$out"; rm -rf "$dir"; fail "self-test: a pure probe failed"; }

    rm -rf "$dir"
    echo "self-test: ok (time, rand, fopen, fclose, pthread_once, an indirect clock_gettime and a layering call caught; pure probe passed)"
}

build_dir() {
    if [ -n "${TEST_BIN_DIR:-}" ]; then dirname "$TEST_BIN_DIR"
    elif [ -n "${CAPSIM:-}" ]; then dirname "$CAPSIM"
    else echo "${BUILD:-build}"
    fi
}

case "${1:-}" in
    --self-test)
        self_test
        exit 0
        ;;
    --check)
        shift
        [ $# -gt 0 ] || fail "--check needs object files"
        check "$@"
        rc=$?
        if [ $rc -eq 0 ]; then
            for a in "$@"; do [ "$a" = "--" ] && break; echo "pure: $a"; done
        fi
        exit $rc
        ;;
    "") ;;
    *)
        echo "usage: $0 [--self-test | --check FILE.o...]" >&2
        exit 2
        ;;
esac

self_test
build=$(build_dir)
objdir="$build/obj"
[ -d "$objdir/reference" ] || fail "no $objdir/reference: build first (make BUILD=$build)"

# Every object in the directory is checked, and every reference/*.c must
# have its object, or the check would pass on a partial build.
shopt -s nullglob
srcs=("$root"/reference/*.c)
[ "${#srcs[@]}" -gt 0 ] || fail "no reference/*.c sources in $root"
for src in "${srcs[@]}"; do
    obj="$objdir/reference/$(basename "${src%.c}").o"
    [ -f "$obj" ] || fail "$obj is missing (reference/$(basename "$src") not built)"
done
refs=("$objdir"/reference/*.o)
lib=("$objdir"/proto/*.o)
while IFS= read -r -d '' o; do lib+=("$o"); done < <(find "$objdir/gen" -name '*.o' -print0 2>/dev/null | sort -z)
upper=()
for d in sim conformance tools; do
    [ -d "$objdir/$d" ] || continue
    while IFS= read -r -d '' o; do upper+=("$o"); done < <(find "$objdir/$d" -name '*.o' -print0 | sort -z)
done

if check "${refs[@]}" -- "${lib[@]}" -- "${upper[@]}"; then
    echo "pure: ${#refs[@]} reference objects in $objdir/reference (no clock, random, I/O, thread or transport symbol, directly or through the library)"
    exit 0
fi
fail "reference/ objects above call impure functions (see $0 for the list and why)"
