/*
 * libFuzzer target for s3/s3_xml's lifecycle parser and s3_lifecycle's rule matching (the
 * tempdir check). The first input byte picks a tempdir key length, the rest is the document.
 * Checks, besides not crashing: bounds on rules and prefixes, every rule has an ID string, and
 * s3_lifecycle_match agrees with a plain re-implementation of the documented rule.
 */
#include "s3_lifecycle.h"
#include "s3_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_s3_lifecycle: invariant failed at line %d: %s\n", __LINE__,      \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool covers(const s3_lifecycle_rule_t *r, const char *key)
{
    if (!r->enabled)
        return false;
    for (size_t i = 0; i < r->nprefixes; i++)
        if (strncmp(key, r->prefixes[i], strlen(r->prefixes[i])) != 0)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const keys[] = {"", "tmp/", "tmp/stage/", "logs/", "a/b/c/d/"};
    const char *key = keys[data[0] % 5];
    s3_lifecycle_t lc;
    int rc = s3_xml_parse_lifecycle(data + 1, size - 1, &lc);
    if (rc != 0) {
        CHECK(lc.rules == NULL && lc.nrules == 0);
        return 0;
    }
    CHECK(lc.nrules <= S3_LIFECYCLE_MAX_RULES);
    long want = -1;
    for (size_t i = 0; i < lc.nrules; i++) {
        const s3_lifecycle_rule_t *r = &lc.rules[i];
        CHECK(r->id != NULL);
        CHECK(r->nprefixes <= 3);
        for (size_t j = 0; j < r->nprefixes; j++)
            CHECK(r->prefixes[j] != NULL);
        if (want < 0 && covers(r, key))
            want = (long)i;
    }
    CHECK(s3_lifecycle_match(&lc, key, strlen(key)) == want);
    s3_lifecycle_free(&lc);
    return 0;
}
