/*
 * Test certificates (see test_px_certs.h): EC P-256 keys, X.509 v3 with basic constraints,
 * key usage for the CAs and subjectAltName for the server, valid from an hour ago for a day.
 */
#include "test_px_certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static px_test_certs_t certs;
static char dir[256];

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                       const char *san)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ext =
        X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ca) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (san) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
    return x;
}

static void write_pem(const char *path, X509 *c1, X509 *c2, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    if (c1)
        PEM_write_X509(f, c1);
    if (c2)
        PEM_write_X509(f, c2);
    if (key)
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static void cleanup(void)
{
    const char *files[] = {certs.ca, certs.other_ca, certs.cert, certs.chain, certs.key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
}

const px_test_certs_t *px_test_certs(void)
{
    if (dir[0])
        return &certs;
    snprintf(dir, sizeof(dir), "/tmp/px_test_certs_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    EVP_PKEY *cak = EVP_EC_gen("P-256"), *otherk = EVP_EC_gen("P-256"), *k = EVP_EC_gen("P-256");
    X509 *ca = make_cert(cak, "test CA", NULL, NULL, true, NULL);
    X509 *other = make_cert(otherk, "other CA", NULL, NULL, true, NULL);
    X509 *srv = make_cert(k, "localhost", ca, cak, false, "DNS:localhost,IP:127.0.0.1");
    snprintf(certs.ca, sizeof(certs.ca), "%s/ca.crt", dir);
    snprintf(certs.other_ca, sizeof(certs.other_ca), "%s/other.crt", dir);
    snprintf(certs.cert, sizeof(certs.cert), "%s/server.crt", dir);
    snprintf(certs.chain, sizeof(certs.chain), "%s/chain.crt", dir);
    snprintf(certs.key, sizeof(certs.key), "%s/server.key", dir);
    write_pem(certs.ca, ca, NULL, NULL);
    write_pem(certs.other_ca, other, NULL, NULL);
    write_pem(certs.cert, srv, NULL, NULL);
    write_pem(certs.chain, srv, ca, NULL);
    write_pem(certs.key, NULL, NULL, k);
    X509_free(ca);
    X509_free(other);
    X509_free(srv);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(otherk);
    EVP_PKEY_free(k);
    atexit(cleanup);
    return &certs;
}
