/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The server's side of ReadConfiguration (src/launcher.h): the files' bytes
 * come in a memfd that must bear all four seals. A fake launcher on a real
 * sd-bus peer-to-peer channel answers with a sealed memfd, an unsealed
 * one, one that misses F_SEAL_WRITE, and one whose offsets lie; only the
 * first is taken. */

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "launcher.h"
#include "test.h"
#include "util.h"

static const char conf_text[] = "[alpha]\nsecret = aGk=\nhost = alpha\n";

static int make_memfd(const char *text, int seals) {
        int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        size_t n = strlen(text);

        if (fd < 0 || write(fd, text, n) != (ssize_t) n)
                return -1;
        if (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)
                return -1;
        return fd;
}

typedef struct Fake {
        int seals;        /* on the memfd the fake launcher answers with */
        uint64_t offset;  /* of clients.conf's bytes in it */
} Fake;

static int fake_read_configuration(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const Fake *fake = userdata;
        _cleanup_close_ int fd = make_memfd(conf_text, fake->seals);

        if (fd < 0)
                return -errno;
        return sd_bus_reply_method_return(m, "ha(ysistt)", fd, 1, 'c', "/etc/mandos/clients.conf", 0, "",
                                          fake->offset, (uint64_t) strlen(conf_text));
}

static const sd_bus_vtable fake_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("ReadConfiguration", "", "ha(ysistt)", fake_read_configuration, 0),
        SD_BUS_VTABLE_END,
};

typedef struct Result {
        bool done;
        int r;
        ConfFiles files;
} Result;

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Result *res = userdata;

        res->r = launcher_configuration_reply(reply, &res->files);
        res->done = true;
        return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(reply)), 0);
}

/* One ReadConfiguration against a fake launcher; the result of
 * launcher_configuration_reply(). */
static int ask_fake(Fake fake, ConfFiles *ret) {
        sd_event *event = NULL;
        sd_bus *launcher = NULL, *server = NULL;
        sd_bus_slot *slot = NULL;
        Result res = {};
        sd_id128_t id;
        int pair[2], r;

        check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
        check(sd_event_new(&event) >= 0);
        check(sd_id128_randomize(&id) >= 0);
        check(sd_bus_new(&launcher) >= 0);
        check(sd_bus_set_fd(launcher, pair[1], pair[1]) >= 0);
        check(sd_bus_set_server(launcher, 1, id) >= 0);
        check(sd_bus_set_anonymous(launcher, 1) >= 0);
        check(sd_bus_add_object_vtable(launcher, NULL, LAUNCHER_PATH, LAUNCHER_INTERFACE, fake_vtable, &fake) >= 0);
        check(sd_bus_attach_event(launcher, event, 0) >= 0);
        check(sd_bus_start(launcher) >= 0);
        check(launcher_connect(pair[0], &server) == 0);
        check(sd_bus_attach_event(server, event, 0) >= 0);
        check(launcher_read_configuration_async(server, &slot, on_reply, &res) >= 0);
        for (int i = 0; i < 1000 && !res.done; i++)
                if (sd_event_run(event, 10 * USEC_PER_MSEC) < 0)
                        break;
        check(res.done);
        r = res.done ? res.r : -ETIMEDOUT;
        *ret = res.files;
        sd_bus_slot_unref(slot);
        sd_bus_flush_close_unref(server);
        sd_bus_flush_close_unref(launcher);
        sd_event_unref(event);
        return r;
}

static void test_sealed_memfd_is_taken(void) {
        ConfFiles files = {};

        check_int(ask_fake((Fake) { .seals = LAUNCHER_SEALS }, &files), 0);
        check_int(files.n, 1);
        check(files.replay);
        if (files.n == 1) {
                check_int(files.files[0].kind, 'c');
                check_streq(files.files[0].path, "/etc/mandos/clients.conf");
                check_int(files.files[0].size, strlen(conf_text));
                check_streq((const char *) files.files[0].data, conf_text);
        }
        conf_files_done(&files);
}

static void test_unsealed_memfd_is_refused(void) {
        ConfFiles files = {};

        check_int(ask_fake((Fake) { .seals = 0 }, &files), -EPERM);
        check_int(files.n, 0);
        conf_files_done(&files);
}

static void test_memfd_without_write_seal_is_refused(void) {
        ConfFiles files = {};

        /* Writable: the bytes could change while the server parses them. */
        check_int(ask_fake((Fake) { .seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL }, &files), -EPERM);
        check_int(files.n, 0);
        conf_files_done(&files);
}

static void test_offsets_past_the_end_are_refused(void) {
        ConfFiles files = {};

        check_int(ask_fake((Fake) { .seals = LAUNCHER_SEALS, .offset = 1 }, &files), -EBADMSG);
        check_int(files.n, 0);
        conf_files_done(&files);
}

static void test_map_sealed_refuses_what_has_no_seals(void) {
        const void *map = NULL;
        size_t size = 0;
        int pipefd[2], fd;

        /* A pipe and a file of the file system cannot be sealed at all. */
        check(pipe2(pipefd, O_CLOEXEC) == 0);
        check_int(launcher_map_sealed(pipefd[0], &map, &size), -EPERM);
        close(pipefd[0]);
        close(pipefd[1]);
        fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        check(fd >= 0);
        check_int(launcher_map_sealed(fd, &map, &size), -EPERM);
        close(fd);
        /* A memfd made without MFD_ALLOW_SEALING bears F_SEAL_SEAL only. */
        fd = memfd_create("test", MFD_CLOEXEC);
        check(fd >= 0);
        check_int(launcher_map_sealed(fd, &map, &size), -EPERM);
        close(fd);
        /* Sealed and empty: nothing to map. */
        fd = make_memfd("", LAUNCHER_SEALS);
        check(fd >= 0);
        check_int(launcher_map_sealed(fd, &map, &size), 0);
        check(!map);
        check_int(size, 0);
        close(fd);
}

TEST_MAIN(TEST(test_sealed_memfd_is_taken), TEST(test_unsealed_memfd_is_refused),
          TEST(test_memfd_without_write_seal_is_refused), TEST(test_offsets_past_the_end_are_refused),
          TEST(test_map_sealed_refuses_what_has_no_seals))
