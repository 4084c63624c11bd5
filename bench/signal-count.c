/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Counts a server's CheckerCompleted signals (se.recompile.Mandos.Client,
 * one per completed checker) on a bus, taking little of the CPU the
 * checkers are measured on: about a fortieth of a checker run's CPU, where
 * a dbus-monitor printing each signal for a script to parse took about a
 * tenth.
 *   signal-count --address BUS-ADDRESS [--announced OBJECT-PATH]
 * Prints "ready" once subscribed; with --announced, "announced T" when the
 * server's ClientAdded names that object (T: CLOCK_MONOTONIC seconds, as
 * Python's time.monotonic()). Each line read on stdin is answered with
 * "count N T": the signals counted so far. Ends at end of input. */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

static unsigned long long completed;
static const char *announced_path;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int on_completed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        completed++;
        return 0;
}

static int on_added(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *path;

        if (sd_bus_message_read(m, "o", &path) >= 0 && announced_path && strcmp(path, announced_path) == 0) {
                printf("announced %.6f\n", now());
                fflush(stdout);
                announced_path = NULL;
        }
        return 0;
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);

        if (n <= 0)
                return sd_event_exit(sd_event_source_get_event(s), 0);
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == '\n')
                        printf("count %llu %.6f\n", completed, now());
        fflush(stdout);
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "address", required_argument, NULL, 'a' },
                { "announced", required_argument, NULL, 'n' },
                {}
        };
        const char *address = NULL;
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'a':
                        address = optarg;
                        break;
                case 'n':
                        announced_path = optarg;
                        break;
                default:
                        return 2;
                }
        if (!address)
                return 2;

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, NULL, NULL, "se.recompile.Mandos.Client", "CheckerCompleted",
                                        on_completed, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, NULL, "/", "se.recompile.Mandos", "ClientAdded", on_added, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, 0);
        if (r >= 0)
                r = sd_event_add_io(event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, NULL);
        if (r < 0) {
                fprintf(stderr, "signal-count: %s\n", strerror(-r));
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        r = sd_event_loop(event);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(event);
        return r < 0 ? 1 : 0;
}
