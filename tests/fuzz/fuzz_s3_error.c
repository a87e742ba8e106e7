/*
 * libFuzzer target for s3/s3_xml's error-document parser (every S3 error answer goes through
 * it). Besides not crashing: a parse that reports success has a non-empty code, and every field
 * it filled is NUL-terminated and free of control characters, so nothing a server sends can
 * inject line breaks into our logs; a failed parse leaves the struct exactly as it was.
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
            fprintf(stderr, "fuzz_s3_error: invariant failed at line %d: %s\n", __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_field(const char *f, size_t cap)
{
    size_t n = strnlen(f, cap);
    CHECK(n < cap);
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)f[i] >= 0x20 && f[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s3_error_t e, before;
    memset(&e, 0x41, sizeof(e));
    e.s3_code[sizeof(e.s3_code) - 1] = e.message[sizeof(e.message) - 1] = '\0';
    e.request_id[sizeof(e.request_id) - 1] = e.region[sizeof(e.region) - 1] = '\0';
    before = e;
    if (s3_xml_parse_error(data, size, &e)) {
        CHECK(e.s3_code[0] != '\0');
        check_field(e.s3_code, sizeof(e.s3_code));
        check_field(e.message, sizeof(e.message));
        check_field(e.request_id, sizeof(e.request_id));
        check_field(e.region, sizeof(e.region));
    } else {
        CHECK(memcmp(&e, &before, sizeof(e)) == 0);
    }
    return 0;
}
