/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "settings.h"

#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <systemd/sd-daemon.h>
#include <limits.h>

#include "checker.h"
#include "duration.h"
#include "ini.h"
#include "log.h"
#include "util.h"

/* The keys of mandos.conf and their built-in defaults (mandos.conf(5),
 * OPTIONS). */
static const char *const server_defaults[] = {
        "interface",   "",
        "address",     "",
        "port",        "",
        "debug",       "False",
        "priority",    DEFAULT_PRIORITY,
        "servicename", "Mandos",
        "use_dbus",    "True",
        "use_ipv6",    "True",
        "debuglevel",  "",
        "restore",     "True",
        "socket",      "",
        "statedir",    DEFAULT_STATEDIR,
        "foreground",  "False",
        "zeroconf",    "True",
        "max_checkers", STRINGIFY(CHECKER_MAX_RUNNING_DEFAULT),
        "max_connections", STRINGIFY(MAX_CONNECTIONS_DEFAULT),
        "run_as_root", "False",
        NULL,
};

void settings_print_usage(FILE *f) {
        fprintf(f,
                "usage: %s [-h] [-v] [-i IF] [-a ADDRESS] [-p PORT] [--check] [--debug]\n"
                "              [--debuglevel LEVEL] [--priority PRIORITY] [--servicename NAME]\n"
                "              [--configdir DIR] [--no-dbus] [--no-ipv6] [--no-restore]\n"
                "              [--socket SOCKET] [--statedir DIR] [--foreground] [--no-zeroconf]\n"
                "              [--import-pickle FILE]\n",
                program_invocation_short_name);
}

static void print_help(void) {
        settings_print_usage(stdout);
        printf("\n"
               "options:\n"
               "  -h, --help            show this help message and exit\n"
               "  -v, --version         show program's version number and exit\n"
               "  -i IF, --interface IF\n"
               "                        Bind to interface IF\n"
               "  -a ADDRESS, --address ADDRESS\n"
               "                        Address to listen for requests on\n"
               "  -p PORT, --port PORT  Port number to receive requests on\n"
               "  --check               Validate mandos.conf and clients.conf, print one line\n"
               "                        per problem, and exit (0: valid, 1: problems)\n"
               "  --debug               Debug mode; run in foreground and log to terminal\n"
               "  --debuglevel LEVEL    Debug level for stdout output\n"
               "  --priority PRIORITY   GnuTLS priority string (see GnuTLS documentation)\n"
               "  --servicename NAME    Zeroconf service name\n"
               "  --configdir DIR       Directory to search for configuration files\n"
               "  --no-dbus             Do not provide D-Bus system bus interface\n"
               "  --no-ipv6             Do not use IPv6\n"
               "  --no-restore          Do not restore stored state\n"
               "  --socket SOCKET       Specify a file descriptor to a network socket to use\n"
               "                        instead of creating one\n"
               "  --statedir DIR        Directory to save/restore state in\n"
               "  --foreground          Run in foreground\n"
               "  --no-zeroconf         Do not use Zeroconf\n"
               "  --import-pickle FILE  Import the state the reference server saved (clients.pickle)\n"
               "                        into the state directory, merged with clients.conf, and exit\n"
               "                        (0: imported, 1: not); an existing state is not overwritten\n");
}

_printf_(1, 2)
static SettingsResult usage_error(const char *format, ...) {
        va_list ap;

        settings_print_usage(stderr);
        fprintf(stderr, "%s: error: ", program_invocation_short_name);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return SETTINGS_EXIT_USAGE;
}

int parse_python_int(const char *s, long *ret) {
        bool negative = false, overflow = false;
        uint64_t v;

        while (isspace((unsigned char) *s))
                s++;
        if (*s == '+' || *s == '-')
                negative = *s++ == '-';
        if (!python_digits(&s, &v, &overflow))
                return -EINVAL;
        while (isspace((unsigned char) *s))
                s++;
        if (*s)
                return -EINVAL;
        if (overflow || v > LONG_MAX)
                return -ERANGE;
        *ret = negative ? -(long) v : (long) v;
        return 0;
}

static int set_string(char **field, const char *value) {
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

/* What the command line gave; NULL/-1 means "not given". */
typedef struct Options {
        const char *interface, *address, *port, *debuglevel, *priority;
        const char *servicename, *socket, *statedir;
        int debug, use_dbus, use_ipv6, restore, foreground, zeroconf;
} Options;

enum {
        ARG_CHECK = 0x100,
        ARG_DEBUG,
        ARG_DEBUGLEVEL,
        ARG_PRIORITY,
        ARG_SERVICENAME,
        ARG_CONFIGDIR,
        ARG_NO_DBUS,
        ARG_NO_IPV6,
        ARG_NO_RESTORE,
        ARG_SOCKET,
        ARG_STATEDIR,
        ARG_FOREGROUND,
        ARG_NO_ZEROCONF,
        ARG_IMPORT_PICKLE,
};

static SettingsResult parse_argv(Settings *s, Options *o, int argc, char *argv[]) {
        static const struct option options[] = {
                { "help",        no_argument,       NULL, 'h' },
                { "version",     no_argument,       NULL, 'v' },
                { "interface",   required_argument, NULL, 'i' },
                { "address",     required_argument, NULL, 'a' },
                { "port",        required_argument, NULL, 'p' },
                { "check",       no_argument,       NULL, ARG_CHECK },
                { "debug",       no_argument,       NULL, ARG_DEBUG },
                { "debuglevel",  required_argument, NULL, ARG_DEBUGLEVEL },
                { "priority",    required_argument, NULL, ARG_PRIORITY },
                { "servicename", required_argument, NULL, ARG_SERVICENAME },
                { "configdir",   required_argument, NULL, ARG_CONFIGDIR },
                { "no-dbus",     no_argument,       NULL, ARG_NO_DBUS },
                { "no-ipv6",     no_argument,       NULL, ARG_NO_IPV6 },
                { "no-restore",  no_argument,       NULL, ARG_NO_RESTORE },
                { "socket",      required_argument, NULL, ARG_SOCKET },
                { "statedir",    required_argument, NULL, ARG_STATEDIR },
                { "foreground",  no_argument,       NULL, ARG_FOREGROUND },
                { "no-zeroconf", no_argument,       NULL, ARG_NO_ZEROCONF },
                { "import-pickle", required_argument, NULL, ARG_IMPORT_PICKLE },
                /* "--i" and "--in" meant --interface before --import-pickle
                 * (and do for the reference): an exact match is never ambiguous. */
                { "i",           required_argument, NULL, 'i' },
                { "in",          required_argument, NULL, 'i' },
                {}
        };
        int c;

        /* getopt_long accepts unique prefixes of long options, as argparse does. */
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hvi:a:p:", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        print_help();
                        return SETTINGS_EXIT_OK;
                case 'v':
                        printf("%s %s\n", program_invocation_short_name, PACKAGE_VERSION);
                        return SETTINGS_EXIT_OK;
                case 'i': o->interface = optarg; break;
                case 'a': o->address = optarg; break;
                case 'p': o->port = optarg; break;
                case ARG_CHECK: s->check = true; break;
                case ARG_DEBUG: o->debug = true; break;
                case ARG_DEBUGLEVEL: o->debuglevel = optarg; break;
                case ARG_PRIORITY: o->priority = optarg; break;
                case ARG_SERVICENAME: o->servicename = optarg; break;
                case ARG_CONFIGDIR:
                        if (set_string(&s->configdir, optarg) < 0)
                                return SETTINGS_EXIT_FAILURE;
                        break;
                case ARG_NO_DBUS: o->use_dbus = false; break;
                case ARG_NO_IPV6: o->use_ipv6 = false; break;
                case ARG_NO_RESTORE: o->restore = false; break;
                case ARG_SOCKET: o->socket = optarg; break;
                case ARG_STATEDIR: o->statedir = optarg; break;
                case ARG_FOREGROUND: o->foreground = true; break;
                case ARG_NO_ZEROCONF: o->zeroconf = false; break;
                case ARG_IMPORT_PICKLE:
                        if (set_string(&s->import_pickle, optarg) < 0)
                                return SETTINGS_EXIT_FAILURE;
                        break;
                case ':':
                        return usage_error("argument %s: expected one argument", argv[optind - 1]);
                default:
                        return usage_error("unrecognized arguments: %s", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return usage_error("unrecognized arguments: %s", argv[optind]);
        return SETTINGS_RUN;
}

/* A mandos.conf problem: "FILE: [DEFAULT] KEY: why"; error (an errno, or 0)
 * for the format's %m. */
_printf_(4, 5)
static SettingsResult conf_error(const char *path, const char *key, int error, const char *format, ...) {
        va_list ap;

        fprintf(stderr, "%s: %s: [DEFAULT] %s: ", program_invocation_short_name, path, key);
        errno = abs(error);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return SETTINGS_EXIT_FAILURE;
}

/* ini_get() failed with r: its message (an interpolation error), or r's. */
static SettingsResult conf_get_error(IniFile *f, const char *key, int r, const char *error) {
        if (error)
                return conf_error(f->path, key, 0, "%s", error);
        return conf_error(f->path, key, r, "%m");
}

/* Booleans and integers are interpolated (configparser getboolean/getint);
 * strings are taken raw, as the reference does. */
static SettingsResult conf_boolean(IniFile *f, const char *key, bool *ret) {
        _cleanup_free_ char *v = NULL, *error = NULL;
        int r;

        r = ini_get(f, NULL, key, &v, &error);
        if (r < 0)
                return conf_get_error(f, key, r, error);
        r = ini_parse_boolean(v);
        if (r < 0)
                return conf_error(f->path, key, 0, "not a boolean: '%s'", v);
        *ret = r;
        return SETTINGS_RUN;
}

static SettingsResult conf_integer(IniFile *f, const char *key, long min, long max, long *ret) {
        _cleanup_free_ char *v = NULL, *error = NULL;
        int r;

        r = ini_get(f, NULL, key, &v, &error);
        if (r < 0)
                return conf_get_error(f, key, r, error);
        if (isempty(v))
                return SETTINGS_RUN;
        if (parse_python_int(v, ret) < 0 || *ret < min || *ret > max)
                return conf_error(f->path, key, 0, "not an integer in %ld…%ld: '%s'", min, max, v);
        return SETTINGS_RUN;
}

static SettingsResult conf_string(IniFile *f, const char *key, char **ret) {
        const IniEntry *e = ini_lookup(f, NULL, key);
        if (e && set_string(ret, e->value) < 0)
                return SETTINGS_EXIT_FAILURE;
        return SETTINGS_RUN;
}

static SettingsResult read_mandos_conf(Settings *s, long *port, long *socket_fd) {
        long max_checkers = CHECKER_MAX_RUNNING_DEFAULT, max_connections = MAX_CONNECTIONS_DEFAULT;
        _cleanup_(ini_file_freep) IniFile *f = NULL;
        _cleanup_free_ char *path = NULL;
        SettingsResult r;
        int k;

        if (asprintf(&path, "%s/mandos.conf", s->configdir) < 0)
                return SETTINGS_EXIT_FAILURE;
        k = ini_parse_file(path, server_defaults, &f);
        if (k == -ENOENT) /* a missing file is an empty one */
                k = ini_parse_string(path, "", 0, server_defaults, &f);
        if (k < 0) {
                errno = -k;
                fprintf(stderr, "%s: %s: %m\n", program_invocation_short_name, path);
                return SETTINGS_EXIT_FAILURE;
        }
        for (size_t i = 0; i < f->n_problems; i++) {
                const IniProblem *p = &f->problems[i];
                fprintf(stderr, "%s: %s:%u: %s\n", program_invocation_short_name, path, p->line, p->message);
        }
        if (f->n_problems > 0)
                return SETTINGS_EXIT_FAILURE;

        if ((r = conf_string(f, "interface", &s->interface)) ||
            (r = conf_string(f, "address", &s->address)) ||
            (r = conf_string(f, "priority", &s->priority)) ||
            (r = conf_string(f, "servicename", &s->servicename)) ||
            (r = conf_string(f, "debuglevel", &s->debuglevel)) ||
            (r = conf_string(f, "statedir", &s->statedir)) ||
            (r = conf_boolean(f, "debug", &s->debug)) ||
            (r = conf_boolean(f, "use_dbus", &s->use_dbus)) ||
            (r = conf_boolean(f, "use_ipv6", &s->use_ipv6)) ||
            (r = conf_boolean(f, "restore", &s->restore)) ||
            (r = conf_boolean(f, "foreground", &s->foreground)) ||
            (r = conf_boolean(f, "zeroconf", &s->zeroconf)) ||
            (r = conf_boolean(f, "run_as_root", &s->run_as_root)) ||
            (r = conf_integer(f, "port", 0, 65535, port)) ||
            (r = conf_integer(f, "socket", 0, INT_MAX, socket_fd)) ||
            (r = conf_integer(f, "max_checkers", 1, 100000, &max_checkers)) ||
            (r = conf_integer(f, "max_connections", 1, 1000000, &max_connections)))
                return r;
        s->max_checkers = (unsigned) max_checkers;
        s->max_connections = (unsigned) max_connections;
        return SETTINGS_RUN;
}

static SettingsResult apply_options(Settings *s, const Options *o, long *port, long *socket_fd) {
        const struct {
                const char *value;
                char **field;
        } strings[] = {
                { o->interface, &s->interface },
                { o->address, &s->address },
                { o->debuglevel, &s->debuglevel },
                { o->priority, &s->priority },
                { o->servicename, &s->servicename },
                { o->statedir, &s->statedir },
        };

        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                if (strings[i].value && set_string(strings[i].field, strings[i].value) < 0)
                        return SETTINGS_EXIT_FAILURE;
        if (o->port && (parse_python_int(o->port, port) < 0 || *port < 0 || *port > 65535))
                return usage_error("argument -p/--port: invalid port value: '%s'", o->port);
        if (o->socket && (parse_python_int(o->socket, socket_fd) < 0 || *socket_fd < 0 || *socket_fd > INT_MAX))
                return usage_error("argument --socket: invalid int value: '%s'", o->socket);
        if (o->debug >= 0)
                s->debug = o->debug;
        if (o->use_dbus >= 0)
                s->use_dbus = o->use_dbus;
        if (o->use_ipv6 >= 0)
                s->use_ipv6 = o->use_ipv6;
        if (o->restore >= 0)
                s->restore = o->restore;
        if (o->foreground >= 0)
                s->foreground = o->foreground;
        if (o->zeroconf >= 0)
                s->zeroconf = o->zeroconf;
        return SETTINGS_RUN;
}

static void normalize_empty(char **field) {
        if (*field && !**field) {
                free(*field);
                *field = NULL;
        }
}

SettingsResult settings_load(Settings *s, int argc, char *argv[]) {
        Options o = {
                .debug = -1, .use_dbus = -1, .use_ipv6 = -1,
                .restore = -1, .foreground = -1, .zeroconf = -1,
        };
        long port = 0, socket_fd = -1;
        SettingsResult r;

        *s = (Settings) {
                .socket_fd = -1,
                .use_dbus = true,
                .use_ipv6 = true,
                .restore = true,
                .zeroconf = true,
                .log_level = LOG_WARNING,
        };

        r = parse_argv(s, &o, argc, argv);
        if (r != SETTINGS_RUN)
                return r;
        if (!s->configdir && set_string(&s->configdir, DEFAULT_CONFIGDIR) < 0)
                return SETTINGS_EXIT_FAILURE;

        r = read_mandos_conf(s, &port, &socket_fd);
        if (r != SETTINGS_RUN)
                return r;
        r = apply_options(s, &o, &port, &socket_fd);
        if (r != SETTINGS_RUN)
                return r;

        s->port = (int) port;
        s->socket_fd = (int) socket_fd;
        normalize_empty(&s->interface);
        normalize_empty(&s->address);
        normalize_empty(&s->debuglevel);
        if (isempty(s->priority) && set_string(&s->priority, "NORMAL") < 0)
                return SETTINGS_EXIT_FAILURE;

        if (s->debug)
                s->foreground = true;
        if (s->debug)
                s->log_level = LOG_DEBUG;
        else if (s->debuglevel) {
                int level = log_level_from_string(s->debuglevel);
                if (level < 0)
                        return usage_error("unknown debug level: '%s'", s->debuglevel);
                s->log_level = level;
        }

        /* A socket passed by systemd counts as a socket given. */
        if (s->check && s->import_pickle)
                return usage_error("--check and --import-pickle exclude each other");
        if (!s->check && !s->import_pickle && !s->zeroconf && s->port == 0 && s->socket_fd < 0 && sd_listen_fds(false) <= 0)
                return usage_error("Needs port or socket to work without Zeroconf");
        return SETTINGS_RUN;
}

void settings_done(Settings *s) {
        free(s->configdir);
        free(s->interface);
        free(s->address);
        free(s->debuglevel);
        free(s->priority);
        free(s->servicename);
        free(s->statedir);
        free(s->import_pickle);
        *s = (Settings) { .socket_fd = -1 };
}
