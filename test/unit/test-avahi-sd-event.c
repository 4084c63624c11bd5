/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The AvahiPoll adapter, driven as avahi-client drives it: watches on a
 * pipe and a socket pair, absolute timeouts, and frees and updates from
 * inside the callbacks. */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "avahi-sd-event.h"
#include "test.h"
#include "util.h"

typedef struct Run {
        sd_event *event;
        AvahiSdEventPoll *poll;
        const AvahiPoll *api;
        sd_event_source *guard;
} Run;

static int on_guard(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), -ETIMEDOUT);
}

/* A loop that gives up after guard_msec. */
static void run_init(Run *run, unsigned guard_msec) {
        *run = (Run) {};
        check(sd_event_new(&run->event) >= 0);
        check(avahi_sd_event_poll_new(run->event, &run->poll) >= 0);
        run->api = avahi_sd_event_poll_get(run->poll);
        check(sd_event_add_time_relative(run->event, &run->guard, CLOCK_MONOTONIC,
                                         guard_msec * USEC_PER_MSEC, 0, on_guard, NULL) >= 0);
}

static void run_done(Run *run) {
        sd_event_source_unref(run->guard);
        avahi_sd_event_poll_free(run->poll);
        sd_event_unref(run->event);
}

/* What avahi_elapse_time() computes: now + msec, on the wall clock. */
static struct timeval tv_in(long msec) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        tv.tv_sec += msec / 1000;
        tv.tv_usec += (msec % 1000) * 1000;
        if (tv.tv_usec >= 1000000) {
                tv.tv_sec++;
                tv.tv_usec -= 1000000;
        }
        return tv;
}

static uint64_t mono_msec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ timeouts */

typedef struct TimeoutProbe {
        Run *run;
        unsigned fired;
        unsigned rearm;           /* times to re-arm from the callback */
        bool free_in_callback, exit_in_callback;
        uint64_t fired_at;
} TimeoutProbe;

static void on_timeout(AvahiTimeout *t, void *userdata) {
        TimeoutProbe *p = userdata;

        p->fired++;
        p->fired_at = mono_msec();
        if (p->rearm > 0) {
                struct timeval tv = tv_in(10);
                p->rearm--;
                p->run->api->timeout_update(t, &tv);
                return;
        }
        if (p->free_in_callback)
                p->run->api->timeout_free(t);
        if (p->exit_in_callback)
                sd_event_exit(p->run->event, 0);
}

static void test_timeout_fires_at_its_time_and_once(void) {
        Run run;
        TimeoutProbe p = { .run = &run };
        struct timeval tv = tv_in(80);
        AvahiTimeout *t;
        uint64_t start;

        run_init(&run, 400);
        start = mono_msec();
        t = run.api->timeout_new(run.api, &tv, on_timeout, &p);
        check(t != NULL);
        /* runs until the guard: the timeout must fire once, not again */
        check_int(sd_event_loop(run.event), -ETIMEDOUT);
        check_int(p.fired, 1);
        check(p.fired_at - start >= 75);
        check(p.fired_at - start < 300);
        run.api->timeout_free(t);
        run_done(&run);
}

static void test_timeout_null_never_fires(void) {
        Run run;
        TimeoutProbe p = { .run = &run, .exit_in_callback = true };
        AvahiTimeout *t;

        run_init(&run, 100);
        t = run.api->timeout_new(run.api, NULL, on_timeout, &p);
        check(t != NULL);
        check_int(sd_event_loop(run.event), -ETIMEDOUT);
        check_int(p.fired, 0);
        run.api->timeout_free(t);
        run_done(&run);
}

static void test_timeout_armed_by_update_fires(void) {
        Run run;
        TimeoutProbe p = { .run = &run, .exit_in_callback = true };
        struct timeval tv = tv_in(20);
        AvahiTimeout *t;

        run_init(&run, 1000);
        t = run.api->timeout_new(run.api, NULL, on_timeout, &p);
        run.api->timeout_update(t, &tv);
        check_int(sd_event_loop(run.event), 0);
        check_int(p.fired, 1);
        run.api->timeout_free(t);
        run_done(&run);
}

static void test_timeout_disarmed_by_update_is_quiet(void) {
        Run run;
        TimeoutProbe p = { .run = &run, .exit_in_callback = true };
        struct timeval tv = tv_in(20);
        AvahiTimeout *t;

        run_init(&run, 100);
        t = run.api->timeout_new(run.api, &tv, on_timeout, &p);
        run.api->timeout_update(t, NULL);
        check_int(sd_event_loop(run.event), -ETIMEDOUT);
        check_int(p.fired, 0);
        run.api->timeout_free(t);
        run_done(&run);
}

/* avahi-client's D-Bus dispatching: a timeout at { 0, 0 }, long past. */
static void test_timeout_in_the_past_fires_at_once(void) {
        Run run;
        TimeoutProbe p = { .run = &run, .exit_in_callback = true };
        static const struct timeval epoch = { 0, 0 };
        uint64_t start;

        run_init(&run, 1000);
        start = mono_msec();
        AvahiTimeout *t = run.api->timeout_new(run.api, &epoch, on_timeout, &p);
        check_int(sd_event_loop(run.event), 0);
        check_int(p.fired, 1);
        check(p.fired_at - start < 50);
        run.api->timeout_free(t);
        run_done(&run);
}

static void test_timeout_rearmed_and_freed_in_its_callback(void) {
        Run run;
        TimeoutProbe p = { .run = &run, .rearm = 2, .free_in_callback = true, .exit_in_callback = true };
        static const struct timeval epoch = { 0, 0 };

        run_init(&run, 1000);
        check(run.api->timeout_new(run.api, &epoch, on_timeout, &p) != NULL);
        check_int(sd_event_loop(run.event), 0);
        check_int(p.fired, 3);
        run_done(&run);
}

/* ------------------------------------------------------------- watches */

typedef struct WatchProbe {
        Run *run;
        int expect_fd;
        unsigned fired;
        AvahiWatchEvent events, got_events;
        bool free_in_callback, exit_in_callback;
} WatchProbe;

static void on_watch(AvahiWatch *w, int fd, AvahiWatchEvent events, void *userdata) {
        WatchProbe *p = userdata;

        p->fired++;
        p->events |= events;
        p->got_events = p->run->api->watch_get_events(w);
        check_int(fd, p->expect_fd);
        if (events & AVAHI_WATCH_IN) {
                char buf[16];
                (void) read(fd, buf, sizeof(buf));
        }
        if (p->free_in_callback)
                p->run->api->watch_free(w);
        if (p->exit_in_callback)
                sd_event_exit(p->run->event, 0);
}

static void test_watch_reports_input_with_the_callers_fd(void) {
        Run run;
        int pipefd[2];
        WatchProbe p = { .run = &run, .exit_in_callback = true };
        AvahiWatch *w;

        check(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0);
        p.expect_fd = pipefd[0];
        run_init(&run, 1000);
        w = run.api->watch_new(run.api, pipefd[0], AVAHI_WATCH_IN, on_watch, &p);
        check(w != NULL);
        check(write(pipefd[1], "x", 1) == 1);
        check_int(sd_event_loop(run.event), 0);
        check_int(p.fired, 1);
        check(p.events & AVAHI_WATCH_IN);
        check(p.got_events & AVAHI_WATCH_IN);
        check_int(run.api->watch_get_events(w), 0);   /* only meaningful inside the callback */
        run.api->watch_free(w);
        /* the caller's fd is still theirs and open */
        check(fcntl(pipefd[0], F_GETFD) >= 0);
        close(pipefd[0]);
        close(pipefd[1]);
        run_done(&run);
}

static void test_watch_update_to_no_events_is_quiet(void) {
        Run run;
        int pipefd[2];
        WatchProbe p = { .run = &run };
        AvahiWatch *w;

        check(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0);
        p.expect_fd = pipefd[0];
        run_init(&run, 100);
        w = run.api->watch_new(run.api, pipefd[0], AVAHI_WATCH_IN, on_watch, &p);
        run.api->watch_update(w, 0);
        check(write(pipefd[1], "x", 1) == 1);
        check_int(sd_event_loop(run.event), -ETIMEDOUT);
        check_int(p.fired, 0);
        run.api->watch_free(w);
        close(pipefd[0]);
        close(pipefd[1]);
        run_done(&run);
}

/* libdbus puts a read watch and a write watch on the same socket. */
static void test_two_watches_on_one_fd(void) {
        Run run;
        int sv[2];
        WatchProbe in = { .run = &run }, out = { .run = &run, .free_in_callback = true };
        AvahiWatch *w_in, *w_out;

        check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
        in.expect_fd = out.expect_fd = sv[0];
        run_init(&run, 200);
        w_in = run.api->watch_new(run.api, sv[0], AVAHI_WATCH_IN, on_watch, &in);
        w_out = run.api->watch_new(run.api, sv[0], AVAHI_WATCH_OUT, on_watch, &out);
        check(w_in != NULL);
        check(w_out != NULL);
        check(write(sv[1], "x", 1) == 1);
        check_int(sd_event_loop(run.event), -ETIMEDOUT);
        check_int(in.fired, 1);
        check(in.events == AVAHI_WATCH_IN);
        check_int(out.fired, 1);   /* freed in its callback, so once */
        check(out.events == AVAHI_WATCH_OUT);
        run.api->watch_free(w_in);
        close(sv[0]);
        close(sv[1]);
        run_done(&run);
}

static void test_watch_reports_hangup(void) {
        Run run;
        int pipefd[2];
        WatchProbe p = { .run = &run, .exit_in_callback = true, .free_in_callback = true };

        check(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0);
        p.expect_fd = pipefd[0];
        run_init(&run, 1000);
        check(run.api->watch_new(run.api, pipefd[0], AVAHI_WATCH_IN, on_watch, &p) != NULL);
        close(pipefd[1]);
        check_int(sd_event_loop(run.event), 0);
        check_int(p.fired, 1);
        check(p.events & AVAHI_WATCH_HUP);
        close(pipefd[0]);
        run_done(&run);
}

static void test_free_null_is_harmless(void) {
        Run run;

        run_init(&run, 10);
        run.api->watch_free(NULL);
        run.api->timeout_free(NULL);
        run_done(&run);
}

TEST_MAIN(TEST(test_timeout_fires_at_its_time_and_once),
          TEST(test_timeout_null_never_fires),
          TEST(test_timeout_armed_by_update_fires),
          TEST(test_timeout_disarmed_by_update_is_quiet),
          TEST(test_timeout_in_the_past_fires_at_once),
          TEST(test_timeout_rearmed_and_freed_in_its_callback),
          TEST(test_watch_reports_input_with_the_callers_fd),
          TEST(test_watch_update_to_no_events_is_quiet),
          TEST(test_two_watches_on_one_fd),
          TEST(test_watch_reports_hangup),
          TEST(test_free_null_is_harmless))
