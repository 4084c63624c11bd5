/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <pthread.h>

/* Start a thread with every signal blocked, so that the loop's signals
 * (SIGCHLD, SIGTERM, SIGHUP...) stay with the loop's thread and its
 * signalfd. Returns 0 or -errno. */
int thread_start(pthread_t *ret, void *(*func)(void *), void *arg);
