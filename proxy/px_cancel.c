/*
 * Cancel keys. Each client gets the proxy's own BackendKeyData: its connection id and a random
 * 32-bit secret (RAND_bytes). A CancelRequest from any connection is looked up by id here; when
 * the secret matches (compared in constant time), a fresh upstream connection with the same TLS
 * rules carries upstream's own key to the very address the session is connected to. Unknown keys
 * are ignored silently, as PostgreSQL does, so the answer reveals nothing.
 *
 * The map is an intrusive chained hash table keyed by id; it grows by doubling and never
 * allocates per entry.
 */
#include "px_conn.h"

#include "px_alloc.h"
#include "px_err.h"
#include "px_log.h"

#include <string.h>

#define HASH_MIN 1024u

static uint32_t bucket_of(const px_proxy_t *px, uint32_t id)
{
    /* Ids are sequential; a multiplicative hash spreads them anyway. */
    return (id * 2654435761u) & (px->hash_size - 1);
}

static void grow(px_proxy_t *px)
{
    uint32_t nsize = px->hash_size ? px->hash_size * 2 : HASH_MIN;
    px_client_t **nh = px_calloc(nsize, sizeof(*nh));
    if (!nh)
        return; /* keep the current table: longer chains, still correct */
    uint32_t osize = px->hash_size;
    px_client_t **old = px->hash;
    px->hash = nh;
    px->hash_size = nsize;
    for (uint32_t i = 0; i < osize; i++) {
        px_client_t *c = old[i];
        while (c) {
            px_client_t *next = c->hash_next;
            uint32_t b = bucket_of(px, c->id);
            c->hash_next = nh[b];
            nh[b] = c;
            c = next;
        }
    }
    px_free(old);
}

void px__cancel_register(px_proxy_t *px, px_client_t *c)
{
    if (c->in_hash)
        return;
    if (px->hash_count >= px->hash_size)
        grow(px);
    if (!px->hash)
        return; /* no memory: this session cannot be cancelled through the proxy */
    uint32_t b = bucket_of(px, c->id);
    c->hash_next = px->hash[b];
    px->hash[b] = c;
    c->in_hash = true;
    px->hash_count++;
}

void px__cancel_unregister(px_proxy_t *px, px_client_t *c)
{
    if (!c->in_hash)
        return;
    px_client_t **pp = &px->hash[bucket_of(px, c->id)];
    while (*pp && *pp != c)
        pp = &(*pp)->hash_next;
    if (*pp)
        *pp = c->hash_next;
    c->hash_next = NULL;
    c->in_hash = false;
    px->hash_count--;
}

static px_client_t *lookup(px_proxy_t *px, uint32_t id)
{
    if (!px->hash)
        return NULL;
    for (px_client_t *c = px->hash[bucket_of(px, id)]; c; c = c->hash_next)
        if (c->id == id)
            return c;
    return NULL;
}

static void on_cancel_fail(px_server_t *sv, const px_server_fail_t *f)
{
    px_log_ctx(PX_LOG_WARN, sv->ctx, "cancel request not delivered: %s", f->message);
}

static const px_server_owner_t cancel_owner = {
    .on_fail = on_cancel_fail,
};

/* Opens a connection that carries upstream's own key for the session of client c. */
static void cancel_upstream(px_proxy_t *px, px_client_t *c, const char *why)
{
    px_server_t *sv = c->server;
    if (px->ncancel_conns >= PX_MAX_CANCEL_CONNS) {
        px_log_ctx(PX_LOG_WARN, c->ctx, "cancel request dropped: %u cancels already in flight",
                   px->ncancel_conns);
        return;
    }
    px_server_params_t p = {
        .purpose = PX_SERVER_FOR_CANCEL,
        .host = sv->host,
        .port = sv->port,
        .addr = (const struct sockaddr *)&sv->addr,
        .cancel_pid = sv->be_pid,
        .cancel_key = sv->be_key,
        .connect_timeout_ms = c->cfg->upstream.connect_timeout * 1000,
    };
    px_server_t *cs = NULL;
    int rc = px__server_start(px, c->id, &p, &cancel_owner, NULL, &cs);
    if (rc) {
        px_log_ctx(PX_LOG_WARN, c->ctx, "cancel request not delivered: %s", px_strerror(rc));
        return;
    }
    px->stats.cancels_forwarded++;
    /* Until it has surely arrived, the session must not serve another client (px_pool.c). */
    sv->cancel_ms = uv_now(px->loop);
    px_log_ctx(PX_LOG_INFO, c->ctx, "cancel request sent to %s (%s)", sv->addr_str, why);
}

void px__cancel_request(px_proxy_t *px, uint32_t pid, uint32_t key)
{
    px->stats.cancel_requests++;
    px_client_t *c = lookup(px, pid);
    uint32_t want = c ? c->cancel_key : 0;
    /* Compare even when the id is unknown, so timing does not tell which ids exist. */
    bool ok = px_ct_equal(&want, &key, sizeof(key)) && c != NULL;
    px_server_t *sv = ok ? c->server : NULL;
    if (!ok || !sv || !sv->have_key || c->state != PX_CLIENT_ACTIVE) {
        px_log(PX_LOG_DEBUG, "cancel request for an unknown or idle key ignored");
        return;
    }
    cancel_upstream(px, c, "client's cancel request");
}

void px__cancel_inflight(px_proxy_t *px, px_client_t *c)
{
    /* Only when a request is running: an idle session ends with Terminate alone. */
    px_server_t *sv = c->server;
    if (!sv || !sv->have_key || sv->state != PX_SERVER_ACTIVE || c->rfq_seen >= c->rfq_expected)
        return;
    cancel_upstream(px, c, "client gone while a query was running");
}

void px__cancel_cleanup(px_proxy_t *px)
{
    px_free(px->hash);
    px->hash = NULL;
    px->hash_size = 0;
    px->hash_count = 0;
}
