/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Durations as clients.conf writes them, and times as the reference shows
 * them. All values are microseconds. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parse a clients.conf duration: first an RFC 3339 duration (P…, see
 * mandos-clients.conf(5), DURATIONS; we also accept P1YT1H and P1MT1H, which
 * the reference rejects), then the legacy form: whitespace-separated tokens
 * [+]<digits><unit> with unit s, m, h, d or w (digits as python_digits()
 * reads them), where one token may also chain
 * units ("1d2h", "5m30s"; the reference rejects that); the empty string is 0.
 * Negative values are rejected (the reference accepts them).
 * Returns 0 and *ret, -EINVAL on bad syntax, -ERANGE on overflow. */
int duration_parse(const char *s, uint64_t *ret);

/* The digits of a number as Python's int() reads them, ASCII only: one or
 * more of 0-9, with single underscores between digits ("1_000"). Advances
 * *s past them and returns true; false (nothing read) if *s is not a digit.
 * On overflow keeps reading and sets *overflow. The legacy durations above
 * and the integers of mandos.conf share this rule. */
bool python_digits(const char **s, uint64_t *ret, bool *overflow);

/* Python's str(timedelta): "0:05:00", "1 day, 0:00:00", "3 days, 1:02:03.000500".
 * buf must hold DURATION_PYTHON_MAX bytes. Returns buf. */
#define DURATION_PYTHON_MAX 64
char *duration_format_python(uint64_t usec, char *buf);

/* A wall-clock time (CLOCK_REALTIME µs) in UTC as D-Bus shows it, always
 * with six fractional digits: "2026-11-28T15:35:24.978319".
 * buf must hold TIMESTAMP_MAX bytes. Returns buf. */
#define TIMESTAMP_MAX 32
char *timestamp_format_iso(uint64_t usec, char *buf);

/* Python's str(datetime) of the same: "2026-11-28 15:35:24.978319", and
 * "2026-11-28 15:35:24" when the microseconds are 0. Returns buf. */
char *timestamp_format_python(uint64_t usec, char *buf);

/* Parse timestamp_format_iso()'s output (also without the fraction).
 * Returns 0 and *ret, or -EINVAL. */
int timestamp_parse_iso(const char *s, uint64_t *ret);
