/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "state-journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

#include "client.h"
#include "hashmap.h"
#include "log.h"
#include "state-json.h"
#include "util.h"

/* ---------------------------------------------------------------- records */

/* CRC-32 as zlib and Python's zlib.crc32 compute it (reflected 0xEDB88320),
 * so that a record can be checked with common tools. */
uint32_t journal_crc32(const void *p, size_t n) {
        static uint32_t table[256];
        const uint8_t *b = p;
        uint32_t crc = 0xFFFFFFFFu;

        if (!table[1])
                for (uint32_t i = 0; i < 256; i++) {
                        uint32_t c = i;
                        for (int k = 0; k < 8; k++)
                                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                        table[i] = c;
                }
        for (size_t i = 0; i < n; i++)
                crc = table[(crc ^ b[i]) & 0xFF] ^ (crc >> 8);
        return crc ^ 0xFFFFFFFFu;
}

void journal_buffer_done(JournalBuffer *b) {
        b->data = mfree(b->data);
        b->size = b->allocated = 0;
}

static int buffer_reserve(JournalBuffer *b, size_t more) {
        size_t want = b->size + more;
        char *p;

        if (want <= b->allocated)
                return 0;
        want = MAX(want, MAX(b->allocated * 2, (size_t) 4096));
        p = realloc(b->data, want);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->allocated = want;
        return 0;
}

/* Consumes o. */
static int put_record(JournalBuffer *b, const char *op, json_object *o) {
        const char *text;
        size_t n;
        int r;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "op", json_object_new_string(op));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text) {
                json_object_put(o);
                return -ENOMEM;
        }
        n = strlen(text);
        r = buffer_reserve(b, n + 10);
        if (r >= 0) {
                (void) snprintf(b->data + b->size, 10, "%08" PRIx32 " ", journal_crc32(text, n));
                memcpy(b->data + b->size + 9, text, n);
                b->data[b->size + 9 + n] = '\n';
                b->size += n + 10;
        }
        json_object_put(o);
        return r;
}

static json_object *named(const char *name) {
        json_object *o = json_object_new_object();

        if (o)
                json_object_object_add(o, "name", json_object_new_string(name));
        return o;
}

int journal_record_client(JournalBuffer *b, const Client *c) {
        return put_record(b, "client", client_to_json(c));
}

/* The most frequent record (every checker's result), formatted without a
 * json-c tree: a tenth of the time. */
int journal_record_times(JournalBuffer *b, const Client *c) {
        size_t at, max = 6 * strlen(c->name) + 320;
        char *p;
        int k, r;

        r = buffer_reserve(b, max);
        if (r < 0)
                return r;
        at = b->size;
        p = b->data + at + 9;
        p += sprintf(p, "{\"name\":\"");
        for (const unsigned char *s = (const unsigned char *) c->name; *s; s++)
                if (*s == '"' || *s == '\\')
                        p += sprintf(p, "\\%c", *s);
                else if (*s < 0x20)
                        p += sprintf(p, "\\u%04x", *s);
                else
                        *p++ = (char) *s;
        k = sprintf(p, "\",\"created\":%" PRIu64 ",\"last_enabled\":%" PRIu64 ",\"expires\":%" PRIu64
                       ",\"last_checked_ok\":%" PRIu64 ",\"last_approval_request\":%" PRIu64
                       ",\"last_checker_status\":%d,\"op\":\"times\"}",
                    c->created, c->last_enabled, c->expires, c->last_checked_ok, c->last_approval_request,
                    c->last_checker_status);
        p += k;
        char head[10];
        (void) snprintf(head, sizeof(head), "%08" PRIx32 " ",
                        journal_crc32(b->data + at + 9, (size_t) (p - (b->data + at + 9))));
        memcpy(b->data + at, head, 9);
        *p++ = '\n';
        b->size = (size_t) (p - b->data);
        return 0;
}

int journal_record_forget(JournalBuffer *b, const char *name) {
        return put_record(b, "forget", named(name));
}

int journal_record_removed(JournalBuffer *b, const SavedClient *r) {
        return put_record(b, "removed", removed_to_json(r));
}

int journal_record_unremove(JournalBuffer *b, const char *name) {
        return put_record(b, "unremove", named(name));
}

/* ---------------------------------------------------------------- files */

static bool parse_gen(const char *name, uint64_t *ret) {
        const char *p = name + strlen(JOURNAL_PREFIX);
        char *end;

        if (!startswith(name, JOURNAL_PREFIX) || *p < '0' || *p > '9')
                return false;
        errno = 0;
        *ret = strtoull(p, &end, 10);
        return errno == 0 && *end == 0 && *ret > 0;
}

static int cmp_gen(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

int journal_list(const char *dir, uint64_t **ret, size_t *ret_n) {
        DIR *d = opendir(dir);
        uint64_t *v = NULL;
        size_t n = 0;
        struct dirent *de;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                uint64_t gen, *w;
                if (!parse_gen(de->d_name, &gen))
                        continue;
                w = reallocarray(v, n + 1, sizeof(uint64_t));
                if (!w) {
                        closedir(d);
                        free(v);
                        return -ENOMEM;
                }
                v = w;
                v[n++] = gen;
        }
        closedir(d);
        if (n)
                qsort(v, n, sizeof(uint64_t), cmp_gen);
        *ret = v;
        *ret_n = n;
        return 0;
}

int journal_path(const char *dir, uint64_t gen, char **ret) {
        return asprintf(ret, "%s/%s%" PRIu64, dir, JOURNAL_PREFIX, gen) < 0 ? -ENOMEM : 0;
}

/* ---------------------------------------------------------------- replay */

/* The State's lists, indexed by name while records are applied; a slot
 * emptied by "forget" or "unremove" is NULL until the end. */
typedef struct Index {
        SavedClient ***v;
        size_t *n;
        size_t allocated;
        Hashmap *by_name;    /* name → slot + 1 */
} Index;

static int index_init(Index *x, SavedClient ***v, size_t *n) {
        *x = (Index) { .v = v, .n = n, .allocated = *n, .by_name = hashmap_new() };
        if (!x->by_name)
                return -ENOMEM;
        for (size_t i = 0; i < *n; i++)
                (void) hashmap_put(x->by_name, (*v)[i]->config->name, (void *) (uintptr_t) (i + 1));
        return 0;
}

static SavedClient *index_get(Index *x, const char *name) {
        uintptr_t i = (uintptr_t) hashmap_get(x->by_name, name);
        return i ? (*x->v)[i - 1] : NULL;
}

static void index_drop(Index *x, const char *name) {
        uintptr_t i = (uintptr_t) hashmap_remove(x->by_name, name);

        if (i) {
                saved_client_free((*x->v)[i - 1]);
                (*x->v)[i - 1] = NULL;
        }
}

/* Replace the entry of the same name in place, or append. Takes sc. */
static int index_put(Index *x, SavedClient *sc) {
        uintptr_t i = (uintptr_t) hashmap_remove(x->by_name, sc->config->name);

        if (i) {
                saved_client_free((*x->v)[i - 1]);
                (*x->v)[i - 1] = sc;
        } else {
                if (GREEDY_REALLOC(*x->v, x->allocated, *x->n + 1) < 0) {
                        saved_client_free(sc);
                        return -ENOMEM;
                }
                (*x->v)[(*x->n)++] = sc;
                i = *x->n;
        }
        return hashmap_put(x->by_name, sc->config->name, (void *) i);
}

static void index_done(Index *x) {
        size_t k = 0;

        for (size_t i = 0; i < *x->n; i++)
                if ((*x->v)[i])
                        (*x->v)[k++] = (*x->v)[i];
        *x->n = k;
        x->by_name = hashmap_free(x->by_name);
}

static void apply_times(Reader *rd, SavedClient *sc, json_object *o) {
        json_object *st = member(rd, o, "last_checker_status", json_type_int);
        ClientTimes t = {
                .created = get_u64(rd, o, "created"),
                .last_enabled = get_u64(rd, o, "last_enabled"),
                .expires = get_u64(rd, o, "expires"),
                .last_checked_ok = get_u64(rd, o, "last_checked_ok"),
                .last_approval_request = get_u64(rd, o, "last_approval_request"),
                .last_checker_status = st ? json_object_get_int(st) : -2,
        };

        if (!rd->error)
                sc->times = t;
}

/* One record: 0 applied, -EINVAL (with rd->error) if it says nothing we
 * understand, -ENOMEM. */
static int apply_record(Index *live, Index *removed, json_object *o, Reader *rd) {
        json_object *op = member(rd, o, "op", json_type_string);
        json_object *name = member(rd, o, "name", json_type_string);
        const char *what, *n;
        SavedClient *sc;

        if (!op || !name)
                return -EINVAL;
        what = json_object_get_string(op);
        n = json_object_get_string(name);
        if (streq(what, "client") || streq(what, "removed")) {
                bool is_live = streq(what, "client");
                sc = saved_from_json(rd, o, STATE_VERSION, is_live);
                if (!sc || rd->error) {
                        saved_client_free(sc);
                        return -EINVAL;
                }
                return index_put(is_live ? live : removed, sc);
        }
        if (streq(what, "times")) {
                sc = index_get(live, n);
                if (sc)
                        apply_times(rd, sc, o);
                return rd->error ? -EINVAL : 0;
        }
        if (streq(what, "forget")) {
                index_drop(live, n);
                return 0;
        }
        if (streq(what, "unremove")) {
                index_drop(removed, n);
                return 0;
        }
        fail(rd, "unknown record '%s'", what);
        return -EINVAL;
}

/* Apply one journal file's records; stops at the first one torn or not
 * matching its CRC (reported). Returns the number applied or -errno. */
static int replay_file(const char *path, Index *live, Index *removed) {
        _cleanup_free_ char *line = NULL;
        size_t allocated = 0, offset = 0;
        FILE *f;
        ssize_t n;
        int applied = 0, r = 0;

        f = fopen(path, "re");
        if (!f)
                return -errno;
        while ((n = getline(&line, &allocated, f)) > 0) {
                size_t at = offset;
                uint32_t crc;
                char *end;
                json_object *o;
                Reader rd = {};

                offset += (size_t) n;
                if (line[n - 1] != '\n' || n < 11 || line[8] != ' ' || strlen(line) != (size_t) n) {
                        log_warning("Ignored a torn record at offset %zu of %s (%zd bytes, not a whole line): "
                                    "the write of it was cut short", at, path, n);
                        break;
                }
                line[--n] = 0;
                crc = (uint32_t) strtoul(line, &end, 16);
                if (end != line + 8 || crc != journal_crc32(line + 9, (size_t) n - 9)) {
                        log_warning("Ignored a torn record at offset %zu of %s (its CRC does not match), "
                                    "and what follows it in that file", at, path);
                        break;
                }
                o = json_tokener_parse(line + 9);
                if (!o || !json_object_is_type(o, json_type_object)) {
                        json_object_put(o);
                        log_warning("Ignored a record at offset %zu of %s: not a JSON object", at, path);
                        continue;
                }
                r = apply_record(live, removed, o, &rd);
                json_object_put(o);
                if (r == -ENOMEM)
                        break;
                if (r < 0)
                        log_warning("Ignored a record at offset %zu of %s: %s", at, path, strempty(rd.error));
                else
                        applied++;
                free(rd.error);
                r = 0;
        }
        fclose(f);
        return r < 0 ? r : applied;
}

int journal_replay(const char *dir, State *s, bool snapshot) {
        _cleanup_free_ uint64_t *gens = NULL;
        Index live, removed;
        size_t n = 0;
        int applied = 0, r;

        r = journal_list(dir, &gens, &n);
        if (r < 0)
                return r;
        /* Older generations (or all, if the snapshot follows none): done with. */
        for (size_t i = 0; snapshot && i < n; i++)
                if (s->journal == 0 || gens[i] < s->journal) {
                        _cleanup_free_ char *path = NULL;
                        if (journal_path(dir, gens[i], &path) >= 0 && unlink(path) >= 0)
                                log_debug("Deleted %s: the snapshot holds it", path);
                }
        if (snapshot && s->journal == 0)
                return 0;
        r = index_init(&live, &s->clients, &s->n_clients);
        if (r < 0)
                return r;
        r = index_init(&removed, &s->removed, &s->n_removed);
        if (r < 0) {
                hashmap_free(live.by_name);
                return r;
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ char *path = NULL;
                if (snapshot && gens[i] < s->journal)
                        continue;
                r = journal_path(dir, gens[i], &path);
                if (r >= 0)
                        r = replay_file(path, &live, &removed);
                if (r >= 0) {
                        log_debug("Replayed %d records of %s", r, path);
                        applied += r;
                }
        }
        index_done(&live);
        index_done(&removed);
        return r < 0 ? r : applied;
}

void journal_set_aside(const char *dir, const char *suffix) {
        _cleanup_free_ uint64_t *gens = NULL;
        size_t n = 0;

        if (journal_list(dir, &gens, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *aside = NULL;
                if (journal_path(dir, gens[i], &path) < 0)
                        continue;
                if (suffix && asprintf(&aside, "%s%s", path, suffix) >= 0 && rename(path, aside) >= 0)
                        continue;
                (void) unlink(path);
        }
}
