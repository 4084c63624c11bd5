/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The checker limit: the fewest steps that run a checker, in a loop.
 * posix_spawn "/bin/sh -c COMMAND" (what a checker is, mandos(8), CHECKERS)
 * with stdin and stdout on /dev/null, keep up to --parallel of them running
 * (the server's max_checkers), reap each with waitpid, for --seconds.
 * Prints {"completed": N, "seconds": S, "per_second": R} as one JSON line.
 *   spawn-limit [--command CMD] [--parallel N] [--seconds S] */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "command", required_argument, NULL, 'c' },
                { "parallel", required_argument, NULL, 'p' },
                { "seconds", required_argument, NULL, 's' },
                {}
        };
        const char *command = "true";
        unsigned parallel = 64, running = 0;
        unsigned long completed = 0;
        double seconds = 5, t0, end;
        posix_spawn_file_actions_t actions;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        command = optarg;
                        break;
                case 'p':
                        parallel = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 's':
                        seconds = strtod(optarg, NULL);
                        break;
                default:
                        return 2;
                }
        if (parallel == 0 || seconds <= 0)
                return 2;

        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);

        t0 = now();
        end = t0 + seconds;
        for (;;) {
                bool more = now() < end;

                while (more && running < parallel) {
                        char *args[] = { "sh", "-c", (char *) command, NULL };
                        pid_t pid;
                        int r = posix_spawn(&pid, "/bin/sh", &actions, NULL, args, environ);

                        if (r != 0) {
                                fprintf(stderr, "posix_spawn: %s\n", strerror(r));
                                return 1;
                        }
                        running++;
                }
                if (running == 0)
                        break;
                if (waitpid(-1, NULL, 0) < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("waitpid");
                        return 1;
                }
                running--;
                completed++;
        }
        seconds = now() - t0;
        posix_spawn_file_actions_destroy(&actions);
        printf("{\"completed\": %lu, \"seconds\": %.3f, \"per_second\": %.1f}\n", completed, seconds,
               (double) completed / seconds);
        return 0;
}
