/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "thread-util.h"

#include <signal.h>

int thread_start(pthread_t *ret, void *(*func)(void *), void *arg) {
        sigset_t all, saved;
        int r;

        /* The new thread inherits the mask in force when it is made. */
        (void) sigfillset(&all);
        r = -pthread_sigmask(SIG_SETMASK, &all, &saved);
        if (r < 0)
                return r;
        r = -pthread_create(ret, NULL, func, arg);
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        return r;
}
