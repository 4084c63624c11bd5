/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* A Client: one host's settings and run-time state, and its life cycle
 * (mandos(8), CLIENTS, EXPIRY AND CHECKERS; docs/REFERENCE-BEHAVIOUR.md). Only
 * the functions here change a Client; each change, and everything else that
 * happens to it, is reported as a ClientEvent to the one handler of its
 * ClientOwner, which the server fans out to the bus, the state writer and
 * systemd's STATUS=. A Client knows nothing of the server beyond its
 * ClientOwner: a unit test can be its owner. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "checker.h"
#include "client-settings.h"
#include "timer-heap.h"

/* What changed: the D-Bus property of the same name (mandos-dbus-api(7)):
 * a setting (its ClientSettingId, see CLIENT_PROPERTY_SETTING()), or one
 * of the run-time values below. */
typedef enum ClientProperty {
        CLIENT_APPROVAL_PENDING = _CLIENT_SETTING_MAX,
        CLIENT_CHECKER_RUNNING,
        CLIENT_EXPIRES,
        CLIENT_LAST_APPROVAL_REQUEST,
        CLIENT_LAST_CHECKED_OK,
        CLIENT_LAST_CHECKER_STATUS,
        CLIENT_LAST_ENABLED,
        _CLIENT_PROPERTY_MAX,
} ClientProperty;
#define CLIENT_PROPERTY_SETTING(id) ((ClientProperty) (id))

/* The D-Bus property p names. */
const char *client_property_name(ClientProperty p);

typedef struct Client Client;

/* What happened to a client. */
typedef enum ClientEventType {
        CLIENT_EVENT_CHANGED,           /* .property changed */
        CLIENT_EVENT_CHECKER_STARTED,   /* a checker process runs checker_command_expanded */
        CLIENT_EVENT_CHECKER_FINISHED,  /* .exit_code and .wait_status, as CheckerCompleted has them */
        CLIENT_EVENT_SECRET_SENT,
        CLIENT_EVENT_REJECTED,          /* a connection was refused, for .reason */
        CLIENT_EVENT_NEED_APPROVAL,     /* a connection waits for an approval */
        CLIENT_EVENT_APPROVAL_DECIDED,  /* approved, denied, enabled or disabled: waiting connections look again */
        _CLIENT_EVENT_MAX,
} ClientEventType;

typedef struct ClientEvent {
        ClientEventType type;
        ClientProperty property;
        int16_t exit_code;
        int64_t wait_status;
        const char *reason;
} ClientEvent;

typedef void (*client_event_handler_t)(Client *c, const ClientEvent *event, void *userdata);

/* What a Client needs from whoever holds it (the server, or a test): the
 * loop, the heap its timers go on, the checker processes, and where its
 * events go. Borrowed: it must outlive its clients. */
typedef struct ClientOwner {
        sd_event *event;
        TimerHeap *timers;
        CheckerManager *checkers;
        client_event_handler_t on_event;
        void *userdata;
} ClientOwner;

/* What only a client whose secret was set at run time needs (D-Bus
 * Set(Secret), or the state file's encrypted_secret): most have none. */
typedef struct ClientSecretSets {
        uint64_t calls;             /* D-Bus Set(Secret) calls so far; the newest one applied wins */
        uint64_t applied;
        uint8_t *encrypted;         /* the run-time secret, encrypted for the state file; NULL if none */
        size_t encrypted_size;
} ClientSecretSets;

typedef struct Client {
        unsigned n_ref;
        bool removed : 1;           /* no longer in the server's table */
        bool bus_pending : 1;       /* exported, not yet announced (bus_announce_later) */
        bool checker_randomized : 1; /* the first, randomly delayed, run is still ahead */
        bool bus_exported : 1;      /* a D-Bus object (client_object_path()), set by the bus */
        uint8_t state_dirty;        /* owned by src/state-writer.c */
        int8_t approved;            /* -1 none, 0 denied, 1 approved: the approval window */
        const ClientOwner *owner;   /* NULL: not live (nothing armed, nothing reported) */

        ClientSettings *config;     /* clients.conf's settings for it, as last read; NULL: the
                                     * settings in force (client_config()) */
        ClientSecretSets *secret_sets; /* NULL until a secret is set at run time */

        /* The settings in force (clients.conf's, changeable at run time):
         * c->settings.host and c->host are one field. The secret is
         * config->secret, or a run-time one of its own (wiped when
         * replaced or freed). */
        union {
                ClientSettings settings;
                struct {
                        CLIENT_SETTINGS_FIELDS
                };
        };

        /* Run-time state; times are CLOCK_REALTIME µs, 0 = none, for D-Bus,
         * the state file and checkers to show; timers use expires_deadline. */
        uint64_t created;
        uint64_t last_enabled;
        uint64_t expires;           /* the wall time at arming + what remained */
        uint64_t expires_deadline;  /* CLOCK_BOOTTIME µs, 0 = none (src/deadline.h) */
        uint64_t last_checked_ok;
        uint64_t last_approval_request;
        int16_t last_checker_status; /* exit code, -1 killed by a signal, -2 never ran */
        int16_t last_checker_signal; /* when last_checker_status is -1 */
        unsigned approvals_pending; /* connections waiting for approval */
        char *checker_command_expanded; /* checker_command expanded, of the running or last checker
                                         * process; shared with it when the same (src/shared-str.h) */

        CheckerRequest checker_job; /* its checker process (.process, or NULL) or its wait for a slot
                                     * (checker_request_queued()) */
        HeapTimer expiry_timer;           /* on the server's timer heap (src/timer-heap.h) */
        HeapTimer checker_timer;          /* next checker run */
        HeapTimer approval_timer;         /* end of the approval window */
} Client;

/* A client from clients.conf's config, with the settings in force
 * (NULL: the same). */
int client_new(const ClientOwner *owner, const ClientSettings *config, const ClientSettings *settings, Client **ret);
/* The same, taking config (freed on failure): a start with 100,000 clients
 * holds no second copy of their settings (clients_conf_take()). */
int client_new_take(const ClientOwner *owner, ClientSettings *config, const ClientSettings *settings, Client **ret);
/* Restored run-time values (docs/STATE.md, Merging at start, rule 2,
 * applied by the caller). */
void client_restore(Client *c, uint64_t created, uint64_t last_enabled, uint64_t expires, uint64_t last_checked_ok,
                    uint64_t last_approval_request, int last_checker_status);
/* A run-time secret from the state file, already decrypted, with its ciphertext. */
int client_restore_secret(Client *c, const uint8_t *secret, size_t size, const uint8_t *encrypted, size_t encrypted_size);
/* Once in the server's table: an enabled client gets its first checker at a
 * random moment within one interval, and expires one interval after that
 * unless a checker succeeds (docs/REFERENCE-BEHAVIOUR.md, Checker scheduling). */
void client_start(Client *c);
Client *client_ref(Client *c);
Client *client_unref(Client *c);
static inline void client_unrefp(Client **c) {
        if (*c)
                client_unref(*c);
}

void client_enable(Client *c);
/* Disabled clients get nothing until enabled again; connections waiting
 * for approval are woken (and refused). */
void client_disable(Client *c);
/* The same, without the log line (the client is being removed). */
void client_disable_quietly(Client *c);
/* Move expiry to now + usec (only while enabled). */
void client_bump_timeout(Client *c, uint64_t usec);
void client_checked_ok(Client *c);
/* After the secret was sent: bump by extended_timeout, then GotSecret. */
void client_secret_sent(Client *c);
/* Stop every timer and checker; the server is letting go of the client. */
void client_detach(Client *c);

/* Checkers (mandos(8), CHECKERS). Starting is a no-op while one runs. */
void client_start_checker(Client *c);
void client_stop_checker(Client *c);
static inline bool client_checker_running(const Client *c) {
        return c->checker_job.process != NULL;
}
/* The D-Bus object path of a client name (mandos-dbus-api(7), VALUES):
 * "/clients/foo_bar" for "foo.bar"; bytes outside [A-Za-z0-9_.-] become
 * "_xx". Not stored: 100,000 clients would hold 100,000 copies. In a
 * buffer that the next call reuses (copy it before calling again); NULL
 * for "" or on ENOMEM. */
const char *client_object_path(const char *name);
/* The same in *buf, of *size bytes, grown as needed (another buffer: a
 * table that computes its keys must not share client_object_path()'s). */
const char *client_object_path_in(const char *name, char **buf, size_t *size);

/* The checker command template expanded for c: its settings and run-time
 * values (mandos-clients.conf(5), EXPANSION). */
int checker_expand(const Client *c, const char *template, char **ret);

/* Approval (mandos(8), APPROVAL): open an approval (true) or denial (false)
 * window of approval_duration, and wake every waiting connection of c. */
void client_approve(Client *c, bool approve);
/* Connections waiting for approval; each wait ends in session.c. */
void client_approval_wait_begin(Client *c);
void client_approval_wait_end(Client *c);
/* A waiting connection found no decision: log, LastApprovalRequest, NeedApproval. */
void client_need_approval(Client *c);
/* The rejection of a connection, with the reference's reason strings:
 * "Disabled", "Denied", "Approval timed out". */
void client_rejected(Client *c, const char *reason);

/* Run-time changes (D-Bus Set, or clients.conf on reload): row's value
 * from value (only that field of it is read), with what the setting does
 * beyond being stored and announced (mandos-dbus-api(7)). Returns 0,
 * -EINVAL (with *ret_error, static, saying why) or -ENOMEM. Not for the
 * secret (below) nor the key ID (server_set_client_key_id()). */
int client_set_setting(Client *c, const ClientSettingInfo *row, const ClientSettings *value, const char **ret_error);
/* Secret: the ciphertext for the state file is made off the loop, and
 * the new secret is served, announced and saved once it is there (all at
 * once, as any other setting is). Returns 0 when that happened at once (the
 * configured secret needs no ciphertext), 1 when done(r, userdata) will say
 * later (if not NULL), exactly once and from the loop (-ESRCH: the client was removed
 * meanwhile), or a negative errno (done is not called). Of two Sets in
 * flight, the later one's value stays. */
typedef void (*client_secret_done_t)(int r, void *userdata);
int client_set_secret_async(Client *c, const uint8_t *secret, size_t size, client_secret_done_t done,
                            void *userdata);
/* The same, when nobody waits (done may be NULL above too). */
int client_set_secret(Client *c, const uint8_t *secret, size_t size);
/* From clients.conf on reload (the server rehashes the table). */
int client_set_key_id(Client *c, const char *key_id);
/* clients.conf's settings for c, as last read: its own copy only once
 * something in force differs (most clients share one). Valid until c
 * changes. */
const ClientSettings *client_config(const Client *c);
/* Replace the snapshot of clients.conf's settings for c. */
int client_set_config(Client *c, const ClientSettings *config);
/* secret_digest() of clients.conf's secret for c, made when asked: 32
 * bytes a client less, for a hash now and then (reload, state records). */
void client_config_secret_digest(const Client *c, uint8_t ret[static 32]);

uint64_t now_realtime(void);
