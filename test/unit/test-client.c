/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A Client's life cycle without a server, root or peers (mandos(8), EXPIRY
 * AND CHECKERS, APPROVAL): the test is its ClientOwner, drives time with an
 * sd-event loop and short durations, runs real "/bin/sh -c" checkers as
 * plain process groups, and records each ClientEvent to assert their exact
 * sequence. */

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checker.h"
#include "client.h"
#include "deadline.h"
#include "test.h"
#include "timer-heap.h"
#include "util.h"

#define MAX_EVENTS 64

/* "CHANGED Expires", "CHECKER_FINISHED 3 768", ... */
typedef struct Recorder {
        char events[MAX_EVENTS][64];
        size_t n;
} Recorder;

static void on_event(Client *c, const ClientEvent *e, void *userdata) {
        static const char *const names[_CLIENT_EVENT_MAX] = {
                [CLIENT_EVENT_CHANGED] = "CHANGED",
                [CLIENT_EVENT_CHECKER_STARTED] = "CHECKER_STARTED",
                [CLIENT_EVENT_CHECKER_FINISHED] = "CHECKER_FINISHED",
                [CLIENT_EVENT_SECRET_SENT] = "SECRET_SENT",
                [CLIENT_EVENT_REJECTED] = "REJECTED",
                [CLIENT_EVENT_NEED_APPROVAL] = "NEED_APPROVAL",
                [CLIENT_EVENT_APPROVAL_DECIDED] = "APPROVAL_DECIDED",
        };
        Recorder *r = userdata;
        char *s;

        if (r->n >= MAX_EVENTS)
                return;
        s = r->events[r->n++];
        switch (e->type) {
        case CLIENT_EVENT_CHANGED:
                snprintf(s, 64, "CHANGED %s", client_property_name(e->property));
                break;
        case CLIENT_EVENT_CHECKER_FINISHED:
                snprintf(s, 64, "CHECKER_FINISHED %d %lld", e->exit_code, (long long) e->wait_status);
                break;
        case CLIENT_EVENT_REJECTED:
                snprintf(s, 64, "REJECTED %s", e->reason);
                break;
        default:
                snprintf(s, 64, "%s", names[e->type]);
        }
}

typedef struct Harness {
        sd_event *event;
        TimerHeap *timers;
        CheckerManager *checkers;
        ClientOwner owner;
        Recorder rec;
        ClientSettings config;
} Harness;

static const uint8_t secret[] = "s3cret";

static void harness_init(Harness *h) {
        sigset_t ss;

        *h = (Harness) {};
        /* sd-event watches checkers through SIGCHLD, blocked. */
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        check(sigprocmask(SIG_BLOCK, &ss, NULL) == 0);
        check(sd_event_new(&h->event) >= 0);
        check(timer_heap_new(h->event, &h->timers) >= 0);
        check(checker_manager_new(h->event, 4, false, false, NULL, &h->checkers) >= 0);
        h->owner = (ClientOwner) { .event = h->event, .timers = h->timers, .checkers = h->checkers,
                                   .on_event = on_event, .userdata = &h->rec };
        h->config = (ClientSettings) {
                .name = (char *) "alpha", .key_id = (char *) "", .fingerprint = (char *) "", .host = (char *) "",
                .checker_command = (char *) "true", .secret = (uint8_t *) secret, .secret_size = sizeof(secret),
                .timeout = 200 * USEC_PER_MSEC, .extended_timeout = 600 * USEC_PER_MSEC,
                /* Long: no checker runs unless a test asks for one. */
                .interval = 3600 * USEC_PER_SEC, .approval_duration = 150 * USEC_PER_MSEC,
                .approved_by_default = true, .enabled = true,
        };
}

static Client *harness_client(Harness *h) {
        Client *c = NULL;

        check(client_new(&h->owner, &h->config, NULL, &c) >= 0);
        client_start(c);
        h->rec.n = 0; /* client_start() announces nothing; start the record here anyway */
        return c;
}

static void harness_done(Harness *h, Client *c) {
        client_detach(c);
        client_unref(c);
        checker_manager_free(h->checkers);
        timer_heap_free(h->timers);
        sd_event_unref(h->event);
}

/* Run the loop until cond holds, for at most max_usec. Returns the time it took. */
#define RUN_UNTIL(h, cond, max_usec)                                                    \
        ({                                                                              \
                uint64_t _start = clock_now().boot;                                     \
                for (unsigned _i = 0; _i < 1000 && !(cond) &&                           \
                                      clock_now().boot - _start < (max_usec); _i++)    \
                        check(sd_event_run((h)->event, 10 * USEC_PER_MSEC) >= 0);       \
                clock_now().boot - _start;                                              \
        })

static void check_events(const Recorder *r, const char *const *want, size_t n) {
        check_int(r->n, n);
        for (size_t i = 0; i < r->n && i < n; i++)
                check_streq(r->events[i], want[i]);
        if (r->n != n)
                for (size_t i = 0; i < r->n; i++)
                        fprintf(stderr, "  event %zu: %s\n", i, r->events[i]);
}
#define CHECK_EVENTS(r, ...)                                                    \
        do {                                                                    \
                static const char *const _want[] = { __VA_ARGS__ };             \
                check_events(r, _want, ELEMENTSOF(_want));                      \
        } while (0)

static void test_expires_at_timeout_after_a_check(void) {
        Harness h;
        Client *c;
        uint64_t took;

        harness_init(&h);
        c = harness_client(&h);
        client_checked_ok(c);
        CHECK_EVENTS(&h.rec, "CHANGED LastCheckedOK", "CHANGED LastCheckerStatus", "CHANGED Expires");
        check(c->expires > 0);
        h.rec.n = 0;
        took = RUN_UNTIL(&h, !c->enabled, 2 * USEC_PER_SEC);
        check(!c->enabled);
        check(took >= 150 * USEC_PER_MSEC);
        check_int(c->expires, 0);
        CHECK_EVENTS(&h.rec, "CHANGED Expires", "CHANGED Enabled", "APPROVAL_DECIDED");
        harness_done(&h, c);
}

static void test_secret_sent_extends_to_extended_timeout(void) {
        Harness h;
        Client *c;
        uint64_t took;

        harness_init(&h);
        c = harness_client(&h);
        client_secret_sent(c);
        CHECK_EVENTS(&h.rec, "CHANGED Expires", "SECRET_SENT");
        took = RUN_UNTIL(&h, !c->enabled, 2 * USEC_PER_SEC);
        check(!c->enabled);
        /* extended_timeout (600 ms), not timeout (200 ms). */
        check(took >= 500 * USEC_PER_MSEC);
        harness_done(&h, c);
}

static void test_successful_checker_bumps_expiry(void) {
        Harness h;
        Client *c;

        harness_init(&h);
        h.config.checker_command = (char *) "true %(host)s";
        h.config.host = (char *) "a b";
        c = harness_client(&h);
        client_start_checker(c);
        check(client_checker_running(c));
        check_streq(c->checker_command_expanded, "true 'a b'");
        (void) RUN_UNTIL(&h, !client_checker_running(c), 2 * USEC_PER_SEC);
        check(!client_checker_running(c));
        check_int(c->last_checker_status, 0);
        check(c->last_checked_ok > 0);
        CHECK_EVENTS(&h.rec, "CHANGED CheckerRunning", "CHECKER_STARTED", "CHANGED CheckerRunning",
                     "CHANGED LastCheckerStatus", "CHANGED LastCheckedOK", "CHANGED Expires",
                     "CHECKER_FINISHED 0 0");
        check(c->enabled);
        harness_done(&h, c);
}

static void test_failed_checker_lets_it_expire(void) {
        Harness h;
        Client *c;

        harness_init(&h);
        h.config.checker_command = (char *) "exit 3";
        c = harness_client(&h);
        client_bump_timeout(c, 300 * USEC_PER_MSEC);
        h.rec.n = 0;
        client_start_checker(c);
        (void) RUN_UNTIL(&h, !c->enabled, 2 * USEC_PER_SEC);
        check(!c->enabled);
        check_int(c->last_checker_status, 3);
        check_int(c->last_checked_ok, 0);
        CHECK_EVENTS(&h.rec, "CHANGED CheckerRunning", "CHECKER_STARTED", "CHANGED CheckerRunning",
                     "CHANGED LastCheckerStatus", "CHECKER_FINISHED 3 768", "CHANGED Expires", "CHANGED Enabled",
                     "APPROVAL_DECIDED");
        harness_done(&h, c);
}

static void test_stopped_checker_reports_nothing_more(void) {
        Harness h;
        Client *c;

        harness_init(&h);
        h.config.checker_command = (char *) "sleep 5";
        c = harness_client(&h);
        client_start_checker(c);
        client_stop_checker(c);
        check(!client_checker_running(c));
        (void) RUN_UNTIL(&h, false, 300 * USEC_PER_MSEC);
        CHECK_EVENTS(&h.rec, "CHANGED CheckerRunning", "CHECKER_STARTED", "CHANGED CheckerRunning");
        check_int(c->last_checker_status, -2);
        /* Stopped while the spawner thread was starting it, most likely:
         * it was killed and reaped once it had started all the same. */
        check(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
        harness_done(&h, c);
}

/* Checkers handed to the spawner thread when the manager goes: started or
 * not, none is left behind. */
static void test_checkers_starting_at_shutdown_are_reaped(void) {
        Harness h;
        Client *c[4];

        harness_init(&h);
        h.config.checker_command = (char *) "sleep 5";
        for (size_t i = 0; i < ELEMENTSOF(c); i++) {
                h.config.name = (char *[]) { "a", "b", "c", "d" }[i];
                c[i] = harness_client(&h);
                client_start_checker(c[i]);
                check(client_checker_running(c[i]));
        }
        for (size_t i = 0; i < ELEMENTSOF(c); i++) {
                client_detach(c[i]);
                client_unref(c[i]);
        }
        checker_manager_free(h.checkers);
        timer_heap_free(h.timers);
        sd_event_unref(h.event);
        check(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

/* A checker whose /bin/sh cannot be started (no process left under
 * RLIMIT_NPROC) ends as if the shell had found no command: exit status
 * 127, reported to its client like any other failure. In a child
 * process, as an unprivileged user (root is not held to RLIMIT_NPROC). */
static void test_checker_that_cannot_start_fails_with_127(void) {
        pid_t pid;
        int status = 0;

        (void) fflush(NULL);
        pid = fork();

        check(pid >= 0);
        if (pid == 0) {
                Harness h;
                Client *c;

                if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                                       setresuid(65534, 65534, 65534) < 0))
                        _exit(2);
                harness_init(&h);
                c = harness_client(&h);
                client_start_checker(c);
                (void) RUN_UNTIL(&h, !client_checker_running(c), 2 * USEC_PER_SEC);
                check_int(c->last_checker_status, 0);
                /* The spawner thread runs; no new process may start now. */
                check(setrlimit(RLIMIT_NPROC, &(struct rlimit) { 0, 0 }) == 0);
                h.rec.n = 0;
                client_start_checker(c);
                (void) RUN_UNTIL(&h, !client_checker_running(c), 2 * USEC_PER_SEC);
                check(!client_checker_running(c));
                check_int(c->last_checker_status, 127);
                CHECK_EVENTS(&h.rec, "CHANGED CheckerRunning", "CHECKER_STARTED", "CHANGED CheckerRunning",
                             "CHANGED LastCheckerStatus", "CHECKER_FINISHED 127 32512");
                harness_done(&h, c);
                _exit(test_checks_failed ? 1 : 0);
        }
        check(waitpid(pid, &status, 0) == pid);
        check(WIFEXITED(status));
        check_int(WEXITSTATUS(status), 0);
}

static void test_approval_window_lasts_approval_duration(void) {
        Harness h;
        Client *c;
        uint64_t took;

        harness_init(&h);
        c = harness_client(&h);
        client_approve(c, true);
        check_int(c->approved, 1);
        took = RUN_UNTIL(&h, c->approved == -1, 2 * USEC_PER_SEC);
        check_int(c->approved, -1);
        check(took >= 100 * USEC_PER_MSEC);
        client_approve(c, false);
        check_int(c->approved, 0);
        (void) RUN_UNTIL(&h, c->approved == -1, 2 * USEC_PER_SEC);
        check_int(c->approved, -1);
        CHECK_EVENTS(&h.rec, "APPROVAL_DECIDED", "APPROVAL_DECIDED");
        harness_done(&h, c);
}

static void test_approval_wait_and_rejection(void) {
        Harness h;
        Client *c;

        harness_init(&h);
        c = harness_client(&h);
        client_approval_wait_begin(c);
        client_need_approval(c);
        client_approval_wait_begin(c);
        client_approval_wait_end(c);
        client_approval_wait_end(c);
        client_rejected(c, "Denied");
        check(c->last_approval_request > 0);
        CHECK_EVENTS(&h.rec, "CHANGED ApprovalPending", "CHANGED LastApprovalRequest", "NEED_APPROVAL",
                     "CHANGED ApprovalPending", "REJECTED Denied");
        harness_done(&h, c);
}

static void test_settings_changes_are_announced_once(void) {
        Harness h;
        ClientSettings v = {};
        const char *why = NULL;
        Client *c;

        harness_init(&h);
        c = harness_client(&h);
        v.interval = 0;
        check(client_set_setting(c, client_setting(CLIENT_SETTING_INTERVAL), &v, &why) == -EINVAL);
        check_streq(why, "the interval must not be zero");
        v.approval_delay = CLIENT_APPROVAL_DELAY_MAX + 1;
        check(client_set_setting(c, client_setting(CLIENT_SETTING_APPROVAL_DELAY), &v, &why) == -EINVAL);
        v.host = (char *) "b.example";
        check(client_set_setting(c, client_setting(CLIENT_SETTING_HOST), &v, &why) == 0);
        check(client_set_setting(c, client_setting(CLIENT_SETTING_HOST), &v, &why) == 0);
        check_streq(c->host, "b.example");
        v.checker_command = (char *) "%(nosuch)s";
        check(client_set_setting(c, client_setting(CLIENT_SETTING_CHECKER), &v, &why) == -EINVAL);
        v.enabled = false;
        check(client_set_setting(c, client_setting(CLIENT_SETTING_ENABLED), &v, &why) == 0);
        CHECK_EVENTS(&h.rec, "CHANGED Host", "CHANGED Expires", "CHANGED Enabled", "APPROVAL_DECIDED");
        harness_done(&h, c);
}

TEST_MAIN(TEST(test_expires_at_timeout_after_a_check),
          TEST(test_secret_sent_extends_to_extended_timeout),
          TEST(test_successful_checker_bumps_expiry),
          TEST(test_failed_checker_lets_it_expire),
          TEST(test_stopped_checker_reports_nothing_more),
          TEST(test_checkers_starting_at_shutdown_are_reaped),
          TEST(test_checker_that_cannot_start_fails_with_127),
          TEST(test_approval_window_lasts_approval_duration),
          TEST(test_approval_wait_and_rejection),
          TEST(test_settings_changes_are_announced_once));
