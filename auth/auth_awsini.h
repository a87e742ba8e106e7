/*
 * The shared AWS config and credentials files (~/.aws/config, ~/.aws/credentials) as the SDKs
 * read them: Python's RawConfigParser rules as botocore uses them (full-line '#'/';' comments,
 * "key = value" or "key: value", lower-cased key names, indented continuation lines, duplicate
 * sections or keys are errors), plus botocore's nested values (a key with an empty first line
 * whose continuation lines are "subkey = value", as in [services x] sections).
 *
 * A pure parser over bytes with a fuzz target. inih is not used: Debian builds it with a
 * 200-character line limit, and session tokens in credentials files are longer than that.
 */
#ifndef AUTH_AWSINI_H
#define AUTH_AWSINI_H

#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>

#define AUTH_INI_MAX_INPUT    (1u << 20)
#define AUTH_INI_MAX_SECTIONS 4096
#define AUTH_INI_MAX_KEYS     65536

typedef struct auth_ini auth_ini_t;

/* Parses text (need not be NUL-terminated). Returns 0, AUTH_E_PARSE with "line N: what" in err,
 * or UV_ENOMEM. *out is NULL on failure. */
int auth_ini_parse(const char *text, size_t n, auth_ini_t **out, char *err,
                   size_t errlen) PX_MUSTCHECK;
/* Wipes every value (credentials files hold secret keys) and frees. NULL is fine. */
void auth_ini_free(auth_ini_t *ini);

/* Section names exactly as written between the brackets, trimmed ("profile dev", "default"). */
bool auth_ini_has_section(const auth_ini_t *ini, const char *section);
/* The value of `key` (lower-case) in `section`, or NULL. A multi-line value keeps its line
 * breaks; a nested value starts with '\n'. */
const char *auth_ini_get(const auth_ini_t *ini, const char *section, const char *key);
/* The value of `subkey` inside the nested value of `key` (botocore's _parse_nested: lines
 * "subkey = value", both sides trimmed, subkey compared as written). Copies into out (cap bytes);
 * false when absent or not nested. */
bool auth_ini_get_nested(const auth_ini_t *ini, const char *section, const char *key,
                         const char *subkey, char *out, size_t cap);
/* Iteration over section names, for tests and diagnostics: NULL past the end. */
const char *auth_ini_section_name(const auth_ini_t *ini, size_t i);

#endif
