/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The server's settings: built-in defaults < mandos.conf [DEFAULT] <
 * command-line options actually given (mandos(8), OPTIONS; mandos.conf(5)). */

#include <stdbool.h>
#include <stdio.h>

#define DEFAULT_CONFIGDIR "/etc/mandos"
#define DEFAULT_STATEDIR "/var/lib/mandos"
/* Open connections at most, by default; mandos.conf max_connections. */
#define MAX_CONNECTIONS_DEFAULT 1024
#define DEFAULT_PRIORITY "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA"

typedef struct Settings {
        char *configdir;
        char *interface;      /* NULL: any */
        char *address;        /* NULL: any */
        int port;             /* 0: not set */
        bool debug;
        char *debuglevel;     /* NULL: not set */
        char *priority;
        char *servicename;
        bool use_dbus;
        bool use_ipv6;
        bool restore;
        int socket_fd;        /* -1: not set */
        char *statedir;
        bool foreground;
        bool zeroconf;
        bool check;           /* --check: validate the configuration and exit */
        char *import_pickle;  /* --import-pickle FILE: import the reference's state and exit; NULL: not given */
        bool run_as_root;     /* mandos.conf run_as_root: keep root instead of dropping to _mandos */
        unsigned max_checkers;/* mandos.conf max_checkers: checker processes at most */
        unsigned max_connections; /* mandos.conf max_connections: open connections at most */
        int log_level;        /* derived: syslog level */
} Settings;

typedef enum SettingsResult {
        SETTINGS_RUN,         /* go on */
        SETTINGS_EXIT_OK,     /* --help or --version printed */
        SETTINGS_EXIT_USAGE,  /* bad usage, printed: exit status 2 */
        SETTINGS_EXIT_FAILURE,/* bad mandos.conf, printed: exit status 1 */
} SettingsResult;

/* Parse argv, read <configdir>/mandos.conf, merge and validate. Messages
 * go to stdout (help, version) or stderr (errors). */
SettingsResult settings_load(Settings *s, int argc, char *argv[]);

void settings_done(Settings *s);

/* Python int(): optional surrounding whitespace and sign, digits with
 * single '_' separators. Returns 0, -EINVAL or -ERANGE. */
int parse_python_int(const char *s, long *ret);

void settings_print_usage(FILE *f);
