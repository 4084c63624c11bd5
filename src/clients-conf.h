/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* clients.conf → validated client settings (mandos-clients.conf(5)).
 *
 * Deliberate difference from the reference: a bad entry (bad duration,
 * boolean, base64, interpolation, unreadable secfile, no secret) does not
 * stop the server. It is reported as a problem naming the file, section
 * and key, and only that client is skipped. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client-settings.h"

/* A secfile larger than this is refused: an OpenPGP-encrypted password is
 * a few KiB at most. */
#define SECRET_SIZE_MAX 1048576 /* 1 MiB; a plain number, as messages show it */

/* The key ID that buggy 1.8.0 clients report (SHA-256 of nothing): never matches. */
#define KEY_ID_BLACKLISTED "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"

typedef struct Hashmap Hashmap;

typedef struct ClientsConf {
        ClientSettings **clients;    /* valid clients, in file order; NULL once taken */
        size_t n_clients, n_allocated;
        Hashmap *by_name, *by_key_id; /* name → index + 1 in clients[]; key ID → the first client with it */
        char **problems;           /* "FILE:LINE: [SECTION] KEY: why", one per problem */
        size_t n_problems;
        char **warnings;           /* same shape; the client is still used */
        size_t n_warnings;
        bool unreadable;           /* a file could not be read: the set of clients is incomplete */
        char *last[_CLIENT_SETTING_MAX]; /* each string setting's value in the last section read
                                          * (shared_str_read()) */
} ClientsConf;

/* The client named name, or NULL. */
const ClientSettings *clients_conf_find(const ClientsConf *conf, const char *name);
/* The client named name, now the caller's: conf no longer has it (nor
 * finds it). NULL if none. */
ClientSettings *clients_conf_take(ClientsConf *conf, const char *name);

/* Read path. A missing file gives no clients and no problem; an unreadable
 * one gives a problem. Returns 0 (problems, if any, inside) or -ENOMEM. */
int clients_conf_load(const char *path, ClientsConf **ret);

/* The same, from text (path only names the source in messages). */
int clients_conf_parse(const char *path, const char *text, size_t size, ClientsConf **ret);

ClientsConf *clients_conf_free(ClientsConf *c);
static inline void clients_conf_freep(ClientsConf **c) {
        if (*c)
                clients_conf_free(*c);
}

/* DIR/clients.conf, then the files DIR/clients.d/NAME.conf in name order; a drop-in
 * inherits clients.conf's [DEFAULT]. A client defined in two files is a
 * problem, and only the first is used. */
int clients_conf_load_all(const char *dir, ClientsConf **ret);

/* The files a load read, as bytes: what the root launcher hands the
 * unprivileged server (src/launcher.h), which parses them as if it had read
 * them itself. kind: 'c' clients.conf, 'd' a drop-in (in name order), 'l'
 * the drop-in directory could not be listed, 's' a secfile. error: 0 or the
 * errno of the failed read (why: its text, if not strerror's). */
typedef struct ConfFile {
        char kind;
        char *key;                 /* kind, then the path */
        const char *path;          /* key + 1 */
        int error;
        char *why;
        uint8_t *data;             /* may hold secrets: wiped when freed */
        size_t size;
} ConfFile;

typedef struct ConfFiles {
        ConfFile *files;
        size_t n, n_allocated;
        bool replay;               /* read from files[], not from the file system */
} ConfFiles;

int conf_files_add(ConfFiles *f, char kind, const char *path, int error, const char *why, const void *data,
                   size_t size);
void conf_files_done(ConfFiles *f);

/* clients_conf_load_all(), with files: NULL reads the file system; with
 * files->replay false, reads it and records every file read into files;
 * with files->replay true, reads only files (a file not there is missing). */
int clients_conf_load_all_files(const char *dir, ConfFiles *files, ClientsConf **ret);

/* Python binascii.a2b_base64 (non-strict): characters outside the
 * alphabet are skipped; a '=' pad sequence ends the data; a leftover
 * partial quantum is an error. Returns 0, -EINVAL (with *ret_error set to a
 * static message) or -ENOMEM. *ret must be wiped by the caller. */
int base64_decode_lenient(const char *s, uint8_t **ret, size_t *ret_size, const char **ret_error);

/* Upper-case and drop ASCII spaces, as the reference does for key_id and fingerprint. */
char *normalize_key_id(const char *s);
