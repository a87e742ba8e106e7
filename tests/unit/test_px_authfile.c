/*
 * Unit tests for the client auth file (proxy/px_authfile.c, pgbouncer's userlist.txt format):
 * quoting and escapes, comments, lookup, and the errors (with file and line, never a secret)
 * for malformed lines, MD5 secrets that cannot serve SCRAM, duplicates and unreadable files.
 */
#include "px_authfile.h"
#include "px_err.h"
#include "px_test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static px_authfile_t *parse_ok(const char *text)
{
    px_authfile_t *af = NULL;
    char err[256] = "";
    int rc = px_authfile_parse(text, strlen(text), "users.txt", &af, err, sizeof(err));
    if (rc != 0)
        PX_FAIL("parse failed: %s", err);
    return af;
}

static void parse_err(const char *text, const char *want)
{
    px_authfile_t *af = NULL;
    char err[256] = "";
    ASSERT_EQ(px_authfile_parse(text, strlen(text), "users.txt", &af, err, sizeof(err)),
              CFG_E_PARSE);
    ASSERT(af == NULL);
    ASSERT_STR_EQ(err, want);
}

PX_TEST(basic_lookup)
{
    px_authfile_t *af = parse_ok("; comment\n# another\n\n  \"alice\"   \"s3cret\"\n"
                                 "\"bob\" \"SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==\" \"x\"\r\n"
                                 "\"we\"\"ird\" \"p\"\"w\"\n\"last\" \"noeol\"");
    ASSERT_EQ(px_authfile_count(af), 4);
    ASSERT_STR_EQ(px_authfile_lookup(af, "alice"), "s3cret");
    ASSERT_STR_EQ(px_authfile_lookup(af, "bob"), "SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==");
    ASSERT_STR_EQ(px_authfile_lookup(af, "we\"ird"), "p\"w");
    ASSERT_STR_EQ(px_authfile_lookup(af, "last"), "noeol");
    ASSERT(px_authfile_lookup(af, "carol") == NULL);
    ASSERT(px_authfile_lookup(af, "Alice") == NULL);
    ASSERT(px_authfile_lookup(NULL, "alice") == NULL);
    px_authfile_free(af);
}

PX_TEST(empty_file)
{
    px_authfile_t *af = parse_ok("");
    ASSERT_EQ(px_authfile_count(af), 0);
    px_authfile_free(af);
}

PX_TEST(errors_name_the_line_not_the_secret)
{
    parse_err("\"a\" \"1\"\nalice secret\n", "users.txt:2: expected a double-quoted field");
    parse_err("\"a\" \"unterminated\n", "users.txt:1: unterminated quoted field");
    parse_err("\"a\"\n", "users.txt:1: expected \"user\" \"password\"");
    parse_err("\"\" \"pw\"\n", "users.txt:1: empty user name");
    parse_err("\"a\" \"md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
              "users.txt:1: an MD5 secret cannot be used for scram-sha-256 client authentication "
              "(store the password or a SCRAM verifier)");
    parse_err("\"a\" \"1\"\n\"a\" \"2\"\n", "users.txt: user \"a\" is listed more than once");
    char big[2000];
    memset(big, 'x', sizeof(big));
    memcpy(big, "\"a\" \"", 5);
    big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = 0;
    parse_err(big, "users.txt:1: field too long");
}

PX_TEST(load_from_file)
{
    char path[] = "/tmp/px_authfile_XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    static const char text[] = "\"u1\" \"p1\"\n\"u2\" \"p2\"\n";
    ASSERT(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
    close(fd);
    px_authfile_t *af = NULL;
    char err[256] = "";
    int rc = px_authfile_load(path, &af, err, sizeof(err));
    unlink(path);
    ASSERT_OK(rc);
    ASSERT_STR_EQ(px_authfile_lookup(af, "u2"), "p2");
    px_authfile_free(af);
    ASSERT_EQ(px_authfile_load("/nonexistent/users.txt", &af, err, sizeof(err)), CFG_E_IO);
    ASSERT(strstr(err, "/nonexistent/users.txt: cannot open"));
}
