/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A stand-in for libFuzzer's main(): run the target once over each file
 * named, and over each file in each directory named (a corpus), in name
 * order. Any crash or fuzz_assert() failure aborts; otherwise exit 0, or 1
 * when no input was found (a missing corpus must not pass silently). */

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path) {
        FILE *f = fopen(path, "re");
        uint8_t *data = NULL;
        size_t size = 0, cap = 0, n;

        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        do {
                if (cap - size < 4096) {
                        cap = 2 * cap + 4096;
                        data = realloc(data, cap);
                        if (!data)
                                abort();
                }
                n = fread(data + size, 1, cap - size, f);
                size += n;
        } while (n > 0);
        fclose(f);
        /* An exact-size copy, so that ASan sees any read past the end. */
        uint8_t *exact = malloc(size ?: 1);
        if (!exact)
                abort();
        memcpy(exact, data, size);
        free(data);
        fprintf(stderr, "Running: %s (%zu bytes)\n", path, size);
        (void) LLVMFuzzerTestOneInput(exact, size);
        free(exact);
        return 1;
}

static int filter_files(const struct dirent *d) {
        return d->d_name[0] != '.';
}

static int run_path(const char *path) {
        struct dirent **names;
        struct stat st;
        int n, count = 0;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        if (!S_ISDIR(st.st_mode))
                return run_file(path);
        n = scandir(path, &names, filter_files, alphasort);
        if (n < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        for (int i = 0; i < n; i++) {
                char *file;
                if (count >= 0 && asprintf(&file, "%s/%s", path, names[i]->d_name) >= 0) {
                        int r = run_path(file);
                        count = r < 0 ? -1 : count + r;
                        free(file);
                }
                free(names[i]);
        }
        free(names);
        return count;
}

int main(int argc, char *argv[]) {
        int total = 0;

        for (int i = 1; i < argc; i++) {
                int r = run_path(argv[i]);
                if (r < 0)
                        return 1;
                total += r;
        }
        fprintf(stderr, "%d inputs, no crash\n", total);
        return total > 0 ? 0 : 1;
}
