/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Plays the unprivileged server's side of the launcher's channel
 * (src/launcher.h) the way a compromised server could: it forks the real
 * launcher as root, drops to the server's user, and asks for checker scopes
 * for PIDs that are not its own unreaped checker children. For
 * test-launcher.sh, inside a namespaced systemd. Prints one line a request:
 *   LABEL PID accepted UNIT
 *   LABEL PID refused ERROR-MESSAGE
 * then waits for a line on standard input (the test looks at the manager
 * meanwhile), and exits, killing what it started (but the child that stayed
 * root, which the test kills). */

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher.h"

static pid_t spawn_sleep(void) {
        pid_t pid = fork();
        if (pid == 0) {
                execl("/bin/sleep", "sleep", "60", (char *) NULL);
                _exit(127);
        }
        return pid;
}

static char proc_state(pid_t pid) {
        char path[64], buf[512], *p;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
        fclose(f);
        return p && p[1] == ' ' ? p[2] : 0;
}

static void request(sd_bus *link, const char *label, pid_t pid) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *unit = NULL;
        int r;

        r = sd_bus_call_method(link, NULL, LAUNCHER_PATH, LAUNCHER_INTERFACE, "StartCheckerScope", &error, &reply,
                               "ust", (uint32_t) pid, label, (uint64_t) 60 * 1000000);
        if (r >= 0 && sd_bus_message_read(reply, "s", &unit) >= 0)
                printf("%s %d accepted %s\n", label, (int) pid, unit);
        else
                printf("%s %d refused %s\n", label, (int) pid, error.message ?: strerror(-r));
        fflush(stdout);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
}

int main(int argc, char *argv[]) {
        pid_t root_child, launcher, own, zombie;
        sd_bus *link = NULL;
        char line[16];
        uid_t uid;
        gid_t gid;
        int fd, r;

        if (argc != 3 || geteuid() != 0) {
                fprintf(stderr, "usage (as root): %s CONFIGDIR OTHER-USERS-PID\n", argv[0]);
                return 2;
        }
        /* A child that stays root: ours, but not of the server's user. */
        root_child = spawn_sleep();
        launcher_server_user(&uid, &gid);
        r = launcher_fork(argv[1], uid, gid, NULL, 0, NULL, &fd, &launcher);
        if (r < 0) {
                fprintf(stderr, "launcher_fork: %s\n", strerror(-r));
                return 1;
        }
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
                perror("dropping to the server's user");
                return 1;
        }
        r = launcher_connect(fd, &link);
        if (r < 0) {
                fprintf(stderr, "launcher_connect: %s\n", strerror(-r));
                return 1;
        }
        own = spawn_sleep();
        zombie = fork();
        if (zombie == 0)
                _exit(0);
        while (proc_state(zombie) != 'Z')
                usleep(10000);

        request(link, "pid1", 1);
        request(link, "launcher", launcher);
        request(link, "self", getpid());
        request(link, "other-user", (pid_t) atoi(argv[2]));
        request(link, "root-child", root_child);
        request(link, "zombie", zombie);
        request(link, "nonexistent", 4194303);
        request(link, "own-child", own);

        if (!fgets(line, sizeof(line), stdin))
                line[0] = 0;
        sd_bus_flush_close_unref(link);
        kill(own, SIGKILL);
        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
        return 0;
}
