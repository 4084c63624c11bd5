/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "secret-crypt.h"

#include <assert.h>
#include <gnutls/crypto.h>
#include <gpgme.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hex.h"
#include "list.h"
#include "thread-util.h"
#include "util.h"
#include "loop.h"

/* The passphrase for a client's run-time secret. The configured secret (a
 * few KiB of OpenPGP ciphertext) has far more than 256 bits of entropy;
 * what is derived from it is fixed-length, which avoids gpg's limits.
 *
 * Version 2: an HMAC-SHA256 keyed with the configured secret over a label
 * of its own, so it shares nothing with the change-detection digest that
 * the state file keeps (client-settings.c, secret_digest()): the state file alone
 * opens no secret. Version 1 (state files of version 1) used the plain
 * SHA-256 of the configured secret, which those files also stored; it is
 * only ever used to read such a file once. */
#define PASSPHRASE_LABEL "mandos state: run-time secret passphrase"
#define PASSPHRASE_MAX (16 + 64 + 1)
/* The reference's limit, above which it passes the secret itself. */
#define REFERENCE_HEX_MAX 2048

/* The reference server's passphrase for the encrypted_secret of its
 * clients.pickle: "mandos" and the configured secret in lower-case hex, or,
 * when that would be longer than 2048 bytes, "mandos" and the secret with
 * backslash, newline and NUL escaped as \\, \n and \x00. */
static char *reference_passphrase(const uint8_t *secret, size_t size) {
        char *buf, *p;

        if (6 + 2 * size <= REFERENCE_HEX_MAX) {
                buf = malloc(6 + 2 * size + 1);
                if (!buf)
                        return NULL;
                hex_encode(stpcpy(buf, "mandos"), secret, size, false);
                return buf;
        }
        buf = malloc(6 + 4 * size + 1);
        if (!buf)
                return NULL;
        p = buf + sprintf(buf, "mandos");
        for (size_t i = 0; i < size; i++) {
                if (secret[i] == '\\')
                        p = stpcpy(p, "\\\\");
                else if (secret[i] == '\n')
                        p = stpcpy(p, "\\n");
                else if (secret[i] == 0)
                        p = stpcpy(p, "\\x00");
                else
                        *p++ = (char) secret[i];
        }
        *p = 0;
        return buf;
}

/* A malloc'd passphrase (wiped and freed by the caller), or NULL. */
static char *derive_passphrase(SecretKdf kdf, const uint8_t *secret, size_t size) {
        uint8_t digest[32];
        char *buf;
        int n, r;

        if (kdf == SECRET_KDF_REFERENCE)
                return reference_passphrase(secret, size);
        if (kdf == SECRET_KDF_LEGACY_SHA256)
                r = gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, size, digest);
        else
                r = gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, size, PASSPHRASE_LABEL, strlen(PASSPHRASE_LABEL),
                                     digest);
        if (r < 0)
                return NULL;
        buf = malloc(PASSPHRASE_MAX);
        if (buf) {
                n = sprintf(buf, "mandos-state-%d:", kdf == SECRET_KDF_LEGACY_SHA256 ? 1 : 2);
                hex_encode(buf + n, digest, sizeof(digest), false);
        }
        explicit_bzero(digest, sizeof(digest));
        return buf;
}

static gpgme_error_t on_passphrase(void *hook, const char *uid_hint, const char *info, int prev_was_bad, int fd) {
        const char *p = hook;
        size_t n = strlen(p);

        if (prev_was_bad)
                return gpg_error(GPG_ERR_BAD_PASSPHRASE);
        if (gpgme_io_writen(fd, p, n) < 0 || gpgme_io_writen(fd, "\n", 1) < 0)
                return gpg_error_from_syserror();
        return 0;
}

typedef struct Gpg {
        gpgme_ctx_t ctx;
        char home[64];
} Gpg;

/* The agent gpg starts for this private home would linger: ask it to go. */
static void gpg_kill_agent(const char *home) {
        gpgme_ctx_t ctx;
        char socket[128];

        snprintf(socket, sizeof(socket), "%s/S.gpg-agent", home);
        if (access(socket, F_OK) < 0 || gpgme_new(&ctx) != 0)
                return;
        if (gpgme_set_protocol(ctx, GPGME_PROTOCOL_ASSUAN) == 0 &&
            gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_ASSUAN, socket, home) == 0)
                (void) gpgme_op_assuan_transact_ext(ctx, "KILLAGENT", NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        gpgme_release(ctx);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

/* Only our own mkdtemp() directory: depth first, never following a link. */
static void remove_tree(const char *dir) {
        (void) nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void gpg_done(Gpg *g) {
        if (g->ctx)
                gpgme_release(g->ctx);
        if (g->home[0]) {
                gpg_kill_agent(g->home);
                remove_tree(g->home);
        }
}

/* A private GnuPG home: in $TMPDIR, or /tmp when that is not ours to write. */
static int make_home(char home[static 64]) {
        const char *candidates[] = { getenv("TMPDIR"), "/tmp" };

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                if (isempty(candidates[i]) ||
                    snprintf(home, 64, "%s/mandos-gpg-XXXXXX", candidates[i]) >= 64)
                        continue;
                if (mkdtemp(home))
                        return 0;
        }
        home[0] = 0;
        return -errno ?: -EINVAL;
}

static int gpg_init(Gpg *g, char *passphrase, const char **ret_error) {
        gpgme_error_t e;
        int r;

        *g = (Gpg) {};
        gpgme_check_version(NULL);
        r = make_home(g->home);
        if (r < 0) {
                *ret_error = "cannot make a private GnuPG home";
                return r;
        }
        e = gpgme_new(&g->ctx);
        if (!e)
                e = gpgme_set_protocol(g->ctx, GPGME_PROTOCOL_OpenPGP);
        if (!e)
                e = gpgme_ctx_set_engine_info(g->ctx, GPGME_PROTOCOL_OpenPGP, NULL, g->home);
        if (!e)
                e = gpgme_set_pinentry_mode(g->ctx, GPGME_PINENTRY_MODE_LOOPBACK);
        if (!e)
                e = gpgme_set_ctx_flag(g->ctx, "no-symkey-cache", "1");
        if (e) {
                *ret_error = gpgme_strerror(e);
                gpg_done(g);
                return -EIO;
        }
        gpgme_set_armor(g->ctx, 0);
        gpgme_set_passphrase_cb(g->ctx, on_passphrase, passphrase);
        return 0;
}

/* The reference's encrypted_secret, opened as the reference does it: gpg
 * itself, the passphrase on a pipe (GnuPG's loopback pinentry, which GPGME
 * uses, takes no passphrase of the reference's length, up to 4 MiB), the
 * ciphertext from a file in the private home, the plaintext on a pipe. */
static int gpg_cli_decrypt(const char *passphrase, const uint8_t *cipher, size_t size, uint8_t **ret,
                           size_t *ret_size, const char **ret_error) {
        gpgme_engine_info_t engine = NULL;
        char home[64], in_path[80], fdarg[16];
        int pw[2] = { -1, -1 }, out[2] = { -1, -1 }, fd, status = 0, r = 0;
        uint8_t *buf = NULL;
        size_t n = 0, allocated = 0;
        pid_t pid;

        gpgme_check_version(NULL);
        if (gpgme_get_engine_info(&engine) != 0)
                engine = NULL;
        for (; engine && engine->protocol != GPGME_PROTOCOL_OpenPGP; engine = engine->next)
                ;
        if (!engine || !engine->file_name) {
                *ret_error = "no gpg program";
                return -ENOENT;
        }
        if (make_home(home) < 0) {
                *ret_error = "cannot make a private GnuPG home";
                return -EIO;
        }
        snprintf(in_path, sizeof(in_path), "%s/in", home);
        fd = open(in_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, cipher, size) != (ssize_t) size || close(fd) < 0) {
                *ret_error = "cannot write the ciphertext";
                r = -EIO;
                goto finish;
        }
        if (pipe2(pw, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
                r = -errno;
                *ret_error = "no pipe";
                goto finish;
        }
        snprintf(fdarg, sizeof(fdarg), "%d", 3);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                *ret_error = "cannot fork";
                goto finish;
        }
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDWR);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(devnull, 2) < 0 ||
                    dup2(pw[0], 3) < 0)
                        _exit(127);
                execl(engine->file_name, engine->file_name, "--batch", "--quiet", "--no-tty", "--homedir", home,
                      "--pinentry-mode", "loopback", "--passphrase-fd", fdarg, "--decrypt", "--output", "-",
                      in_path, (char *) NULL);
                _exit(127);
        }
        close(pw[0]);
        close(out[1]);
        pw[0] = out[1] = -1;
        /* gpg reads the passphrase before anything else. */
        if (write(pw[1], passphrase, strlen(passphrase)) < 0 || write(pw[1], "\n", 1) < 0)
                r = -EIO;
        close(pw[1]);
        pw[1] = -1;
        for (;;) {
                ssize_t k;
                if (n == allocated) {
                        uint8_t *b = malloc(allocated ? allocated * 2 : 4096);
                        if (!b || allocated > 8 * 1024 * 1024) {
                                free(b);
                                r = -ENOMEM;
                                break;
                        }
                        if (n)
                                memcpy(b, buf, n);
                        erase_and_free(buf, allocated);
                        buf = b;
                        allocated = allocated ? allocated * 2 : 4096;
                }
                k = read(out[0], buf + n, allocated - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        close(out[0]);
        out[0] = -1;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
                *ret_error = "gpg could not decrypt it";
                r = -EIO;
        }
        if (r >= 0) {
                *ret = TAKE_PTR(buf);
                *ret_size = n;
        }
finish:
        erase_and_free(buf, allocated);
        for (int i = 0; i < 2; i++) {
                if (pw[i] >= 0)
                        close(pw[i]);
                if (out[i] >= 0)
                        close(out[i]);
        }
        gpg_kill_agent(home);
        remove_tree(home);
        return r;
}

typedef enum { ENCRYPT, DECRYPT } Direction;

static int secret_crypt(Direction d, SecretKdf kdf, const uint8_t *config_secret, size_t config_size,
                        const uint8_t *in_buf, size_t size, uint8_t **ret, size_t *ret_size, const char **ret_error) {
        char *passphrase;
        gpgme_data_t in = NULL, out = NULL;
        gpgme_error_t e;
        Gpg g;
        int r;

        passphrase = derive_passphrase(kdf, config_secret, config_size);
        if (!passphrase)
                return -ENOMEM;
        if (kdf == SECRET_KDF_REFERENCE) {
                r = d == DECRYPT ? gpg_cli_decrypt(passphrase, in_buf, size, ret, ret_size, ret_error) : -EINVAL;
                erase_and_free(passphrase, strlen(passphrase));
                return r;
        }
        r = gpg_init(&g, passphrase, ret_error);
        if (r < 0)
                goto finish;
        e = gpgme_data_new_from_mem(&in, (const char *) in_buf, size, 0);
        if (!e)
                e = gpgme_data_new(&out);
        if (!e)
                e = d == ENCRYPT ? gpgme_op_encrypt(g.ctx, NULL, GPGME_ENCRYPT_SYMMETRIC, in, out)
                                 : gpgme_op_decrypt(g.ctx, in, out);
        if (e) {
                *ret_error = gpgme_strerror(e);
                r = -EIO;
        } else {
                size_t n = 0;
                char *data = gpgme_data_release_and_get_mem(out, &n);
                out = NULL;
                *ret = malloc(n ?: 1);
                if (*ret) {
                        memcpy(*ret, data, n);
                        *ret_size = n;
                } else
                        r = -ENOMEM;
                if (data) {
                        explicit_bzero(data, n);
                        gpgme_free(data);
                }
        }
finish:
        if (in)
                gpgme_data_release(in);
        if (out)
                gpgme_data_release(out);
        gpg_done(&g);
        erase_and_free(passphrase, strlen(passphrase));
        return r;
}

int secret_encrypt(const uint8_t *config_secret, size_t config_size, const uint8_t *plain, size_t size,
                   uint8_t **ret, size_t *ret_size, const char **ret_error) {
        return secret_crypt(ENCRYPT, SECRET_KDF_HMAC, config_secret, config_size, plain, size, ret, ret_size,
                            ret_error);
}

int secret_decrypt(SecretKdf kdf, const uint8_t *config_secret, size_t config_size, const uint8_t *cipher,
                   size_t size, uint8_t **ret, size_t *ret_size, const char **ret_error) {
        return secret_crypt(DECRYPT, kdf, config_secret, config_size, cipher, size, ret, ret_size, ret_error);
}

/* ---------------------------------------------------------- off the loop */

typedef struct EncryptJob EncryptJob;
struct EncryptJob {
        pthread_t thread;
        int done_fd;                /* an eventfd the thread signals when it is done */
        sd_event_source *source;

        uint8_t *config_secret, *plain;
        size_t config_size, size;

        int r;                      /* what the thread found */
        uint8_t *cipher;
        size_t cipher_size;
        const char *error;

        secret_encrypt_handler_t handler;
        void *userdata;
        LIST_FIELDS(EncryptJob, jobs);
};

/* Only the loop's thread touches this list. */
static LIST_HEAD(EncryptJob, jobs);

static void *encrypt_thread(void *userdata) {
        EncryptJob *j = userdata;

        j->r = secret_encrypt(j->config_secret, j->config_size, j->plain, j->size, &j->cipher, &j->cipher_size,
                              &j->error);
        (void) eventfd_write(j->done_fd, 1);
        return NULL;
}

static void job_free(EncryptJob *j) {
        erase_and_free(j->config_secret, j->config_size);
        erase_and_free(j->plain, j->size);
        free(j->cipher);
        j->source = sd_event_source_disable_unref(j->source);
        if (j->done_fd >= 0)
                (void) close(j->done_fd);
        free(j);
}

/* The thread is done (or about to be): collect it and hand its result on. */
static void job_finish(EncryptJob *j) {
        uint8_t *cipher;

        (void) pthread_join(j->thread, NULL);
        LIST_REMOVE(jobs, jobs, j);
        cipher = TAKE_PTR(j->cipher);
        j->handler(j->r, cipher, j->r < 0 ? 0 : j->cipher_size, j->error, j->userdata);
        job_free(j);
}

static int on_job_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        EncryptJob *j = userdata;
        eventfd_t v;

        assert(j);

        (void) eventfd_read(fd, &v);
        loop_note_source(s);
        job_finish(j);
        return 0;
}

static int job_start(EncryptJob *j) {
        /* Only ever called from the loop's thread: the first call sets GPGME up. */
        gpgme_check_version(NULL);
        return thread_start(&j->thread, encrypt_thread, j);
}

int secret_encrypt_async(sd_event *event, const uint8_t *config_secret, size_t config_size, const uint8_t *plain,
                         size_t size, secret_encrypt_handler_t handler, void *userdata) {
        EncryptJob *j;
        int r;

        j = calloc(1, sizeof(EncryptJob));
        if (!j)
                return -ENOMEM;
        j->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        j->config_secret = malloc(config_size ?: 1);
        j->plain = malloc(size ?: 1);
        j->config_size = config_size;
        j->size = size;
        j->handler = handler;
        j->userdata = userdata;
        if (j->done_fd < 0 || !j->config_secret || !j->plain) {
                r = j->done_fd < 0 ? -errno : -ENOMEM;
                job_free(j);
                return r;
        }
        memcpy(j->config_secret, config_secret, config_size);
        memcpy(j->plain, plain, size);
        r = sd_event_add_io(event, &j->source, j->done_fd, EPOLLIN, on_job_done, j);
        if (r >= 0)
                (void) sd_event_source_set_description(j->source, "secret-encrypt");
        if (r >= 0)
                r = job_start(j);
        if (r < 0) {
                job_free(j);
                return r;
        }
        LIST_PREPEND(jobs, jobs, j);
        return 0;
}

unsigned secret_encrypt_wait_all(void) {
        unsigned n = 0;

        /* A handler may start another job: until none is left. */
        for (; jobs; n++)
                job_finish(jobs);
        return n;
}
