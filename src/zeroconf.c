/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "zeroconf.h"

#include <assert.h>
#include <avahi-client/client.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>

#include "avahi-sd-event.h"
#include "log.h"
#include "socket-util.h"
#include "thread-util.h"
#include "util.h"

/* The reference gives up after this many renames (mandos(8), ZEROCONF). */
#define MAX_RENAMES 32768
/* How often to try again when the system bus cannot be reached, or after
 * avahi-daemon refused our service. A missing avahi-daemon needs no
 * polling: avahi-client watches the bus for it (AVAHI_CLIENT_NO_FAIL). */
#define RETRY_USEC (5 * USEC_PER_SEC)

/* Each libavahi-client call is a D-Bus round trip that waits for
 * avahi-daemon, up to libdbus's default of 25 s, and a stopped or hung
 * daemon makes it wait that long: longer than the watchdog allows
 * (WatchdogSec=30s in mandos.service), and a long stall of every fetch.
 * So avahi-client runs on a thread with a loop of its own (an sd_event,
 * with avahi-sd-event.h), and the server's loop never calls it. The two
 * threads share only the read-only settings and listening socket, the log,
 * and two eventfds: "stop" (server to Zeroconf) and "give up" (Zeroconf to
 * server, after MAX_RENAMES). */
struct Zeroconf {
        sd_event *main_event;     /* the server's loop */
        sd_event_source *give_up; /* on main_event */
        int give_up_fd;
        int stop_fd;
        pthread_t thread;
        bool started;

        /* The rest belongs to the thread. */
        sd_event *event;
        const Settings *settings;
        int listen_fd;
        char *name;

        AvahiSdEventPoll *poll;
        AvahiClient *client;
        AvahiEntryGroup *group;
        sd_event_source *retry;   /* reconnect, or publish again */
        sd_event_source *stop;

        unsigned renames;
        bool waiting;             /* we said avahi-daemon is not there */
        bool warned_interface;
};

static void zeroconf_publish(Zeroconf *z);

static void zeroconf_schedule_retry(Zeroconf *z, uint64_t delay) {
        uint64_t now = 0;

        (void) sd_event_now(z->event, CLOCK_MONOTONIC, &now);
        (void) sd_event_source_set_time(z->retry, now + delay);
        (void) sd_event_source_set_enabled(z->retry, SD_EVENT_ONESHOT);
}

/* avahi-daemon (re)starting: our records go until it runs again. */
static void zeroconf_withdraw(Zeroconf *z) {
        if (z->group)
                (void) avahi_entry_group_reset(z->group);
}

static int zeroconf_rename(Zeroconf *z) {
        char *alternative;

        if (z->renames >= MAX_RENAMES) {
                log_crit("No suitable Zeroconf service name found after %u retries, exiting.", z->renames);
                (void) eventfd_write(z->give_up_fd, 1);
                (void) sd_event_exit(z->event, -EADDRINUSE);
                return -EADDRINUSE;
        }
        alternative = avahi_alternative_service_name(z->name);
        if (!alternative)
                return log_oom();
        free(z->name);
        z->name = strdup(alternative);
        avahi_free(alternative);
        if (!z->name)
                return log_oom();
        z->renames++;
        log_info("Changing Zeroconf service name to '%s' ...", z->name);
        log_set_service_name(z->name);
        return 0;
}

/* The port and family of the socket we really listen on. */
static int zeroconf_listening_port(Zeroconf *z, int *ret_family) {
        SocketAddress a;
        int r;

        r = socket_bound_address(z->listen_fd, &a);
        if (r == -EAFNOSUPPORT)
                return log_error_errno(r, "Zeroconf: the listening socket is not an IP socket");
        if (r < 0)
                return log_error_errno(r, "Zeroconf: cannot read the listening socket's port: %m");
        *ret_family = a.sockaddr.sa.sa_family;
        return a.port;
}

static AvahiIfIndex zeroconf_interface(Zeroconf *z) {
        unsigned index;

        if (!z->settings->interface)
                return AVAHI_IF_UNSPEC;
        index = if_nametoindex(z->settings->interface);
        if (index > 0)
                return (AvahiIfIndex) index;
        /* Like the listener, which then listens on every interface. */
        if (!z->warned_interface)
                log_error("Interface %s does not exist; announcing the Zeroconf service on all interfaces",
                          z->settings->interface);
        z->warned_interface = true;
        return AVAHI_IF_UNSPEC;
}

/* Announce only AAAA records by default, as the reference does; an IPv4
 * socket (possible when one is handed to us) can only be reached over IPv4. */
static AvahiProtocol zeroconf_protocol(Zeroconf *z, int family) {
        if (family == AF_INET || !z->settings->use_ipv6)
                return AVAHI_PROTO_INET;
        return AVAHI_PROTO_INET6;
}

static void on_group_state(AvahiEntryGroup *g, AvahiEntryGroupState state, void *userdata) {
        Zeroconf *z = userdata;
        int family;

        assert(z);

        z->group = g;
        log_debug("Avahi entry group state change: %i", (int) state);
        switch (state) {
        case AVAHI_ENTRY_GROUP_ESTABLISHED:
                log_debug("Zeroconf service established.");
                log_info("Zeroconf service '%s' of type '%s' announced on port %d", z->name,
                         ZEROCONF_SERVICE_TYPE, zeroconf_listening_port(z, &family));
                break;
        case AVAHI_ENTRY_GROUP_COLLISION:
                /* Another host on the link has this name. */
                log_info("Zeroconf service name collision.");
                if (zeroconf_rename(z) < 0)
                        return;
                (void) avahi_entry_group_reset(g);
                zeroconf_publish(z);
                break;
        case AVAHI_ENTRY_GROUP_FAILURE:
                log_crit("Avahi: Error in group state changed %s",
                         avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
                (void) avahi_entry_group_reset(g);
                zeroconf_schedule_retry(z, RETRY_USEC);
                break;
        default:
                break;
        }
}

/* Add the service to our (empty) entry group and commit it. */
static void zeroconf_publish(Zeroconf *z) {
        int port, family, r;

        if (!z->group) {
                z->group = avahi_entry_group_new(z->client, on_group_state, z);
                if (!z->group) {
                        log_error("Zeroconf: cannot create an Avahi entry group: %s",
                                  avahi_strerror(avahi_client_errno(z->client)));
                        zeroconf_schedule_retry(z, RETRY_USEC);
                        return;
                }
        }
        if (avahi_entry_group_is_empty(z->group) == 0)
                return;   /* already added */

        port = zeroconf_listening_port(z, &family);
        if (port < 0)
                return;
        for (;;) {
                log_debug("Adding Zeroconf service '%s' of type '%s' ...", z->name, ZEROCONF_SERVICE_TYPE);
                r = avahi_entry_group_add_service_strlst(z->group, zeroconf_interface(z),
                                                         zeroconf_protocol(z, family), 0, z->name,
                                                         ZEROCONF_SERVICE_TYPE, NULL, NULL,
                                                         (uint16_t) port, NULL /* empty TXT */);
                if (r != AVAHI_ERR_COLLISION)
                        break;
                /* Another service on this host (another server, or one we
                 * announced before avahi-daemon noticed) has this name. */
                log_info("Local Zeroconf service name collision.");
                if (zeroconf_rename(z) < 0)
                        return;
        }
        if (r >= 0)
                r = avahi_entry_group_commit(z->group);
        if (r < 0) {
                /* The reference exits here; we keep serving and try again. */
                log_error("Zeroconf: cannot announce service '%s': %s", z->name, avahi_strerror(r));
                (void) avahi_entry_group_reset(z->group);
                zeroconf_schedule_retry(z, RETRY_USEC);
        }
}

static void on_client_state(AvahiClient *c, AvahiClientState state, void *userdata) {
        Zeroconf *z = userdata;
        int error;

        assert(z);

        /* Called from inside avahi_client_new() too, before it returns c. */
        z->client = c;
        log_debug("Avahi server state change: %i", (int) state);
        switch (state) {
        case AVAHI_CLIENT_S_RUNNING:
                if (z->waiting)
                        log_info("Zeroconf: avahi-daemon is available");
                z->waiting = false;
                zeroconf_publish(z);
                break;
        case AVAHI_CLIENT_S_REGISTERING:
                zeroconf_withdraw(z);
                break;
        case AVAHI_CLIENT_S_COLLISION:
                /* The daemon's host name collides; it renames itself and
                 * comes back through REGISTERING and RUNNING. */
                log_error("Zeroconf server name collision");
                zeroconf_withdraw(z);
                break;
        case AVAHI_CLIENT_CONNECTING:
                if (!z->waiting)
                        log_warning("Zeroconf: avahi-daemon is not running; service '%s' will be announced "
                                    "when it starts", z->name);
                z->waiting = true;
                break;
        case AVAHI_CLIENT_FAILURE:
                /* The client is dead, and may not be freed from its own
                 * callback: make a new one from the loop. */
                error = avahi_client_errno(c);
                if (error == AVAHI_ERR_DISCONNECTED) {
                        if (!z->waiting)
                                log_warning("Zeroconf: lost avahi-daemon; service '%s' will be announced "
                                            "again when it is back", z->name);
                        z->waiting = true;
                        zeroconf_schedule_retry(z, 0);
                } else {
                        log_error("Zeroconf server failure: %s", avahi_strerror(error));
                        zeroconf_schedule_retry(z, RETRY_USEC);
                }
                break;
        default:
                log_debug("Unknown state: %i", (int) state);
                break;
        }
}

static void zeroconf_disconnect(Zeroconf *z) {
        if (z->group)
                (void) avahi_entry_group_free(z->group);   /* withdraws it, if still connected */
        z->group = NULL;
        if (z->client)
                avahi_client_free(z->client);
        z->client = NULL;
}

static void zeroconf_connect(Zeroconf *z) {
        AvahiClient *c;
        int error = 0;

        /* NO_FAIL: without avahi-daemon the client waits for it on the bus;
         * it fails only when the bus itself is unreachable. */
        c = avahi_client_new(avahi_sd_event_poll_get(z->poll), AVAHI_CLIENT_NO_FAIL, on_client_state, z, &error);
        if (c) {
                z->client = c;
                return;
        }
        z->client = NULL;
        z->group = NULL;
        if (!z->waiting)
                log_warning("Zeroconf: cannot reach avahi-daemon on the D-Bus system bus (%s); trying again every %u s",
                            avahi_strerror(error), (unsigned) (RETRY_USEC / USEC_PER_SEC));
        z->waiting = true;
        zeroconf_schedule_retry(z, RETRY_USEC);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Zeroconf *z = userdata;

        assert(z);

        if (z->client && avahi_client_get_state(z->client) == AVAHI_CLIENT_S_RUNNING) {
                /* After a failure of the entry group: start over with a new one. */
                if (z->group)
                        (void) avahi_entry_group_free(z->group);
                z->group = NULL;
                zeroconf_publish(z);
        } else if (!z->client || avahi_client_get_state(z->client) == AVAHI_CLIENT_FAILURE) {
                zeroconf_disconnect(z);
                zeroconf_connect(z);
        }
        return 0;
}

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Zeroconf *z = userdata;

        assert(z);

        return sd_event_exit(z->event, 0);
}

static int on_give_up(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Zeroconf *z = userdata;

        assert(z);

        return sd_event_exit(z->main_event, -EADDRINUSE);
}

static void *zeroconf_thread(void *userdata) {
        Zeroconf *z = userdata;
        int r;

        zeroconf_connect(z);
        r = sd_event_loop(z->event);
        if (r < 0 && r != -EADDRINUSE)
                log_error_errno(r, "Zeroconf: its event loop failed: %m");
        zeroconf_disconnect(z);   /* withdraws the service: may wait for avahi-daemon */
        return NULL;
}

/* The thread's loop, made here so that any failure is the caller's. */
static int zeroconf_setup(Zeroconf *z) {
        int r;

        r = sd_event_new(&z->event);
        if (r < 0)
                return r;
        r = avahi_sd_event_poll_new(z->event, &z->poll);
        if (r < 0)
                return r;
        r = sd_event_add_time(z->event, &z->retry, CLOCK_MONOTONIC, 0, 0, on_retry, z);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(z->retry, SD_EVENT_OFF);
        (void) sd_event_source_set_description(z->retry, "zeroconf-retry");
        r = sd_event_add_io(z->event, &z->stop, z->stop_fd, EPOLLIN, on_stop, z);
        if (r < 0)
                return r;
        r = sd_event_add_io(z->main_event, &z->give_up, z->give_up_fd, EPOLLIN, on_give_up, z);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(z->give_up, "zeroconf-give-up");
        return 0;
}

static int zeroconf_start(Zeroconf *z) {
        int r;

        r = thread_start(&z->thread, zeroconf_thread, z);
        if (r < 0)
                return r;
        (void) pthread_setname_np(z->thread, "zeroconf");
        z->started = true;
        return 0;
}

int zeroconf_new(sd_event *event, const Settings *settings, int listen_fd, Zeroconf **ret) {
        _cleanup_(zeroconf_freep) Zeroconf *z = NULL;
        int r;

        /* Checked now: avahi-daemon would refuse it at every attempt. */
        if (!avahi_is_valid_service_name(settings->servicename))
                return log_error_errno(EINVAL, "Invalid Zeroconf service name '%s' (at most 63 bytes of UTF-8)",
                                       settings->servicename);
        z = calloc(1, sizeof(*z));
        if (!z)
                return log_oom();
        z->stop_fd = z->give_up_fd = -1;
        z->main_event = sd_event_ref(event);
        z->settings = settings;
        z->listen_fd = listen_fd;
        z->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        z->give_up_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (z->stop_fd < 0 || z->give_up_fd < 0)
                return log_error_errno(errno, "Zeroconf: cannot make an eventfd: %m");
        z->name = strdup(settings->servicename);
        if (!z->name)
                return log_oom();
        r = zeroconf_setup(z);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Zeroconf loop: %m");
        r = zeroconf_start(z);
        if (r < 0)
                return log_error_errno(r, "Failed to start the Zeroconf thread: %m");
        *ret = TAKE_PTR(z);
        return 0;
}

/* How long the server waits at exit for the withdrawal of its service. */
#define STOP_WAIT_SEC 5

Zeroconf *zeroconf_free(Zeroconf *z) {
        if (!z)
                return NULL;
        if (z->started) {
                struct timespec until;

                (void) eventfd_write(z->stop_fd, 1);
                (void) clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += STOP_WAIT_SEC;
                if (pthread_timedjoin_np(z->thread, NULL, &until) != 0) {
                        /* avahi-daemon hangs: exit without it; the thread
                         * and what it holds go with the process. */
                        log_warning("Zeroconf: avahi-daemon did not answer within %d s; not withdrawing the service",
                                    STOP_WAIT_SEC);
                        return NULL;
                }
        }
        z->poll = avahi_sd_event_poll_free(z->poll);
        z->retry = sd_event_source_disable_unref(z->retry);
        z->stop = sd_event_source_disable_unref(z->stop);
        z->give_up = sd_event_source_disable_unref(z->give_up);
        sd_event_unref(z->event);
        sd_event_unref(z->main_event);
        if (z->stop_fd >= 0)
                (void) close(z->stop_fd);
        if (z->give_up_fd >= 0)
                (void) close(z->give_up_fd);
        free(z->name);
        free(z);
        return NULL;
}
