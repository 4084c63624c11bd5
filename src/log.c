/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <systemd/sd-journal.h>

static LogTarget log_target = LOG_TARGET_STDERR;
static int log_max_level = LOG_WARNING;
static int syslog_fd = -1;
/* Renamed from the Zeroconf thread (zeroconf.h) while the loop logs. */
static pthread_mutex_t service_prefix_lock = PTHREAD_MUTEX_INITIALIZER;
static char service_prefix[128] = "Mandos";

static const struct {
        const char *name;
        int level;
} level_table[] = {
        { "CRITICAL", LOG_CRIT },
        { "FATAL",    LOG_CRIT },
        { "ERROR",    LOG_ERR },
        { "WARNING",  LOG_WARNING },
        { "WARN",     LOG_WARNING },
        { "INFO",     LOG_INFO },
        { "DEBUG",    LOG_DEBUG },
        { "NOTSET",   LOG_DEBUG },
};

int log_level_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(level_table); i++)
                if (strcasecmp(s, level_table[i].name) == 0)
                        return level_table[i].level;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        switch (level) {
        case LOG_EMERG:
        case LOG_ALERT:
        case LOG_CRIT:
                return "CRITICAL";
        case LOG_ERR:
                return "ERROR";
        case LOG_WARNING:
        case LOG_NOTICE:
                return "WARNING";
        case LOG_INFO:
                return "INFO";
        default:
                return "DEBUG";
        }
}

LogTarget log_target_for_foreground(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        /* Only when our stderr really is the stream systemd set up for us. */
        if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
            (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino)
                return LOG_TARGET_JOURNAL;
        return LOG_TARGET_STDERR;
}

void log_open(LogTarget target) {
        log_target = target;
        if (target != LOG_TARGET_SYSLOG || syslog_fd >= 0)
                return;

        syslog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (syslog_fd < 0)
                return;
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
        if (connect(syslog_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                (void) close(syslog_fd);
                syslog_fd = -1;
        }
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

void log_set_service_name(const char *name) {
        (void) pthread_mutex_lock(&service_prefix_lock);
        if (!name || streq(name, "Mandos"))
                snprintf(service_prefix, sizeof(service_prefix), "Mandos");
        else
                snprintf(service_prefix, sizeof(service_prefix), "Mandos (%s)", name);
        (void) pthread_mutex_unlock(&service_prefix_lock);
}

static void log_to_stderr(int level, const char *message) {
        struct timeval tv;
        struct tm tm;
        char when[32];

        (void) gettimeofday(&tv, NULL);
        (void) localtime_r(&tv.tv_sec, &tm);
        (void) strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(stderr, "%s,%03ld %s [%d]: %s: %s\n", when, (long) (tv.tv_usec / 1000),
                program_invocation_short_name, (int) getpid(), log_level_to_string(level), message);
}

static void log_to_syslog(int level, const char *message) {
        char buf[4096];
        int n;

        if (syslog_fd < 0)
                return;
        /* The reference's framing: "<PRI>Mandos [pid]: LEVEL: message\0". */
        (void) pthread_mutex_lock(&service_prefix_lock);
        n = snprintf(buf, sizeof(buf), "<%d>%s [%d]: %s: %s", LOG_DAEMON | level, service_prefix,
                     (int) getpid(), log_level_to_string(level), message);
        (void) pthread_mutex_unlock(&service_prefix_lock);
        if (n < 0)
                return;
        if ((size_t) n >= sizeof(buf))
                n = sizeof(buf) - 1;
        (void) send(syslog_fd, buf, (size_t) n + 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void log_to_journal(int level, const LogFields *f, const char *message) {
        struct iovec iov[8];
        char *parts[8] = {};
        size_t n = 0;

#define ADD(fmt, value)                                                         \
        do {                                                                    \
                if (asprintf(&parts[n], fmt, value) >= 0) {                     \
                        iov[n] = (struct iovec) { parts[n], strlen(parts[n]) }; \
                        n++;                                                    \
                }                                                               \
        } while (0)

        ADD("MESSAGE=%s", message);
        ADD("PRIORITY=%d", level);
        ADD("SYSLOG_IDENTIFIER=%s", "mandos");
        if (f && f->message_id)
                ADD("MESSAGE_ID=%s", f->message_id);
        if (f && f->client)
                ADD("MANDOS_CLIENT=%s", f->client);
        if (f && f->key_id)
                ADD("MANDOS_KEY_ID=%s", f->key_id);
        if (f && f->address)
                ADD("MANDOS_ADDRESS=%s", f->address);
#undef ADD

        (void) sd_journal_sendv(iov, (int) n);
        for (size_t i = 0; i < n; i++)
                free(parts[i]);
}

int log_struct_internal(int level, int error, const LogFields *fields, const char *format, ...) {
        int saved_errno = errno;
        char message[4096];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                return -error;

        errno = error; /* for %m */
        va_start(ap, format);
        (void) vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);

        switch (log_target) {
        case LOG_TARGET_STDERR:
                log_to_stderr(level, message);
                break;
        case LOG_TARGET_SYSLOG:
                log_to_syslog(level, message);
                break;
        case LOG_TARGET_JOURNAL:
                log_to_journal(level, fields, message);
                break;
        }

        errno = saved_errno;
        return -error;
}
