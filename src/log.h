/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Logging: one call site shape for three sinks.
 *  - stderr, in the reference's debug format
 *    "2026-11-28 15:35:43,297 mandos [22207]: INFO: message" (foreground);
 *  - syslog on /dev/log, facility daemon, as the reference writes it
 *    "Mandos [pid]: LEVEL: message" (daemonized);
 *  - the journal with structured fields (running as a systemd unit).
 * Levels are syslog priorities; names are the reference's (Python) ones. */

#include <syslog.h>

#include "util.h"

typedef enum LogTarget {
        LOG_TARGET_STDERR,
        LOG_TARGET_SYSLOG,
        LOG_TARGET_JOURNAL,
} LogTarget;

/* Optional structured context of a message; any field may be NULL. */
typedef struct LogFields {
        const char *message_id;   /* 32 hex digits, see the journal catalog */
        const char *client;       /* MANDOS_CLIENT= */
        const char *key_id;       /* MANDOS_KEY_ID= */
        const char *address;      /* MANDOS_ADDRESS= */
} LogFields;

void log_open(LogTarget target);
/* The journal when stderr is connected to it ($JOURNAL_STREAM), else stderr. */
LogTarget log_target_for_foreground(void);

void log_set_max_level(int level);
int log_get_max_level(void);

/* "Mandos" normally, "Mandos (NAME)" when the Zeroconf name is not "Mandos". */
void log_set_service_name(const char *name);

/* Level names as the reference accepts them (case-insensitive): CRITICAL,
 * FATAL, ERROR, WARNING, WARN, INFO, DEBUG, NOTSET. Returns a syslog level or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

/* Returns -abs(error) (or 0 if error is 0), so callers can log and return in one step. */
int log_struct_internal(int level, int error, const LogFields *fields, const char *format, ...)
        _printf_(4, 5);

#define log_full_errno(level, error, ...) log_struct_internal((level), (error), NULL, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)
#define log_crit(...)    log_full(LOG_CRIT, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

/* With structured fields: log_struct(LOG_INFO, &(LogFields){.client = name}, "…", …) */
#define log_struct(level, fields, ...) (void) log_struct_internal((level), 0, (fields), __VA_ARGS__)

/* Stable MESSAGE_ID= values for events monitoring may match on; explained
 * in the journal catalog. */
#define MESSAGE_ID_SECRET_SENT         "a5d5a21de6f8430cb3dbbd8a6540d21f"
#define MESSAGE_ID_CLIENT_NOT_FOUND    "47f07cc27350489b84424f82a0f0a1cb"
#define MESSAGE_ID_CLIENT_DISABLED     "d691f1e98aa546d6afb466053c38b3f9"
#define MESSAGE_ID_APPROVAL_REQUESTED  "c4787e036c4a4c328d170c0637b32a6b"
#define MESSAGE_ID_APPROVAL_DENIED     "40032521aadc4b9fb6f1ca05cf1b435c"
#define MESSAGE_ID_CHECKER_FAILED      "a7299b57941f4a55908de2e962d3a33c"
#define MESSAGE_ID_STATE_CORRUPT       "2b3f8a1c7e5d4f60a9b8c7d6e5f40312"
#define MESSAGE_ID_RELOADED            "6e0c2d4b8a9f41c3b5d7e9f1a3c5e7b9"
