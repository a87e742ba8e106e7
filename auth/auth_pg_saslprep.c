/*
 * SASLprep (RFC 4013) for SCRAM passwords, following PostgreSQL's pg_saslprep step by step so
 * that a password yields the same SCRAM keys here, in libpq and in the server: pure ASCII is
 * used unchanged; otherwise the UTF-8 is decoded strictly, mapped (non-ASCII spaces to U+0020,
 * "commonly mapped to nothing" characters dropped), checked for prohibited and unassigned
 * characters and for the bidirectional rule, and NFKC-normalised. The Unicode tables live in
 * auth_pg_unicode.c (generated). Not here: the "use the raw password on failure" policy, which
 * belongs to the SCRAM code (auth_pg_scram.c), and any other stringprep profile.
 */
#include "auth_pg.h"

#include "px_alloc.h"
#include "px_err.h"

#include <string.h>
#include <uv.h>

/* Hangul syllable arithmetic (Unicode §3.12): syllables are (de)composed by formula. */
#define HANGUL_SBASE  0xAC00u
#define HANGUL_LBASE  0x1100u
#define HANGUL_VBASE  0x1161u
#define HANGUL_TBASE  0x11A7u
#define HANGUL_LCOUNT 19u
#define HANGUL_VCOUNT 21u
#define HANGUL_TCOUNT 28u
#define HANGUL_NCOUNT (HANGUL_VCOUNT * HANGUL_TCOUNT)
#define HANGUL_SCOUNT (HANGUL_LCOUNT * HANGUL_NCOUNT)

/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF; the same
 * sequences PostgreSQL's pg_utf8_islegal accepts. Returns the number of code points written to
 * cps (room for n), or -1.
 */
static long sp_utf8_decode(const uint8_t *s, size_t n, uint32_t *cps)
{
    size_t i = 0, k = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            cps[k++] = c;
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, cp = c & 0x0F;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return -1;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return -1;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        cps[k++] = cp;
        i += len;
    }
    return (long)k;
}

static size_t sp_utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static uint8_t *sp_utf8_put(uint8_t *p, uint32_t cp)
{
    if (cp < 0x80) {
        *p++ = (uint8_t)cp;
    } else if (cp < 0x800) {
        *p++ = (uint8_t)(0xC0 | cp >> 6);
        *p++ = (uint8_t)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *p++ = (uint8_t)(0xE0 | cp >> 12);
        *p++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (uint8_t)(0x80 | (cp & 0x3F));
    } else {
        *p++ = (uint8_t)(0xF0 | cp >> 18);
        *p++ = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        *p++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (uint8_t)(0x80 | (cp & 0x3F));
    }
    return p;
}

static bool sp_is_hangul_syllable(uint32_t cp)
{
    return cp >= HANGUL_SBASE && cp < HANGUL_SBASE + HANGUL_SCOUNT;
}

static size_t sp_decomposed_len(uint32_t cp)
{
    size_t len;
    if (sp_is_hangul_syllable(cp))
        return (cp - HANGUL_SBASE) % HANGUL_TCOUNT ? 3 : 2;
    return auth_pg__decompose(cp, &len) ? len : 1;
}

static size_t sp_decompose(uint32_t cp, uint32_t *out)
{
    if (sp_is_hangul_syllable(cp)) {
        uint32_t s = cp - HANGUL_SBASE;
        out[0] = HANGUL_LBASE + s / HANGUL_NCOUNT;
        out[1] = HANGUL_VBASE + (s % HANGUL_NCOUNT) / HANGUL_TCOUNT;
        if (s % HANGUL_TCOUNT == 0)
            return 2;
        out[2] = HANGUL_TBASE + s % HANGUL_TCOUNT;
        return 3;
    }
    size_t len;
    const uint32_t *d = auth_pg__decompose(cp, &len);
    if (!d) {
        out[0] = cp;
        return 1;
    }
    memcpy(out, d, len * sizeof(*d));
    return len;
}

static uint32_t sp_compose(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_LBASE && a < HANGUL_LBASE + HANGUL_LCOUNT && b >= HANGUL_VBASE &&
        b < HANGUL_VBASE + HANGUL_VCOUNT)
        return HANGUL_SBASE +
               ((a - HANGUL_LBASE) * HANGUL_VCOUNT + (b - HANGUL_VBASE)) * HANGUL_TCOUNT;
    if (sp_is_hangul_syllable(a) && (a - HANGUL_SBASE) % HANGUL_TCOUNT == 0 && b > HANGUL_TBASE &&
        b < HANGUL_TBASE + HANGUL_TCOUNT)
        return a + (b - HANGUL_TBASE);
    return auth_pg__compose(a, b);
}

/*
 * NFKC (UAX #15): full compatibility decomposition, canonical ordering of each run of
 * combining marks, then canonical composition. Returns a px_malloc'd array in *out.
 */
static int sp_nfkc(const uint32_t *in, size_t n, uint32_t **out, size_t *outn)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += sp_decomposed_len(in[i]);
    uint32_t *b = px_malloc((cap ? cap : 1) * sizeof(*b));
    if (!b)
        return UV_ENOMEM;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += sp_decompose(in[i], b + len);

    /* Canonical ordering: a stable insertion sort by combining class that never moves a mark
     * across a starter (class 0), which is exactly the reordering algorithm's effect. */
    for (size_t i = 1; i < len; i++) {
        int cc = auth_pg__ccc(b[i]);
        if (cc == 0)
            continue;
        for (size_t j = i; j > 0 && auth_pg__ccc(b[j - 1]) > cc; j--) {
            uint32_t t = b[j];
            b[j] = b[j - 1];
            b[j - 1] = t;
        }
    }

    /* Canonical composition. `last_cc` is the class of the last character kept after the
     * current starter: a mark composes with the starter only if nothing between them blocks
     * it (a kept character of class 0 or of a class >= its own). 256 marks "no starter yet". */
    if (len > 0) {
        size_t starter = 0, w = 1;
        int last_cc = auth_pg__ccc(b[0]) ? 256 : 0;
        for (size_t r = 1; r < len; r++) {
            uint32_t c = b[r];
            int cc = auth_pg__ccc(c);
            uint32_t comp = last_cc == 256 ? 0 : sp_compose(b[starter], c);
            if (comp && (last_cc < cc || last_cc == 0)) {
                b[starter] = comp;
                continue;
            }
            if (cc == 0)
                starter = w;
            last_cc = cc;
            b[w++] = c;
        }
        len = w;
    }
    /* Composition shrank the string: wipe what is left of the password behind it. */
    px_wipe(b + len, (cap - len) * sizeof(*b));
    *out = b;
    *outn = len;
    return 0;
}

/* RFC 3454 §6: with any RandALCat character, no LCat character may appear and the string must
 * start and end with RandALCat. */
static bool sp_bidi_ok(const uint32_t *cp, size_t n)
{
    bool randal = false;
    for (size_t i = 0; i < n && !randal; i++)
        randal = auth_pg__sp_in(AUTH_PG_SP_RANDAL, cp[i]);
    if (!randal)
        return true;
    for (size_t i = 0; i < n; i++)
        if (auth_pg__sp_in(AUTH_PG_SP_L, cp[i]))
            return false;
    return auth_pg__sp_in(AUTH_PG_SP_RANDAL, cp[0]) && auth_pg__sp_in(AUTH_PG_SP_RANDAL, cp[n - 1]);
}

int auth_saslprep(const char *in, char **out)
{
    *out = NULL;
    size_t n = strlen(in);
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++)
        ascii = (uint8_t)in[i] < 0x80;
    if (ascii) {
        /* PostgreSQL uses pure ASCII as is (control characters included), so must we. */
        *out = px_strdup(in);
        return *out ? 0 : UV_ENOMEM;
    }

    int rc = 0;
    uint32_t *cps = px_malloc(n * sizeof(*cps)), *norm = NULL;
    size_t count = 0, nnorm = 0;
    if (!cps)
        return UV_ENOMEM;
    long ncp = sp_utf8_decode((const uint8_t *)in, n, cps);
    if (ncp < 0) {
        rc = AUTH_E_PROTO;
        goto out;
    }

    /* 1. Map. Spaces are checked first: U+200B is in both tables and becomes a space. */
    for (long i = 0; i < ncp; i++) {
        if (auth_pg__sp_in(AUTH_PG_SP_SPACE, cps[i]))
            cps[count++] = 0x20;
        else if (!auth_pg__sp_in(AUTH_PG_SP_NOTHING, cps[i]))
            cps[count++] = cps[i];
    }
    if (count == 0) {
        rc = AUTH_E_FAILED; /* PostgreSQL refuses a password that maps to nothing */
        goto out;
    }

    /* 3 and 4. Prohibited, unassigned and bidi checks. Like PostgreSQL (and unlike a literal
     * reading of RFC 3454) they look at the mapped string before normalisation; the results
     * must match the server's, not the RFC's, or the keys would differ. */
    for (size_t i = 0; i < count; i++) {
        if (auth_pg__sp_in(AUTH_PG_SP_PROHIBITED, cps[i]) ||
            auth_pg__sp_in(AUTH_PG_SP_UNASSIGNED, cps[i])) {
            rc = AUTH_E_FAILED;
            goto out;
        }
    }
    if (!sp_bidi_ok(cps, count)) {
        rc = AUTH_E_FAILED;
        goto out;
    }

    /* 2. Normalise, then encode back to UTF-8. */
    if ((rc = sp_nfkc(cps, count, &norm, &nnorm)) != 0)
        goto out;
    size_t bytes = 0;
    for (size_t i = 0; i < nnorm; i++)
        bytes += sp_utf8_len(norm[i]);
    uint8_t *res = px_malloc(bytes + 1);
    if (!res) {
        rc = UV_ENOMEM;
        goto out;
    }
    uint8_t *p = res;
    for (size_t i = 0; i < nnorm; i++)
        p = sp_utf8_put(p, norm[i]);
    *p = '\0';
    *out = (char *)res;

out:
    /* Both arrays hold the password. */
    px_wipe(cps, n * sizeof(*cps));
    px_free(cps);
    if (norm) {
        px_wipe(norm, nnorm * sizeof(*norm));
        px_free(norm);
    }
    return rc;
}
