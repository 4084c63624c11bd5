/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "clients-conf.h"
#include "shared-str.h"
#include "test.h"
#include "util.h"

#define KEY_ID "a4f03efd8543e4242ee4dff312ed15380946911c47bfb258bbc12593a3a38641"
#define KEY_ID_UPPER "A4F03EFD8543E4242EE4DFF312ED15380946911C47BFB258BBC12593A3A38641"

static ClientsConf *parse(const char *text) {
        ClientsConf *c = NULL;
        check_int(clients_conf_parse("clients.conf", text, strlen(text), &c), 0);
        return c;
}

static const ClientSettings *find(const ClientsConf *c, const char *name) {
        for (size_t i = 0; c && i < c->n_clients; i++)
                if (streq(c->clients[i]->name, name))
                        return c->clients[i];
        return NULL;
}

/* Whether some problem line names all of these. */
static bool has_problem(const ClientsConf *c, const char *a, const char *b, const char *d) {
        for (size_t i = 0; i < c->n_problems; i++)
                if (strstr(c->problems[i], a) && strstr(c->problems[i], b) && (!d || strstr(c->problems[i], d)))
                        return true;
        return false;
}

static bool has_warning(const ClientsConf *c, const char *a, const char *b) {
        for (size_t i = 0; i < c->n_warnings; i++)
                if (strstr(c->warnings[i], a) && strstr(c->warnings[i], b))
                        return true;
        return false;
}

/* What mandos-keygen --password prints, shortened. */
static const char keygen_output[] =
        "# Comment\n"
        "[foo.bar-baz]\n"
        "host = foo.bar-baz\n"
        "key_id = " KEY_ID "\n"
        "fingerprint = 0123 4567 89ab cdef 0123  4567 89AB CDEF 0123 4567\n"
        "secret =\n"
        "        aGVsbG8g\n"
        "\n"
        "        d29ybGQ=\n"
        "checker = ssh-keyscan -t ecdsa-sha2-nistp256 %%(host)s 2>/dev/null | grep --fixed-strings --line-regexp --quiet --regexp=%%(host)s\" %(ssh_fingerprint)s\"\n"
        "ssh_fingerprint = ecdsa-sha2-nistp256 AAAA\n";

static void test_keygen_output_is_accepted(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse(keygen_output);
        const ClientSettings *cl = find(c, "foo.bar-baz");

        check_int(c->n_problems, 0);
        check(cl != NULL);
        if (!cl)
                return;
        check_streq(cl->key_id, KEY_ID_UPPER);
        check_streq(cl->fingerprint, "0123456789ABCDEF0123456789ABCDEF01234567");
        check_int(cl->secret_size, 11);
        check(memcmp(cl->secret, "hello world", 11) == 0);
        check_streq(cl->checker_command, "ssh-keyscan -t ecdsa-sha2-nistp256 %(host)s 2>/dev/null | grep --fixed-strings "
                                 "--line-regexp --quiet --regexp=%(host)s\" ecdsa-sha2-nistp256 AAAA\"");
        check_streq(cl->host, "foo.bar-baz");
}

static void test_defaults_are_the_reference_ones(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse("[a]\nkey_id = " KEY_ID "\nsecret = aGk=\n");
        const ClientSettings *cl = find(c, "a");

        check(cl != NULL);
        if (!cl)
                return;
        check_int(cl->timeout, 5 * 60 * USEC_PER_SEC);
        check_int(cl->extended_timeout, 15 * 60 * USEC_PER_SEC);
        check_int(cl->interval, 2 * 60 * USEC_PER_SEC);
        check_int(cl->approval_delay, 0);
        check_int(cl->approval_duration, USEC_PER_SEC);
        check(cl->approved_by_default);
        check(cl->enabled);
        check_streq(cl->checker_command, "fping -q -- %(host)s");
        check_streq(cl->host, "");
        check_streq(cl->fingerprint, ""); /* optional (mandos-clients.conf(5)) */
}

static void test_default_section_is_inherited_and_overridden(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse(
                "[DEFAULT]\ntimeout = PT1H\nenabled = no\n"
                "[a]\nkey_id = " KEY_ID "\nsecret = aGk=\n"
                "[b]\nkey_id = 00\nsecret = aGk=\ntimeout = 7d\nenabled = Yes\n");
        const ClientSettings *a = find(c, "a"), *b = find(c, "b");

        check(a && b);
        if (!a || !b)
                return;
        check_int(a->timeout, 3600 * USEC_PER_SEC);
        check(!a->enabled);
        check_int(b->timeout, 7 * 86400 * USEC_PER_SEC);
        check(b->enabled);
        check(find(c, "DEFAULT") == NULL);
}

/* mandos-clients.conf(5), ERRORS: one bad entry skips that client only, named
 * precisely. */
static void test_each_bad_value_skips_only_its_client(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse(
                "[good]\nkey_id = " KEY_ID "\nsecret = aGk=\n"
                "[bad-duration]\nsecret = aGk=\ntimeout = forever\n"
                "[bad-boolean]\nsecret = aGk=\nenabled = maybe\n"
                "[bad-base64]\nsecret = abc\n"
                "[bad-interpolation]\nsecret = aGk=\nchecker = fping %(nosuch)s\n"
                "[bad-percent]\nsecret = aGk=\nhost = 50%\n"
                "[no-secret]\nhost = x\n"
                "[bad-unknown-key]\nsecret = aGk=\nnote = %(missing)s\n"
                "[bad-negative]\nsecret = aGk=\ninterval = -1s\n"
                "[bad-zero-interval]\nsecret = aGk=\ninterval = PT0S\n");

        check_int(c->n_clients, 1);
        check(find(c, "good") != NULL);
        check(has_problem(c, "clients.conf:", "[bad-duration]", "timeout"));
        check(has_problem(c, "clients.conf:", "[bad-boolean]", "enabled"));
        check(has_problem(c, "clients.conf:", "[bad-base64]", "secret"));
        check(has_problem(c, "clients.conf:", "[bad-interpolation]", "checker"));
        check(has_problem(c, "clients.conf:", "[bad-percent]", "host"));
        check(has_problem(c, "clients.conf:", "[no-secret]", "no secret or secfile"));
        check(has_problem(c, "clients.conf:", "[bad-unknown-key]", "note"));
        check(has_problem(c, "clients.conf:", "[bad-negative]", "interval"));
        check(has_problem(c, "clients.conf:", "[bad-zero-interval] interval", "zero"));
        check_int(c->n_problems, 9);
}

static void test_problem_lines_carry_the_line_number(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse("[a]\nsecret = aGk=\n\ntimeout = soon\n");

        check(has_problem(c, "clients.conf:4: [a] timeout: ", "soon", NULL));
}

static void test_syntax_errors_skip_only_their_section(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse(
                "[a]\nsecret = aGk=\nthis line has no separator\n"
                "[b]\nsecret = aGk=\nhost = x\nhost = y\n"
                "[c]\nsecret = aGk=\n"
                "[c]\nhost = z\n"
                "[d]\nsecret = aGk=\n");

        check(find(c, "a") == NULL);
        check(find(c, "b") == NULL); /* duplicate key */
        check(find(c, "c") == NULL); /* duplicate section: neither copy is trusted */
        check(find(c, "d") != NULL);
        check(has_problem(c, "clients.conf:3:", "[a]", NULL));
        check(has_problem(c, "clients.conf:7:", "[b]", "host"));
        check(has_problem(c, "clients.conf:", "[c]", NULL));
}

static void test_broken_default_section_loads_no_client(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse("[DEFAULT]\nno separator here\n[a]\nsecret = aGk=\n");

        check_int(c->n_clients, 0);
        check(has_problem(c, "[DEFAULT]", "no client", NULL));
}

/* mandos-clients.conf(5), secret: the lenient decoder skips foreign
 * characters; padding errors are fatal. */
static void test_base64_is_decoded_leniently(void) {
        uint8_t *out = NULL;
        size_t n = 0;
        const char *why = NULL;

        check_int(base64_decode_lenient("aGVs bG8g!\nd29y\tbGQ=", &out, &n, &why), 0);
        check_int(n, 11);
        check(out && memcmp(out, "hello world", 11) == 0);
        free(out);
        check_int(base64_decode_lenient("aGk=trailing ignored", &out, &n, &why), 0);
        check_int(n, 2);
        free(out);
        check_int(base64_decode_lenient("", &out, &n, &why), 0);
        check_int(n, 0);
        free(out);
        check_int(base64_decode_lenient("aGk", &out, &n, &why), -EINVAL);
        check(why && strstr(why, "padding"));
        check_int(base64_decode_lenient("aGVsb", &out, &n, &why), -EINVAL);
}

static void test_key_id_is_normalised(void) {
        _cleanup_free_ char *a = normalize_key_id(" ab cd\tef ");
        check_streq(a, "ABCD\tEF"); /* only ASCII spaces go, as in the reference */
}

/* Duplicate key IDs warn, the first wins (mandos-clients.conf(5), ERRORS). */
static void test_duplicate_key_ids_warn_and_keep_order(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse(
                "[first]\nkey_id = " KEY_ID "\nsecret = aGk=\n"
                "[second]\nkey_id = " KEY_ID_UPPER "\nsecret = aGk=\n");

        check_int(c->n_clients, 2);
        check_streq(c->clients[0]->name, "first");
        check(has_warning(c, "[second] key_id", "first"));
}

static void test_malformed_key_id_warns(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse("[a]\nkey_id = xyz\nsecret = aGk=\n[b]\nsecret = aGk=\n");

        check_int(c->n_clients, 2);
        check(has_warning(c, "[a] key_id", "64 hexadecimal"));
        check(has_warning(c, "[b] key_id", "missing"));
}

/* mandos-clients.conf(5), DURATIONS: compact legacy forms and RFC 3339 Y/M
 * with a time part. */
static void test_duration_improvements_apply_to_clients(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse(
                "[a]\nsecret = aGk=\ntimeout = 1d2h\ninterval = P1YT1H\nextended_timeout = 5m 30s\n");
        const ClientSettings *a = find(c, "a");

        check(a != NULL);
        if (!a)
                return;
        check_int(a->timeout, 26 * 3600 * USEC_PER_SEC);
        check_int(a->interval, (364 * 86400 + 3600) * USEC_PER_SEC);
        check_int(a->extended_timeout, 330 * USEC_PER_SEC);
}

static char *write_file(const char *dir, const char *name, const char *content, size_t size) {
        char *path;
        int fd;

        check(asprintf(&path, "%s/%s", dir, name) > 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        check(fd >= 0);
        check(write(fd, content, size) == (ssize_t) size);
        close(fd);
        return path;
}

static void test_secfile_is_read_and_bad_ones_are_named(void) {
        char dir[] = "/tmp/test-clients-conf-XXXXXX", *text = NULL;
        _cleanup_free_ char *secret = NULL, *big = NULL, *conf = NULL;
        ClientsConf *c = NULL;
        int fd;

        check(mkdtemp(dir) != NULL);
        secret = write_file(dir, "secret.bin", "\x01\x00\x02", 3);
        setenv("TEST_SECRET_DIR", dir, 1);
        big = write_file(dir, "big", "", 0);
        fd = open(big, O_WRONLY | O_CLOEXEC);
        check(fd >= 0 && ftruncate(fd, 100 * 1024 * 1024) == 0);
        close(fd);

        check(asprintf(&text,
                       "[env]\nsecfile = $TEST_SECRET_DIR/secret.bin\n"
                       "[braces]\nsecfile = ${TEST_SECRET_DIR}/secret.bin\n"
                       "[missing]\nsecfile = %s/nosuch\n"
                       "[directory]\nsecfile = %s\n"
                       "[huge]\nsecfile = %s\n",
                       dir, dir, big) > 0);
        conf = write_file(dir, "clients.conf", text, strlen(text));
        check_int(clients_conf_load(conf, &c), 0);
        if (c) {
                const ClientSettings *e = find(c, "env");
                check(e && e->secret_size == 3 && memcmp(e->secret, "\x01\x00\x02", 3) == 0);
                check(find(c, "braces") != NULL);
                check(has_problem(c, "[missing] secfile", "No such file", NULL));
                check(has_problem(c, "[directory] secfile", "directory", NULL));
                check(has_problem(c, "[huge] secfile", "larger than", NULL));
                check_int(c->n_clients, 2);
        }
        clients_conf_free(c);
        free(text);
        unlink(secret);
        unlink(big);
        unlink(conf);
        rmdir(dir);
}

static void test_missing_file_gives_no_clients(void) {
        ClientsConf *c = NULL;

        check_int(clients_conf_load("/nonexistent/clients.conf", &c), 0);
        check(c && c->n_clients == 0 && c->n_problems == 0);
        clients_conf_free(c);
}

/* A fleet's one checker command, inherited or written out in each section,
 * and an unset host are one shared string (src/shared-str.h), not a copy a
 * client; a checker of its own stays its own. */
static void test_same_strings_are_shared(void) {
        _cleanup_(clients_conf_freep) ClientsConf *c = parse(
                "[DEFAULT]\nchecker = ping -c1 %%(host)s\n\n"
                "[a]\nkey_id = " KEY_ID "\nsecret = c2VjcmV0\n\n"
                "[b]\nkey_id = " KEY_ID "\nsecret = c2VjcmV0\n\n"
                "[c]\nkey_id = " KEY_ID "\nsecret = c2VjcmV0\nchecker = ping -c1 %%(host)s\n\n"
                "[d]\nkey_id = " KEY_ID "\nsecret = c2VjcmV0\nchecker = true\n");
        const ClientSettings *a = find(c, "a"), *b = find(c, "b"), *cc = find(c, "c"), *d = find(c, "d");

        check(a && b && cc && d);
        check_streq(a->checker_command, "ping -c1 %(host)s");
        check(b->checker_command == cc->checker_command);
        check(shared_str_is(b->checker_command));
        check(a->checker_command != b->checker_command); /* the first one read keeps its own */
        check_streq(d->checker_command, "true");
        check(!shared_str_is(d->checker_command));
        check(a->host == d->host);
        check_streq(a->host, "");
        check(a->fingerprint == b->fingerprint);
}

TEST_MAIN(TEST(test_keygen_output_is_accepted),
          TEST(test_defaults_are_the_reference_ones),
          TEST(test_default_section_is_inherited_and_overridden),
          TEST(test_each_bad_value_skips_only_its_client),
          TEST(test_problem_lines_carry_the_line_number),
          TEST(test_syntax_errors_skip_only_their_section),
          TEST(test_broken_default_section_loads_no_client),
          TEST(test_base64_is_decoded_leniently),
          TEST(test_key_id_is_normalised),
          TEST(test_duplicate_key_ids_warn_and_keep_order),
          TEST(test_malformed_key_id_warns),
          TEST(test_duration_improvements_apply_to_clients),
          TEST(test_secfile_is_read_and_bad_ones_are_named),
          TEST(test_missing_file_gives_no_clients),
          TEST(test_same_strings_are_shared))
