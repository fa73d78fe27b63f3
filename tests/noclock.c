/* noclock: an LD_PRELOAD library for tests, so a daemon may run its kernel clock without touching the host's.
 *
 * Every adjtimex / ntp_adjtime / clock_adjtime call that would write (modes other than 0 or
 * ADJ_OFFSET_SS_READ), every clock_settime and settimeofday, is answered here:
 *   1. the kernel is asked whether the caller may write, by a probe that changes nothing:
 *      adjtimex(ADJ_TAI) with a negative offset, which the kernel refuses with EPERM without
 *      CAP_SYS_TIME and otherwise ignores (kernel/time/ntp.c: constant >= 0 is required);
 *   2. refused: -1 with the kernel's errno, as the real call would; allowed: the clock state is
 *      read (modes = 0) and returned as if the write had been done.
 * Each call is logged to the file named by NOCLOCK_LOG (opened when the library loads, so a
 * process that drops its privileges later keeps writing): "uid=U modes=0xM rc=R errno=E".
 * stratum1 calls libc through ctypes.CDLL(None), which finds these symbols first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

int noclock_loaded = 1;
static int log_fd = -1;

__attribute__((constructor)) static void noclock_open_log(void) {
    const char *path = getenv("NOCLOCK_LOG");
    if (path != NULL)
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

static void note(unsigned modes, int rc, int err) {
    char line[96];
    int n = snprintf(line, sizeof line, "uid=%d modes=%#x rc=%d errno=%d\n", (int)getuid(), modes, rc, err);
    if (log_fd >= 0 && n > 0)
        (void)!write(log_fd, line, (size_t)n);
}

static int may_write(void) {
    struct timex probe = {0};
    probe.modes = ADJ_TAI;
    probe.constant = -1;
    return (int)syscall(SYS_adjtimex, &probe) == -1 ? -1 : 0;
}

static int answer(clockid_t id, int posix, struct timex *buf) {
    unsigned modes = buf->modes;
    if (modes == 0 || modes == ADJ_OFFSET_SS_READ)
        return posix ? (int)syscall(SYS_clock_adjtime, id, buf) : (int)syscall(SYS_adjtimex, buf);
    int rc = may_write();
    if (rc == 0) {
        buf->modes = 0;
        rc = posix ? (int)syscall(SYS_clock_adjtime, id, buf) : (int)syscall(SYS_adjtimex, buf);
    }
    int err = rc == -1 ? errno : 0;
    note(modes, rc, err);
    errno = err;
    return rc;
}

int adjtimex(struct timex *buf) { return answer(CLOCK_REALTIME, 0, buf); }
int ntp_adjtime(struct timex *buf) { return answer(CLOCK_REALTIME, 0, buf); }
int clock_adjtime(clockid_t id, struct timex *buf) { return answer(id, 1, buf); }

int clock_settime(clockid_t id, const struct timespec *ts) {
    (void)id;
    (void)ts;
    int rc = may_write();
    int err = rc == -1 ? errno : 0;
    note(0x10000, rc, err);
    errno = err;
    return rc;
}

int settimeofday(const struct timeval *tv, const struct timezone *tz) {
    (void)tv;
    (void)tz;
    int rc = may_write();
    int err = rc == -1 ? errno : 0;
    note(0x20000, rc, err);
    errno = err;
    return rc;
}
