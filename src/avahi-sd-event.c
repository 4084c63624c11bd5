/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "avahi-sd-event.h"

#include <assert.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <time.h>

#include "util.h"

struct AvahiSdEventPoll {
        AvahiPoll api;            /* api.userdata points back here */
        sd_event *event;
};

/* avahi may free a watch or timeout from inside its own callback: the
 * struct then lives until the callback returns (dispatching/freed). */
struct AvahiWatch {
        sd_event_source *source;
        int fd;                   /* the caller's, handed back to the callback */
        AvahiWatchEvent revents;  /* of the callback running now */
        AvahiWatchCallback callback;
        void *userdata;
        bool dispatching, freed;
};

struct AvahiTimeout {
        sd_event_source *source;
        AvahiTimeoutCallback callback;
        void *userdata;
        bool dispatching, freed;
};

static uint32_t epoll_events_from_avahi(AvahiWatchEvent e) {
        return (e & AVAHI_WATCH_IN ? EPOLLIN : 0) | (e & AVAHI_WATCH_OUT ? EPOLLOUT : 0) |
               (e & AVAHI_WATCH_ERR ? EPOLLERR : 0) | (e & AVAHI_WATCH_HUP ? EPOLLHUP : 0);
}

static AvahiWatchEvent avahi_events_from_epoll(uint32_t e) {
        return (e & EPOLLIN ? AVAHI_WATCH_IN : 0) | (e & EPOLLOUT ? AVAHI_WATCH_OUT : 0) |
               (e & EPOLLERR ? AVAHI_WATCH_ERR : 0) | (e & EPOLLHUP ? AVAHI_WATCH_HUP : 0);
}

static int on_watch_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AvahiWatch *w = userdata;

        assert(w);

        w->revents = avahi_events_from_epoll(revents);
        w->dispatching = true;
        w->callback(w, w->fd, w->revents, w->userdata);
        w->dispatching = false;
        if (w->freed)
                free(w);
        else
                w->revents = 0;
        return 0;
}

static AvahiWatch *watch_new(const AvahiPoll *api, int fd, AvahiWatchEvent events,
                             AvahiWatchCallback callback, void *userdata) {
        AvahiSdEventPoll *p = api->userdata;
        _cleanup_close_ int own_fd = -1;
        AvahiWatch *w;

        /* libdbus watches one socket twice (a read and a write watch), and
         * epoll takes an fd once: each watch registers a duplicate of its
         * own (epoll(7) suggests exactly this to filter events). */
        own_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (own_fd < 0)
                return NULL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return NULL;
        *w = (AvahiWatch) { .fd = fd, .callback = callback, .userdata = userdata };
        if (sd_event_add_io(p->event, &w->source, own_fd, epoll_events_from_avahi(events), on_watch_io, w) < 0 ||
            sd_event_source_set_io_fd_own(w->source, 1) < 0) {
                sd_event_source_unref(w->source);
                free(w);
                return NULL;
        }
        own_fd = -1;
        (void) sd_event_source_set_description(w->source, "avahi-watch");
        return w;
}

static void watch_update(AvahiWatch *w, AvahiWatchEvent events) {
        (void) sd_event_source_set_io_events(w->source, epoll_events_from_avahi(events));
}

static AvahiWatchEvent watch_get_events(AvahiWatch *w) {
        return w->revents;
}

static void watch_free(AvahiWatch *w) {
        if (!w)
                return;
        /* sd-event allows a source to be released from its own callback. */
        w->source = sd_event_source_disable_unref(w->source);
        if (w->dispatching)
                w->freed = true;
        else
                free(w);
}

/* avahi's times are absolute CLOCK_REALTIME (gettimeofday); ours are
 * CLOCK_MONOTONIC, so a clock step does not delay avahi's timers. */
static uint64_t monotonic_usec_of(const struct timeval *tv) {
        struct timespec real, mono;
        int64_t delta;
        uint64_t now;

        (void) clock_gettime(CLOCK_REALTIME, &real);
        (void) clock_gettime(CLOCK_MONOTONIC, &mono);
        now = (uint64_t) mono.tv_sec * USEC_PER_SEC + (uint64_t) mono.tv_nsec / 1000;
        delta = ((int64_t) tv->tv_sec - (int64_t) real.tv_sec) * (int64_t) USEC_PER_SEC +
                ((int64_t) tv->tv_usec - (int64_t) real.tv_nsec / 1000);
        return delta > 0 ? now + (uint64_t) delta : now;
}

static int on_timeout_time(sd_event_source *s, uint64_t usec, void *userdata) {
        AvahiTimeout *t = userdata;

        assert(t);

        /* A time source is one-shot: it is already off, as avahi expects. */
        t->dispatching = true;
        t->callback(t, t->userdata);
        t->dispatching = false;
        if (t->freed)
                free(t);
        return 0;
}

static void timeout_update(AvahiTimeout *t, const struct timeval *tv) {
        if (!tv) {
                (void) sd_event_source_set_enabled(t->source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(t->source, monotonic_usec_of(tv));
        (void) sd_event_source_set_enabled(t->source, SD_EVENT_ONESHOT);
}

static AvahiTimeout *timeout_new(const AvahiPoll *api, const struct timeval *tv,
                                 AvahiTimeoutCallback callback, void *userdata) {
        AvahiSdEventPoll *p = api->userdata;
        AvahiTimeout *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        *t = (AvahiTimeout) { .callback = callback, .userdata = userdata };
        /* Accuracy 1 ms, not sd-event's default 250 ms: avahi-client runs
         * its D-Bus dispatching on "now" timeouts and reply timeouts. */
        if (sd_event_add_time(p->event, &t->source, CLOCK_MONOTONIC, 0, USEC_PER_MSEC,
                              on_timeout_time, t) < 0) {
                free(t);
                return NULL;
        }
        (void) sd_event_source_set_description(t->source, "avahi-timeout");
        timeout_update(t, tv);
        return t;
}

static void timeout_free(AvahiTimeout *t) {
        if (!t)
                return;
        t->source = sd_event_source_disable_unref(t->source);
        if (t->dispatching)
                t->freed = true;
        else
                free(t);
}

int avahi_sd_event_poll_new(sd_event *event, AvahiSdEventPoll **ret) {
        AvahiSdEventPoll *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p->event = sd_event_ref(event);
        p->api = (AvahiPoll) {
                .userdata = p,
                .watch_new = watch_new,
                .watch_update = watch_update,
                .watch_get_events = watch_get_events,
                .watch_free = watch_free,
                .timeout_new = timeout_new,
                .timeout_update = timeout_update,
                .timeout_free = timeout_free,
        };
        *ret = p;
        return 0;
}

AvahiSdEventPoll *avahi_sd_event_poll_free(AvahiSdEventPoll *p) {
        if (!p)
                return NULL;
        sd_event_unref(p->event);
        free(p);
        return NULL;
}

const AvahiPoll *avahi_sd_event_poll_get(AvahiSdEventPoll *p) {
        return &p->api;
}
