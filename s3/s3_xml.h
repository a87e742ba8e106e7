/*
 * S3's XML, both ways, as pure functions (fuzzed: tests/fuzz/fuzz_s3_*.c): the documents S3
 * answers with (errors, ListObjectsV2, lifecycle configuration, multipart results, DeleteObjects
 * results) and the two request bodies we send (CompleteMultipartUpload, DeleteObjects).
 *
 * Parsing goes through expat with the same guards for every document: input at most
 * S3_XML_MAX_INPUT bytes, nesting at most S3_XML_MAX_DEPTH, element text at most
 * S3_XML_MAX_TEXT, no DTD (so no entity can expand), namespace prefixes ignored, unknown
 * elements skipped. The root element must be the one the operation answers with.
 */
#ifndef S3_XML_H
#define S3_XML_H

#include "px_buf.h"
#include "px_util.h"
#include "s3_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3_XML_MAX_INPUT (16u << 20)
#define S3_XML_MAX_DEPTH 32
#define S3_XML_MAX_TEXT  (64u << 10)
/* A listing page holds at most this many entries (objects plus common prefixes); S3 sends at
 * most 1,000, the rest is slack for other implementations. */
#define S3_XML_MAX_ENTRIES 10000

/*
 * An S3 error document (<Error><Code/><Message/><RequestId/><Region/>...</Error>, also the
 * <ErrorResponse><Error> wrapping some front ends use). Fills err->s3_code, message (sanitised),
 * request_id and region where present, leaving other fields alone; returns true when a Code was
 * found. Never fails otherwise: an unreadable body just returns false.
 */
bool s3_xml_parse_error(const uint8_t *body, size_t n, s3_error_t *err);

/* ListObjectsV2 (<ListBucketResult>). Keys and prefixes are URL-decoded when the document says
 * <EncodingType>url</EncodingType> (S3 then writes '+' for a space, as botocore decodes it).
 * A truncated page must carry a NextContinuationToken. 0, S3_E_PARSE or UV_ENOMEM; on failure
 * *out is empty. */
int s3_xml_parse_list(const uint8_t *body, size_t n, s3_list_page_t *out) PX_MUSTCHECK;

/* GetBucketLifecycleConfiguration (<LifecycleConfiguration>). 0, S3_E_PARSE or UV_ENOMEM. */
int s3_xml_parse_lifecycle(const uint8_t *body, size_t n, s3_lifecycle_t *out) PX_MUSTCHECK;

/* CreateMultipartUpload (<InitiateMultipartUploadResult><UploadId>): *upload_id gets a
 * px_malloc'd copy. 0, S3_E_PARSE (no or an empty or unprintable UploadId) or UV_ENOMEM. */
int s3_xml_parse_initiate(const uint8_t *body, size_t n, char **upload_id) PX_MUSTCHECK;

/*
 * CompleteMultipartUpload. S3 may answer 200 and still fail, with an <Error> document (API
 * reference: "a 200 OK response can contain valid or invalid XML"): then this returns S3_E_HTTP
 * with err filled. 0 with *etag (px_malloc'd, may be "") on <CompleteMultipartUploadResult>;
 * S3_E_PARSE or UV_ENOMEM otherwise.
 */
int s3_xml_parse_complete(const uint8_t *body, size_t n, char **etag, s3_error_t *err) PX_MUSTCHECK;

/* DeleteObjects (<DeleteResult> with <Deleted> and <Error> entries). 0, S3_E_PARSE, UV_ENOMEM. */
int s3_xml_parse_delete_result(const uint8_t *body, size_t n, s3_delete_result_t *out) PX_MUSTCHECK;

/*
 * Appends s[0..n) as XML character data, escaping & < > " ' and writing CR, LF and TAB as
 * character references so no XML parser normalises them away. Returns false (and appends
 * nothing) when the text cannot travel in XML 1.0 at all: invalid UTF-8, NUL or another C0
 * control character, U+FFFE/U+FFFF or a surrogate.
 */
bool s3_xml_escape(px_dbuf_t *out, const char *s, size_t n);
/* Whether s3_xml_escape would accept s[0..n). */
bool s3_xml_text_ok(const char *s, size_t n);

/* <CompleteMultipartUpload> naming parts 1..n with these ETags (as UploadPart returned them).
 * 0, UV_EINVAL (n is 0 or above S3_PART_MAX_COUNT, or an ETag is not representable) or
 * UV_ENOMEM. */
int s3_xml_build_complete(const char *const *etags, size_t n, px_dbuf_t *out) PX_MUSTCHECK;

/* <Delete> for 1..S3_DELETE_MAX_KEYS keys; `quiet` asks S3 to list only the failures.
 * 0, UV_EINVAL (count out of range, or a key XML cannot carry) or UV_ENOMEM. */
int s3_xml_build_delete(const char *const *keys, const size_t *key_lens, size_t n, bool quiet,
                        px_dbuf_t *out) PX_MUSTCHECK;

#endif
