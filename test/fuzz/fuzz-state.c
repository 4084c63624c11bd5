/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The state file loader (src/state.c): any bytes give a State or an error
 * saying why, never a crash. The loader reads a path (and refuses
 * symlinks, so no /proc/self/fd/N): each input is written to one scratch
 * file, removed at exit. */

#include <fcntl.h>
#include <unistd.h>

#include "fuzz.h"
#include "state.h"
#include "util.h"

static char scratch_dir[] = "/tmp/fuzz-state.XXXXXX";
static char path[sizeof(scratch_dir) + sizeof("/" STATE_FILE_NAME)];

static void remove_scratch(void) {
        (void) unlink(path);
        (void) rmdir(scratch_dir);
}

static void write_input(const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = -1;

        if (!path[0]) {
                fuzz_assert(mkdtemp(scratch_dir));
                snprintf(path, sizeof(path), "%s/%s", scratch_dir, STATE_FILE_NAME);
                atexit(remove_scratch);
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        fuzz_assert(fd >= 0);
        fuzz_assert(size == 0 || write(fd, data, size) == (ssize_t) size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        write_input(data, size);
        r = state_load(path, &s, &error);
        if (r == -ENOMEM)
                return 0;
        fuzz_assert(r == 0 || r == -EINVAL);
        if (r < 0)
                return 0;
        fuzz_assert(s && !error);
        for (size_t i = 0; i < s->n_clients; i++) {
                fuzz_assert(s->clients[i] && s->clients[i]->config && s->clients[i]->config->name);
                fuzz_assert(state_find(s, s->clients[i]->config->name, false));
        }
        for (size_t i = 0; i < s->n_removed; i++)
                fuzz_assert(s->removed[i] && s->removed[i]->config && s->removed[i]->config->name);
        return 0;
}
