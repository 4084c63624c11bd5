/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "duration.h"
#include "test.h"
#include "util.h"

#define T_SEC(n) ((uint64_t) (n) * USEC_PER_SEC)
#define T_MIN(n) T_SEC((n) * 60)
#define T_HOUR(n) T_MIN((n) * 60)
#define T_DAY(n) T_HOUR((uint64_t) (n) * 24)

/* A known instant: 2026-11-28 15:35:24.978319 UTC. */
#define SOME_TIME UINT64_C(1795880124978319)

/* The parsed value, or a negative errno. */
static int64_t parse(const char *s) {
        uint64_t v = UINT64_MAX;
        int r = duration_parse(s, &v);
        return r < 0 ? r : (int64_t) v;
}

static void test_rfc3339_defaults_of_clients_conf(void) {
        check_int(parse("PT5M"), T_SEC(300));
        check_int(parse("PT15M"), T_MIN(15));
        check_int(parse("PT2M"), T_MIN(2));
        check_int(parse("PT0S"), 0);
        check_int(parse("PT1S"), T_SEC(1));
}

static void test_rfc3339_date_units_are_fixed_lengths(void) {
        check_int(parse("P1W"), T_DAY(7));
        check_int(parse("P1Y"), T_DAY(364));
        check_int(parse("P1M"), T_DAY(28));
        check_int(parse("P1D"), T_DAY(1));
        check_int(parse("P1Y2M"), T_DAY(364 + 56));
        check_int(parse("P2M3D"), T_DAY(59));
}

static void test_rfc3339_full_form(void) {
        check_int(parse("P1DT2H3M4S"), T_DAY(1) + T_HOUR(2) + T_MIN(3) + T_SEC(4));
        check_int(parse("P1Y2M3DT4H5M6S"), T_DAY(364 + 56 + 3) + T_HOUR(4) + T_MIN(5) + T_SEC(6));
        check_int(parse("PT1H"), T_HOUR(1));
        check_int(parse("PT1H5M"), T_HOUR(1) + T_MIN(5));
        check_int(parse("PT5M30S"), T_MIN(5) + T_SEC(30));
        check_int(parse("PT0100S"), T_SEC(100));
}

static void test_rfc3339_year_or_month_then_time_is_accepted(void) {
        /* The reference rejects these; RFC 3339 allows them. */
        check_int(parse("P1YT1H"), T_DAY(364) + T_HOUR(1));
        check_int(parse("P1MT1H"), T_DAY(28) + T_HOUR(1));
        check_int(parse("P1Y2MT3H"), T_DAY(364 + 56) + T_HOUR(3));
}

static void test_rfc3339_out_of_order_or_skipped_parts_are_rejected(void) {
        check_int(parse("PT1H5S"), -EINVAL); /* hour then second: RFC 3339 needs the minute */
        check_int(parse("P1D2W"), -EINVAL);
        check_int(parse("P1W2D"), -EINVAL);
        check_int(parse("P1Y1D"), -EINVAL);
        check_int(parse("PT1S1M"), -EINVAL);
        check_int(parse("P1DT"), -EINVAL);
        check_int(parse("PT1M1H"), -EINVAL);
        check_int(parse("P1H"), -EINVAL);
        check_int(parse("PTS"), -EINVAL);
}

static void test_rfc3339_is_case_sensitive_and_complete(void) {
        check_int(parse("p1d"), -EINVAL);
        check_int(parse("pt5m"), -EINVAL);
        check_int(parse("P1d"), -EINVAL);
        check_int(parse("P"), -EINVAL);
        check_int(parse("PT"), -EINVAL);
        check_int(parse("P1"), -EINVAL);
        check_int(parse("T5M"), -EINVAL);
}

static void test_fractions_are_rejected(void) {
        check_int(parse("PT1.5S"), -EINVAL);
        check_int(parse("P1.5D"), -EINVAL);
        check_int(parse("PT1,5S"), -EINVAL);
        check_int(parse("1.5s"), -EINVAL);
}

static void test_legacy_tokens(void) {
        check_int(parse("7d"), T_DAY(7));
        check_int(parse("60s"), T_SEC(60));
        check_int(parse("5m 30s"), T_MIN(5) + T_SEC(30));
        check_int(parse("1w 2d"), T_DAY(9));
        check_int(parse("2h"), T_HOUR(2));
        check_int(parse(" \t1h\n 1s "), T_HOUR(1) + T_SEC(1));
        check_int(parse("1s 1s 1s"), T_SEC(3));
}

static void test_legacy_token_may_chain_units(void) {
        /* The reference rejects these. */
        check_int(parse("1d2h"), T_DAY(1) + T_HOUR(2));
        check_int(parse("5m30s"), T_MIN(5) + T_SEC(30));
        check_int(parse("1s1d"), T_DAY(1) + T_SEC(1));
}

static void test_empty_or_blank_is_zero(void) {
        check_int(parse(""), 0);
        check_int(parse("   "), 0);
        check_int(parse("\t\n"), 0);
}

/* A token's number is read as Python's int() and mandos.conf's integers
 * read it: a plus sign and single underscores between digits. */
static void test_legacy_numbers_read_as_python_int(void) {
        check_int(parse("+5m"), T_MIN(5));
        check_int(parse("1_0s"), T_SEC(10));
        check_int(parse("1_000s +1m"), T_SEC(1000) + T_MIN(1));
        check_int(parse("+1d2h"), T_DAY(1) + T_HOUR(2));
        check_int(parse("1__0s"), -EINVAL);
        check_int(parse("_10s"), -EINVAL);
        check_int(parse("10_s"), -EINVAL);
        check_int(parse("++5m"), -EINVAL);
        check_int(parse("1d+2h"), -EINVAL);
        /* Python's int() also reads other scripts' digits; both our parsers
         * take ASCII digits only (mandos-clients.conf(5), DURATIONS). */
        check_int(parse("\xd9\xa5m"), -EINVAL);
}

static void test_legacy_rejects_signs_bare_numbers_and_unknown_units(void) {
        check_int(parse("-1s"), -EINVAL); /* the reference accepts negative durations */
        check_int(parse("1s -1s"), -EINVAL);
        check_int(parse("10"), -EINVAL);
        check_int(parse("1d2"), -EINVAL);
        check_int(parse("1x"), -EINVAL);
        check_int(parse("1S"), -EINVAL);
        check_int(parse("s"), -EINVAL);
        check_int(parse("1 s"), -EINVAL);
        check_int(parse("5m,30s"), -EINVAL);
}

static void test_overflow_is_erange(void) {
        check_int(parse("18446744073709551616s"), -ERANGE);
        check_int(parse("99999999999999999999999999s"), -ERANGE);
        check_int(parse("30500569w"), -ERANGE);
        check_int(parse("18446744073709s 18446744073709s"), -ERANGE);
        check_int(parse("P99999999999999999999D"), -ERANGE);
        check_int(parse("P30500569W"), -ERANGE);
        check_int(parse("PT18446744073709S"), T_SEC(UINT64_C(18446744073709)));
}

static void test_syntax_error_wins_over_overflow(void) {
        check_int(parse("P99999999999999999999D2W"), -EINVAL);
        check_int(parse("99999999999999999999999s x"), -EINVAL);
}

static void check_python_duration(uint64_t usec, const char *expected) {
        char buf[DURATION_PYTHON_MAX];
        check_streq(duration_format_python(usec, buf), expected);
}

static void test_format_python_timedelta(void) {
        check_python_duration(0, "0:00:00");
        check_python_duration(T_SEC(300), "0:05:00");
        check_python_duration(T_MIN(15), "0:15:00");
        check_python_duration(T_SEC(1), "0:00:01");
        check_python_duration(T_HOUR(23) + T_MIN(59) + T_SEC(59), "23:59:59");
        check_python_duration(T_DAY(1), "1 day, 0:00:00");
        check_python_duration(T_DAY(2) + 1, "2 days, 0:00:00.000001");
        check_python_duration(T_DAY(1) + T_HOUR(1) + T_MIN(2) + T_SEC(3) + 500, "1 day, 1:02:03.000500");
        check_python_duration(999, "0:00:00.000999");
        check_python_duration(UINT64_MAX, "213503982 days, 8:01:49.551615");
}

static void test_format_iso_timestamp_always_has_fraction(void) {
        char buf[TIMESTAMP_MAX];

        check_streq(timestamp_format_iso(0, buf), "1970-01-01T00:00:00.000000");
        check_streq(timestamp_format_iso(SOME_TIME, buf), "2026-11-28T15:35:24.978319");
        check_streq(timestamp_format_iso(SOME_TIME - 978319, buf), "2026-11-28T15:35:24.000000");
        check_streq(timestamp_format_iso(T_SEC(951782400) + 1, buf), "2000-02-29T00:00:00.000001");
}

static void test_format_python_datetime_drops_zero_fraction(void) {
        char buf[TIMESTAMP_MAX];

        check_streq(timestamp_format_python(SOME_TIME, buf), "2026-11-28 15:35:24.978319");
        check_streq(timestamp_format_python(SOME_TIME - 978319, buf), "2026-11-28 15:35:24");
        check_streq(timestamp_format_python(0, buf), "1970-01-01 00:00:00");
        check_streq(timestamp_format_python(1, buf), "1970-01-01 00:00:00.000001");
}

static void test_large_timestamp_fits_buffer(void) {
        char buf[TIMESTAMP_MAX];

        check(strlen(timestamp_format_iso(UINT64_MAX, buf)) < TIMESTAMP_MAX);
        check(strlen(timestamp_format_python(UINT64_MAX, buf)) < TIMESTAMP_MAX);
}

/* The parsed value, or a negative errno. */
static int64_t parse_time(const char *s) {
        uint64_t v = UINT64_MAX;
        int r = timestamp_parse_iso(s, &v);
        return r < 0 ? r : (int64_t) v;
}

static void test_parse_iso_timestamp_inverts_format(void) {
        char buf[TIMESTAMP_MAX];
        static const uint64_t times[] = { 0, 1, SOME_TIME, T_SEC(951782400), T_SEC(4102444799) + 999999 };

        for (size_t i = 0; i < ELEMENTSOF(times); i++)
                check_int(parse_time(timestamp_format_iso(times[i], buf)), times[i]);
        check_int(parse_time("2026-11-28T15:35:24"), SOME_TIME - 978319);
        check_int(parse_time("2026-11-28T15:35:24.5"), SOME_TIME - 978319 + 500000);
        check_int(parse_time("2026-11-28T15:35:24.978"), SOME_TIME - 319);
}

static void test_parse_iso_timestamp_rejects_malformed(void) {
        check_int(parse_time(""), -EINVAL);
        check_int(parse_time("2026-11-28"), -EINVAL);
        check_int(parse_time("2026-11-28T15:35:2"), -EINVAL);
        check_int(parse_time("2026-11-28 15:35:24"), -EINVAL);
        check_int(parse_time("2026-11-28T15:35:24."), -EINVAL);
        check_int(parse_time("2026-11-28T15:35:24.1234567"), -EINVAL);
        check_int(parse_time("2026-11-28T15:35:24Z"), -EINVAL);
        check_int(parse_time("2026-11-28T15:35:24.978319 "), -EINVAL);
        check_int(parse_time("2026-02-30T00:00:00"), -EINVAL);
        check_int(parse_time("2026-13-01T00:00:00"), -EINVAL);
        check_int(parse_time("2026-11-28T24:00:00"), -EINVAL);
        check_int(parse_time("2026-11-28T23:59:60"), -EINVAL);
        check_int(parse_time("1969-12-31T23:59:59"), -EINVAL);
        check_int(parse_time("+026-11-28T15:35:24"), -EINVAL);
}

TEST_MAIN(TEST(test_rfc3339_defaults_of_clients_conf),
          TEST(test_rfc3339_date_units_are_fixed_lengths),
          TEST(test_rfc3339_full_form),
          TEST(test_rfc3339_year_or_month_then_time_is_accepted),
          TEST(test_rfc3339_out_of_order_or_skipped_parts_are_rejected),
          TEST(test_rfc3339_is_case_sensitive_and_complete),
          TEST(test_fractions_are_rejected),
          TEST(test_legacy_tokens),
          TEST(test_legacy_token_may_chain_units),
          TEST(test_empty_or_blank_is_zero),
          TEST(test_legacy_numbers_read_as_python_int),
          TEST(test_legacy_rejects_signs_bare_numbers_and_unknown_units),
          TEST(test_overflow_is_erange),
          TEST(test_syntax_error_wins_over_overflow),
          TEST(test_format_python_timedelta),
          TEST(test_format_iso_timestamp_always_has_fraction),
          TEST(test_format_python_datetime_drops_zero_fraction),
          TEST(test_large_timestamp_fits_buffer),
          TEST(test_parse_iso_timestamp_inverts_format),
          TEST(test_parse_iso_timestamp_rejects_malformed))
