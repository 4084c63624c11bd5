/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "log.h"
#include "settings.h"
#include "test.h"
#include "util.h"

static char configdir[] = "/tmp/test-settings-XXXXXX";

static void write_mandos_conf(const char *text) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof(path), "%s/mandos.conf", configdir);
        if (!text) {
                unlink(path);
                return;
        }
        f = fopen(path, "we");
        check(f != NULL);
        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

/* settings_load() with "mandos --configdir DIR" and the given arguments. */
static SettingsResult load(Settings *s, ...) {
        char *argv[32] = { "mandos", "--configdir", configdir };
        int argc = 3;
        va_list ap;

        va_start(ap, s);
        for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
                argv[argc++] = a;
        va_end(ap);
        return settings_load(s, argc, argv);
}

static void test_defaults_without_mandos_conf(void) {
        Settings s;

        write_mandos_conf(NULL);
        check_int(load(&s, NULL), SETTINGS_RUN);
        check_streq(s.priority, DEFAULT_PRIORITY);
        check_streq(s.servicename, "Mandos");
        check_streq(s.statedir, "/var/lib/mandos");
        check(s.use_dbus && s.use_ipv6 && s.restore && s.zeroconf);
        check(!s.debug && !s.foreground);
        check_int(s.port, 0);
        check_int(s.socket_fd, -1);
        check(s.interface == NULL && s.address == NULL);
        check_int(s.log_level, LOG_WARNING);
        settings_done(&s);
}

static void test_command_line_beats_mandos_conf(void) {
        Settings s;

        write_mandos_conf("[DEFAULT]\nport = 1234\nservicename = Conf\nuse_dbus = no\nforeground = %(x)s\nx = yes\n");
        check_int(load(&s, "--port", "4321", "--servicename=Cmd", NULL), SETTINGS_RUN);
        check_int(s.port, 4321);
        check_streq(s.servicename, "Cmd");
        check(!s.use_dbus);
        check(s.foreground); /* booleans are interpolated */
        settings_done(&s);

        check_int(load(&s, NULL), SETTINGS_RUN);
        check_int(s.port, 1234);
        check_streq(s.servicename, "Conf");
        settings_done(&s);
}

static void test_strings_in_mandos_conf_are_raw(void) {
        Settings s;

        /* The default priority has "%PROFILE_ULTRA": not interpolated. */
        write_mandos_conf("[DEFAULT]\npriority = NORMAL:%PROFILE_HIGH\n");
        check_int(load(&s, NULL), SETTINGS_RUN);
        check_streq(s.priority, "NORMAL:%PROFILE_HIGH");
        settings_done(&s);
}

static void test_unique_prefixes_of_long_options(void) {
        Settings s;

        write_mandos_conf(NULL);
        check_int(load(&s, "--fore", "--no-z", "--po", "7", "--no-d", NULL), SETTINGS_RUN);
        check(s.foreground && !s.zeroconf && !s.use_dbus);
        check_int(s.port, 7);
        settings_done(&s);
        /* --deb is ambiguous: --debug or --debuglevel. */
        check_int(load(&s, "--deb", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
        /* --no- is ambiguous too. */
        check_int(load(&s, "--no-", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
}

static void test_short_options_and_exit_statuses(void) {
        Settings s;

        write_mandos_conf(NULL);
        check_int(load(&s, "-p8", "-i", "lo", "-a", "::1", NULL), SETTINGS_RUN);
        check_int(s.port, 8);
        check_streq(s.interface, "lo");
        check_streq(s.address, "::1");
        settings_done(&s);
        check_int(load(&s, "--version", NULL), SETTINGS_EXIT_OK);
        settings_done(&s);
        check_int(load(&s, "-h", NULL), SETTINGS_EXIT_OK);
        settings_done(&s);
        check_int(load(&s, "--bogus", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
        check_int(load(&s, "stray", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
        check_int(load(&s, "--port", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
        check_int(load(&s, "--port", "eighty", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
        check_int(load(&s, "--port", "70000", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
}

static void test_zeroconf_off_needs_port_or_socket(void) {
        Settings s;

        write_mandos_conf(NULL);
        check_int(load(&s, "--no-zeroconf", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
        check_int(load(&s, "--no-zeroconf", "--port", "0", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
        check_int(load(&s, "--no-zeroconf", "--socket", "3", NULL), SETTINGS_RUN);
        settings_done(&s);
        write_mandos_conf("[DEFAULT]\nzeroconf = off\nport = 99\n");
        check_int(load(&s, NULL), SETTINGS_RUN);
        settings_done(&s);
}

static void test_debug_forces_foreground_and_level(void) {
        Settings s;

        write_mandos_conf(NULL);
        check_int(load(&s, "--debug", NULL), SETTINGS_RUN);
        check(s.foreground);
        check_int(s.log_level, LOG_DEBUG);
        settings_done(&s);
        check_int(load(&s, "--debuglevel", "info", NULL), SETTINGS_RUN);
        check(!s.foreground);
        check_int(s.log_level, LOG_INFO);
        settings_done(&s);
        check_int(load(&s, "--debuglevel", "chatty", NULL), SETTINGS_EXIT_USAGE);
        settings_done(&s);
}

static void test_bad_mandos_conf_is_a_failure(void) {
        Settings s;

        write_mandos_conf("[DEFAULT]\nuse_dbus = perhaps\n");
        check_int(load(&s, NULL), SETTINGS_EXIT_FAILURE);
        settings_done(&s);
        write_mandos_conf("port = 1\n"); /* no [DEFAULT] header */
        check_int(load(&s, NULL), SETTINGS_EXIT_FAILURE);
        settings_done(&s);
        write_mandos_conf("[DEFAULT]\nport = http\n");
        check_int(load(&s, NULL), SETTINGS_EXIT_FAILURE);
        settings_done(&s);
        write_mandos_conf(NULL);
}

static void test_python_int(void) {
        long v = 0;

        check_int(parse_python_int(" 1_000 ", &v), 0);
        check_int(v, 1000);
        check_int(parse_python_int("+7", &v), 0);
        check_int(v, 7);
        check_int(parse_python_int("-3", &v), 0);
        check_int(v, -3);
        check_int(parse_python_int("007", &v), 0);
        check_int(v, 7);
        check_int(parse_python_int("1__0", &v), -EINVAL);
        check_int(parse_python_int("_1", &v), -EINVAL);
        check_int(parse_python_int("1_", &v), -EINVAL);
        check_int(parse_python_int("", &v), -EINVAL);
        check_int(parse_python_int("1 2", &v), -EINVAL);
        check_int(parse_python_int("0x10", &v), -EINVAL);
        check_int(parse_python_int("99999999999999999999999", &v), -ERANGE);
}

__attribute__((constructor)) static void setup(void) {
        check(mkdtemp(configdir) != NULL);
}

__attribute__((destructor)) static void teardown(void) {
        write_mandos_conf(NULL);
        rmdir(configdir);
}

TEST_MAIN(TEST(test_defaults_without_mandos_conf),
          TEST(test_command_line_beats_mandos_conf),
          TEST(test_strings_in_mandos_conf_are_raw),
          TEST(test_unique_prefixes_of_long_options),
          TEST(test_short_options_and_exit_statuses),
          TEST(test_zeroconf_off_needs_port_or_socket),
          TEST(test_debug_forces_foreground_and_level),
          TEST(test_bad_mandos_conf_is_a_failure),
          TEST(test_python_int))
