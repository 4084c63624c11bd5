/* SPDX-License-Identifier: GPL-3.0-or-later */
/* LD_PRELOAD into the server alone (test-clock-jump.sh): CLOCK_REALTIME as
 * the process sees it is the real one plus the number of seconds in the file
 * $MANDOS_CLOCK_STEP_FILE (read at every call; none or unreadable: 0), and
 * so is gettimeofday() (the log's time stamps). The
 * other clocks, and the kernel's timers, are untouched: it plays a wall clock
 * stepped by NTP without setting this machine's shared clock. (libfaketime
 * cannot: it moves the absolute times given to every timerfd, so sd-event's
 * CLOCK_MONOTONIC timers fail with EINVAL once an offset is set.) */

#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long step_seconds(void) {
        const char *path = getenv("MANDOS_CLOCK_STEP_FILE");
        char buf[32];
        ssize_t n;
        int fd;

        if (!path)
                return 0;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, buf, sizeof(buf) - 1);
        (void) close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        return strtoll(buf, NULL, 10);
}

int clock_gettime(clockid_t id, struct timespec *ts) {
        long r = syscall(SYS_clock_gettime, id, ts);

        if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
                ts->tv_sec += step_seconds();
        return (int) r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
        long r = syscall(SYS_gettimeofday, tv, tz);

        if (r == 0)
                tv->tv_sec += step_seconds();
        return (int) r;
}
