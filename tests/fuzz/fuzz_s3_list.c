/*
 * libFuzzer target for s3/s3_xml's ListObjectsV2 parser, the one whose output decides what the
 * staging cleanup deletes. Checks, besides not crashing: a page that parses is consistent (a
 * truncated page has a non-empty continuation token and the last page none, every key is
 * non-empty, NUL-free and as long as key_len says, counts within bounds); a failed parse leaves
 * an empty page behind.
 */
#include "s3_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_s3_list: invariant failed at line %d: %s\n", __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s3_list_page_t p;
    int rc = s3_xml_parse_list(data, size, &p);
    if (rc != 0) {
        CHECK(p.objects == NULL && p.nobjects == 0 && p.prefixes == NULL && p.nprefixes == 0);
        CHECK(p.next_token == NULL && !p.truncated);
        return 0;
    }
    CHECK(p.nobjects + p.nprefixes <= S3_XML_MAX_ENTRIES);
    if (p.truncated)
        CHECK(p.next_token != NULL && p.next_token[0] != '\0');
    else
        CHECK(p.next_token == NULL);
    for (size_t i = 0; i < p.nobjects; i++) {
        CHECK(p.objects[i].key != NULL && p.objects[i].etag != NULL);
        CHECK(p.objects[i].key_len > 0);
        CHECK(strlen(p.objects[i].key) == p.objects[i].key_len);
        CHECK(p.objects[i].last_modified_ms >= -1);
    }
    for (size_t i = 0; i < p.nprefixes; i++)
        CHECK(p.prefixes[i] != NULL);
    s3_list_page_free(&p);
    return 0;
}
